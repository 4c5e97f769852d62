// Package alerting receives Alertmanager's webhook (payload version 4) on
// POST /api/v1/alerts/alertmanager and turns alerts into tickets: one
// ticket per alert name and subject (invariant "alert:NAME"), deduplicated
// by Alertmanager's fingerprint, resolved when Alertmanager says resolved,
// and linked (store.LinkTicket, root_id) under the operator's own ticket
// when the alert means the same as one of its invariants (Invariants), so
// that one problem is one incident. docs/alerting.md has the table.
package alerting

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// Invariants maps the official PD and TiKV alert names (PingCAP's
// pd.rules.yml and tikv.rules.yml, v8.5.7, PingCAP's official rule files) to the
// operator's invariant that detects the same condition.
var Invariants = map[string]string{
	"PD_cluster_down_tikv_nums":         invariant.NameStoreDown,
	"PD_cluster_lost_connect_tikv_nums": invariant.NameStoreDisconnected,
	"PD_cluster_unhealthy_tikv_nums":    invariant.NameStoreUnhealthy,
	"PD_cluster_slow_tikv_nums":         invariant.NameStoreSlow,
	"PD_cluster_low_space":              invariant.NameStoreLowSpace,
	"TiKV_low_space":                    invariant.NameStoreLowSpace,
	"TiKV_space_used_more_than_80%":     invariant.NameClusterSpaceUsed,
	"PD_miss_peer_region_count":         invariant.NameRegionMissPeer,
	"PD_down_peer_region_nums":          invariant.NameRegionDownPeer,
	"PD_pending_peer_region_count":      invariant.NameRegionPendingPeer,
	"PD_no_store_for_making_replica":    invariant.NameUpStoresBelowReplicas,
	"TiKV_leader_drops":                 invariant.NameStoreLeaderDrop,
	"TiKV_approximate_region_size":      invariant.NameRegionOversized,
}

// MaxBody bounds a webhook body (bytes).
const MaxBody = 1 << 20

// Alert is one alert of the webhook payload.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Payload is Alertmanager's webhook body, version 4.
type Payload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Result is the body of a 200 answer.
type Result struct {
	Accepted int      `json:"accepted"`
	Ignored  int      `json:"ignored"`
	Tickets  []int64  `json:"tickets"`
	Notes    []string `json:"notes,omitempty"`
}

// Options configure the receiver.
type Options struct {
	Store *store.Store
	// Identify authenticates an Authorization header with the API's
	// tokens (api.Server.Identify); any role may post alerts.
	Identify func(*http.Request) (auth.Identity, error)
	// Token is [alerting] webhook-token; RequireToken refuses posts
	// without a valid token.
	Token        string
	RequireToken bool
	Now          func() time.Time
	Logger       *slog.Logger
}

// Receiver is the http.Handler of POST /api/v1/alerts/alertmanager.
type Receiver struct{ o Options }

// New returns a Receiver.
func New(o Options) *Receiver {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Receiver{o: o}
}

func (rc *Receiver) authorized(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		if rc.o.RequireToken {
			return errors.New("a bearer token is required ([alerting] require-token)")
		}
		return nil
	}
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return errors.New(`Authorization must be "Bearer TOKEN"`)
	}
	if rc.o.Token != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(secret)), []byte(rc.o.Token)) == 1 {
		return nil
	}
	if rc.o.Identify != nil {
		if _, err := rc.o.Identify(r); err == nil {
			return nil
		}
	}
	return errors.New("unknown token")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": safetext.Text(msg, 1000)})
}

