package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/store"
)

// SilenceRequest is the body of POST /api/v1/silences. Store and
// Invariant both empty silence the whole cluster. The window is StartsAt
// (default now) to EndsAt, or StartsAt + For (a Go duration such as "2h");
// exactly one of EndsAt and For is required.
type SilenceRequest struct {
	// Store is a store id ("4").
	Store string `json:"store,omitempty"`
	// Invariant is an invariant name or alert:NAME.
	Invariant string     `json:"invariant,omitempty"`
	StartsAt  *time.Time `json:"starts_at,omitempty"`
	EndsAt    *time.Time `json:"ends_at,omitempty"`
	For       string     `json:"for,omitempty"`
	// Reason is required.
	Reason string `json:"reason"`
}

// ExpireRequest is the body of POST /api/v1/silences/{id}/expire.
type ExpireRequest struct {
	// Reason is required.
	Reason string `json:"reason"`
}

// MaintenanceSilences turns the configured [[maintenance]] windows into
// silences (ID 0, Window = position from 1, CreatedBy "config"). Windows
// that do not validate are left out (config.Validate refuses them first).
func MaintenanceSilences(ms []config.Maintenance) []store.Silence {
	var out []store.Silence
	for i, m := range ms {
		start, end, err := m.Window()
		if err != nil {
			continue
		}
		sub, inv, _ := config.SilenceScope(m.Store, m.Invariant)
		out = append(out, store.Silence{Window: i + 1, Subject: sub, Invariant: inv, StartsAt: start.UTC(), EndsAt: end.UTC(),
			Reason: safetext.Text(strings.TrimSpace(m.Reason), 1000), CreatedBy: "config", CreatedVia: "config"})
	}
	return out
}

func (s *Server) createSilence(w http.ResponseWriter, r *http.Request, who auth.Identity) {
	var req SilenceRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	sub, inv, err := config.SilenceScope(req.Store, req.Invariant)
	if err != nil {
		writeErr(w, http.StatusBadRequest, CodeBadRequest, safetext.Line(err.Error(), 300))
		return
	}
	now := time.Now()
	start := now
	if req.StartsAt != nil {
		start = *req.StartsAt
	}
	var end time.Time
	switch {
	case req.EndsAt != nil && req.For != "":
		writeErr(w, http.StatusBadRequest, CodeBadRequest, "give ends_at or for, not both")
		return
	case req.EndsAt != nil:
		end = *req.EndsAt
	case req.For != "":
		d, err := time.ParseDuration(strings.TrimSpace(req.For))
		if err != nil || d <= 0 {
			writeErr(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("for %q: want a positive Go duration such as 2h", safetext.Line(req.For, 64)))
			return
		}
		end = start.Add(d)
	default:
		writeErr(w, http.StatusBadRequest, CodeBadRequest, "ends_at or for is required: a silence ends")
		return
	}
	sl, err := s.o.Store.CreateSilence(r.Context(), store.Silence{Subject: sub, Invariant: inv, StartsAt: start, EndsAt: end,
		Reason: req.Reason, CreatedBy: who.Name, CreatedRole: string(who.Role), CreatedVia: who.Via}, now)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.o.Logger.Info("silence created", "silence", sl.ID, "scope", sl.Scope(), "until", sl.EndsAt, "by", who.String())
	writeJSON(w, http.StatusCreated, sl)
}

func (s *Server) listSilences(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	f := store.SilenceFilter{}
	now := time.Now()
	active := false
	if v := r.URL.Query().Get("active"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeErr(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("active=%q: want true or false", safetext.Line(v, 32)))
			return
		}
		active = b
	}
	if active {
		f.ActiveAt = now
	}
	ss, err := s.o.Store.Silences(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	var ws []store.Silence
	for _, win := range s.o.Windows {
		if !active || win.ActiveAt(now) {
			ws = append(ws, win)
		}
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].StartsAt.After(ws[j].StartsAt) })
	writeJSON(w, http.StatusOK, nonNil(append(ws, ss...)))
}

func (s *Server) expireSilence(r *http.Request, id int64, who auth.Identity) (any, error) {
	var req ExpireRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return nil, badRequest("a reason is required to expire a silence")
	}
	sl, err := s.o.Store.ExpireSilence(r.Context(), id, store.SilenceExpiry{By: who.Name, Role: string(who.Role), Via: who.Via, Reason: req.Reason}, time.Now())
	if err != nil {
		return nil, err
	}
	s.o.Logger.Info("silence expired", "silence", sl.ID, "scope", sl.Scope(), "by", who.String())
	return sl, nil
}

// CreateSilence creates a silence as the caller (approver role).
func (c *Client) CreateSilence(ctx context.Context, req SilenceRequest) (store.Silence, error) {
	var out store.Silence
	return out, c.do(ctx, http.MethodPost, "/api/v1/silences", req, &out)
}

// Silences lists silences and configured maintenance windows (active
// only: those muting now).
func (c *Client) Silences(ctx context.Context, active bool) ([]store.Silence, error) {
	q := url.Values{}
	if active {
		q.Set("active", "true")
	}
	var out []store.Silence
	return out, c.do(ctx, http.MethodGet, "/api/v1/silences?"+q.Encode(), nil, &out)
}

// ExpireSilence ends silence id now, as the caller; req.Reason is
// required.
func (c *Client) ExpireSilence(ctx context.Context, id int64, req ExpireRequest) (store.Silence, error) {
	var out store.Silence
	return out, c.do(ctx, http.MethodPost, "/api/v1/silences/"+strconv.FormatInt(id, 10)+"/expire", req, &out)
}