// ServeHTTP implements http.Handler: 400 (nothing stored) for a malformed
// body, 401 for a bad token, 503 when the database failed (Alertmanager
// retries), 200 otherwise, also for alerts it ignored.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		fail(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	if err := rc.authorized(r); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="operator"`)
		fail(w, http.StatusUnauthorized, err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		fail(w, http.StatusRequestEntityTooLarge, "body: "+err.Error())
		return
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		fail(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return
	}
	if err := Validate(p); err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := rc.Ingest(r.Context(), p)
	if err != nil {
		rc.o.Logger.Error("alertmanager webhook", "err", err)
		fail(w, http.StatusServiceUnavailable, "retry later: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Validate checks a payload before anything is stored.
func Validate(p Payload) error {
	if p.Version != "4" {
		return fmt.Errorf("webhook payload version %q: only version 4 is understood", p.Version)
	}
	if p.Alerts == nil {
		return errors.New("no alerts array")
	}
	for i, a := range p.Alerts {
		if a.Status != "firing" && a.Status != "resolved" {
			return fmt.Errorf("alert %d: status %q (firing or resolved)", i, a.Status)
		}
		if a.Labels["alertname"] == "" {
			return fmt.Errorf("alert %d: no alertname label", i)
		}
		if a.StartsAt.IsZero() {
			return fmt.Errorf("alert %d: no startsAt", i)
		}
	}
	return nil
}

var unsafeSubject = regexp.MustCompile(`[^A-Za-z0-9_.:\-/%]`)

// subject names what the alert is about: its instance, else "cluster".
func subject(a Alert) string {
	if in := a.Labels["instance"]; in != "" {
		return "instance:" + unsafeSubject.ReplaceAllString(safetext.Text(in, 200), "_")
	}
	return "cluster"
}

func severity(a Alert) ticket.Severity {
	for _, k := range []string{"level", "severity"} {
		switch ticket.Severity(strings.ToLower(a.Labels[k])) {
		case ticket.Emergency:
			return ticket.Emergency
		case ticket.Critical:
			return ticket.Critical
		case ticket.Warning:
			return ticket.Warning
		}
	}
	return ticket.Warning
}

func fingerprint(a Alert) string {
	if a.Fingerprint != "" {
		return safetext.Text(a.Fingerprint, 64)
	}
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + a.Labels[k] + ",")
	}
	return "labels:" + safetext.Text(b.String(), 500)
}

func bounded(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if len(out) >= 50 {
			break
		}
		out[safetext.Text(k, 100)] = safetext.Text(v, 1000)
	}
	return out
}

// Ingest stores the alerts of a validated payload.
func (rc *Receiver) Ingest(ctx context.Context, p Payload) (Result, error) {
	res := Result{Tickets: []int64{}}
	now := rc.o.Now()
	for _, a := range p.Alerts {
		name := safetext.Text(a.Labels["alertname"], 200)
		inv := "alert:" + unsafeSubject.ReplaceAllString(name, "_")
		subj := subject(a)
		fp := fingerprint(a)
		labels, _ := json.Marshal(bounded(a.Labels))
		st := store.AlertState{Fingerprint: fp, AlertName: name, GroupKey: safetext.Text(p.GroupKey, 500), Status: a.Status,
			Invariant: inv, Subject: subj, Labels: string(labels), StartsAt: a.StartsAt}
		if a.Status == "resolved" {
			end := a.EndsAt
			if end.IsZero() {
				end = now
			}
			st.EndsAt = &end
			prev, ok, err := rc.o.Store.UpsertAlert(ctx, st, now)
			if err != nil {
				return res, err
			}
			if !ok || prev.TicketID == 0 {
				res.Ignored++
				res.Notes = append(res.Notes, fmt.Sprintf("%s (%s): resolved, never seen firing: ignored", name, fp))
				continue
			}
			res.Accepted++
			if n, err := rc.o.Store.FiringAlerts(ctx, prev.TicketID); err != nil {
				return res, err
			} else if n == 0 {
				if err := rc.o.Store.ResolveTicket(ctx, prev.TicketID, now); err != nil {
					var te *ticket.ErrTransition
					if !errors.As(err, &te) {
						return res, err
					}
				}
			}
			res.Tickets = append(res.Tickets, prev.TicketID)
			continue
		}
		ev, _ := json.Marshal(map[string]any{"source": "alertmanager", "alertname": name, "fingerprint": fp,
			"group_key": safetext.Text(p.GroupKey, 500), "labels": bounded(a.Labels), "annotations": bounded(a.Annotations),
			"starts_at": a.StartsAt, "generator_url": safetext.Text(a.GeneratorURL, 1000), "maps_to": Invariants[name]})
		summary := safetext.Text(a.Annotations["summary"], 300)
		if summary == "" {
			summary = name
		}
		t, _, err := rc.o.Store.Observe(ctx, ticket.Observation{Invariant: inv, Subject: subj, Severity: severity(a),
			Summary: "alert " + name + ": " + summary, Evidence: ev}, now)
		if err != nil {
			return res, err
		}
		st.TicketID = t.ID
		if _, _, err := rc.o.Store.UpsertAlert(ctx, st, now); err != nil {
			return res, err
		}
		res.Accepted++
		res.Tickets = append(res.Tickets, t.ID)
		if mapped := Invariants[name]; mapped != "" && t.RootID == nil {
			root, err := rc.operatorTicket(ctx, mapped, a)
			if err != nil {
				return res, err
			}
			if root != 0 {
				if err := rc.o.Store.LinkTicket(ctx, t.ID, root, now); err != nil {
					return res, err
				}
				res.Notes = append(res.Notes, fmt.Sprintf("%s linked to ticket %d (%s)", name, root, mapped))
			}
		}
	}
	return res, nil
}

// operatorTicket finds the operator's open ticket of invariant inv that
// the alert is about: the one whose subject or evidence names the alert's
// instance, else the oldest open one of that invariant (0 when none).
func (rc *Receiver) operatorTicket(ctx context.Context, inv string, a Alert) (int64, error) {
	ts, err := rc.o.Store.Tickets(ctx, store.TicketFilter{Statuses: []ticket.Status{ticket.Open, ticket.Diagnosed}})
	if err != nil {
		return 0, err
	}
	var best int64
	for _, t := range ts {
		if t.Invariant != inv {
			continue
		}
		if in := a.Labels["instance"]; in != "" && strings.Contains(string(t.Evidence), in) {
			return t.ID, nil
		}
		if best == 0 || t.ID < best {
			best = t.ID
		}
	}
	return best, nil
}

// Relink links the open tickets of firing alerts that mean the same as an
// operator invariant (Invariants) but found no operator ticket when they
// arrived, because the alert came first: under the operator's open ticket
// of that invariant once there is one. The daemon calls it every
// RelinkInterval, so that one problem is one incident whichever side saw
// it first. It returns how many tickets it linked.
func (rc *Receiver) Relink(ctx context.Context) (int, error) {
	ts, err := rc.o.Store.Tickets(ctx, store.TicketFilter{Statuses: []ticket.Status{ticket.Open, ticket.Diagnosed}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range ts {
		if t.RootID != nil || !strings.HasPrefix(t.Invariant, "alert:") {
			continue
		}
		var ev struct {
			AlertName string            `json:"alertname"`
			Labels    map[string]string `json:"labels"`
		}
		if json.Unmarshal(t.FirstEvidence, &ev) != nil || Invariants[ev.AlertName] == "" {
			continue
		}
		mapped := Invariants[ev.AlertName]
		root, err := rc.operatorTicket(ctx, mapped, Alert{Labels: ev.Labels})
		if err != nil {
			return n, err
		}
		if root == 0 {
			continue
		}
		if err := rc.o.Store.LinkTicket(ctx, t.ID, root, rc.o.Now()); err != nil {
			return n, err
		}
		rc.o.Logger.Info("alert ticket linked under the operator's ticket", "ticket_id", t.ID, "alertname", ev.AlertName, "root_id", root, "invariant", mapped)
		n++
	}
	return n, nil
}

// RelinkInterval is how often the daemon runs Relink.
const RelinkInterval = 2 * time.Second

// RunRelink calls Relink every RelinkInterval until ctx ends; errors are
// logged and retried.
func (rc *Receiver) RunRelink(ctx context.Context) error {
	t := time.NewTicker(RelinkInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := rc.Relink(ctx); err != nil && ctx.Err() == nil {
			rc.o.Logger.Warn("relink alert tickets", "err", err)
		}
	}
}
