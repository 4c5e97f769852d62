// Package api is the daemon's HTTP API under /api/v1: the reads behind a
// decision (tickets, actions, audit records, chain verification) and the
// decisions themselves (dry run, approve, reject). The daemon is the only
// writer of decisions; every request carries an authenticated identity
// (package auth): the peer's OS user on the Unix socket, a bearer token,
// or a trusted auth proxy's header. JSON in and out; documented in
// docs/api.md.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// MaxBody bounds a request body (bytes).
const MaxBody = 64 << 10

// Error codes of an error body {"error": "...", "code": "..."}.
const (
	CodeBadRequest      = "bad_request"     // 400
	CodeUnauthenticated = "unauthenticated" // 401
	CodeForbidden       = "forbidden"       // 403: the role does not allow it
	CodeNotFound        = "not_found"       // 404
	CodeWrongState      = "wrong_state"     // 409: not in a status that allows it
	CodeExpired         = "expired"         // 409
	CodePolicy          = "policy"          // 409: refused by the approval policy
	CodeWrongCluster    = "wrong_cluster"   // 409
	CodePDUnreachable   = "pd_unreachable"  // 503
	CodeInternal        = "internal"        // 500
)

// Options configure a Server.
type Options struct {
	Store    *store.Store
	Executor *executor.Executor
	// Tokens authenticates bearer tokens (nil: none configured).
	Tokens *auth.Tokens
	// ProxyUserHeader, ProxyTrusted and ProxyRoles configure the trusted
	// auth-proxy header (empty header: not honoured).
	ProxyUserHeader string
	ProxyTrusted    []netip.Prefix
	ProxyRoles      map[string]string
	// Verify runs the audit chain verification with the daemon's key and
	// checkpoint.
	Verify func(ctx context.Context) (store.VerifyReport, error)
	// Windows are the configured maintenance windows, listed with the
	// silences (MaintenanceSilences).
	Windows []store.Silence
	// Version is reported by whoami.
	Version string
	Logger  *slog.Logger
}

// Server serves the API. Its handler expects the identity of socket
// connections in the request context (ConnContext); see Handler.
type Server struct{ o Options }

// New returns a Server.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o}
}

type peerKey struct{}

// UnixConnContext is http.Server.ConnContext for the Unix-socket listener:
// it reads the peer's credentials once per connection and attaches the
// identity (or the error) to every request on it.
func UnixConnContext(p auth.UnixPolicy) func(ctx context.Context, c net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		id, err := p.Identify(c)
		if err != nil {
			return context.WithValue(ctx, peerKey{}, err)
		}
		return auth.WithIdentity(ctx, id)
	}
}

// Handler returns the API's routes under /api/v1/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/whoami", s.authn(auth.Viewer, s.whoami))
	mux.HandleFunc("GET /api/v1/clusters", s.authn(auth.Viewer, s.listClusters))
	mux.HandleFunc("GET /api/v1/tickets", s.authn(auth.Viewer, s.listTickets))
	mux.HandleFunc("GET /api/v1/tickets/{id}", s.authn(auth.Viewer, s.object(s.getTicket)))
	mux.HandleFunc("GET /api/v1/actions", s.authn(auth.Viewer, s.listActions))
	mux.HandleFunc("GET /api/v1/actions/{id}", s.authn(auth.Viewer, s.object(s.getAction)))
	mux.HandleFunc("POST /api/v1/actions/{id}/dry-run", s.authn(auth.Approver, s.object(s.dryRun)))
	mux.HandleFunc("POST /api/v1/actions/{id}/approve", s.authn(auth.Approver, s.object(s.approve)))
	mux.HandleFunc("POST /api/v1/actions/{id}/reject", s.authn(auth.Approver, s.object(s.reject)))
	mux.HandleFunc("POST /api/v1/actions", s.authn(auth.Approver, s.propose))
	mux.HandleFunc("GET /api/v1/reverts", s.authn(auth.Viewer, s.listReverts))
	mux.HandleFunc("POST /api/v1/reverts/{id}/cancel", s.authn(auth.Approver, s.object(s.cancelRevert)))
	mux.HandleFunc("POST /api/v1/reverts/{id}/extend", s.authn(auth.Approver, s.object(s.extendRevert)))
	mux.HandleFunc("GET /api/v1/audit", s.authn(auth.Viewer, s.listAudit))
	mux.HandleFunc("GET /api/v1/audit/verify", s.authn(auth.Viewer, s.verify))
	mux.HandleFunc("GET /api/v1/silences", s.authn(auth.Viewer, s.listSilences))
	mux.HandleFunc("POST /api/v1/silences", s.authn(auth.Approver, s.createSilence))
	mux.HandleFunc("POST /api/v1/silences/{id}/expire", s.authn(auth.Approver, s.object(s.expireSilence)))
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, CodeNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// Identify returns the identity of r: the socket peer (set by
// UnixConnContext), else a bearer token, else the trusted proxy header.
func (s *Server) Identify(r *http.Request) (auth.Identity, error) {
	if id, ok := auth.FromContext(r.Context()); ok {
		return id, nil
	}
	if err, ok := r.Context().Value(peerKey{}).(error); ok {
		return auth.Identity{}, fmt.Errorf("socket peer credentials: %w", err)
	}
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return auth.Identity{}, errors.New("Authorization must be \"Bearer TOKEN\"")
		}
		id, ok := s.o.Tokens.Authenticate(strings.TrimSpace(secret))
		if !ok {
			return auth.Identity{}, errors.New("unknown token")
		}
		return id, nil
	}
	if s.o.ProxyUserHeader != "" {
		if user := r.Header.Get(s.o.ProxyUserHeader); user != "" {
			if !s.trustedProxy(r.RemoteAddr) {
				return auth.Identity{}, fmt.Errorf("%s header from %s, which is not a trusted proxy", s.o.ProxyUserHeader, r.RemoteAddr)
			}
			if err := auth.ValidName(user); err != nil {
				return auth.Identity{}, err
			}
			role := auth.Viewer
			if v, ok := s.o.ProxyRoles[user]; ok {
				if r, err := auth.ParseRole(v); err == nil {
					role = r
				}
			}
			return auth.Identity{Name: user, Role: role, Via: "proxy"}, nil
		}
	}
	return auth.Identity{}, errors.New("no credentials: use the daemon's Unix socket, or a token (CLI: --token TOKEN or $OPERATOR_TOKEN; HTTP: Authorization: Bearer TOKEN)")
}

func (s *Server) trustedProxy(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	for _, p := range s.o.ProxyTrusted {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

type handler func(w http.ResponseWriter, r *http.Request, id auth.Identity)

// objectFunc handles a request about one object, the {id} of the path,
// and returns the answer's body (200) or an error (badRequest: 400; others
// through fail).
type objectFunc func(r *http.Request, id int64, who auth.Identity) (any, error)

// badRequest is an error answered 400 with its text.
type badRequest string

func (e badRequest) Error() string { return string(e) }

// object adapts an objectFunc: it parses {id} (400 unless a positive
// integer), calls fn and writes its body or its error.
func (s *Server) object(fn objectFunc) handler {
	return func(w http.ResponseWriter, r *http.Request, who auth.Identity) {
		id, err := pathID(r)
		if err != nil {
			writeErr(w, http.StatusBadRequest, CodeBadRequest, err.Error())
			return
		}
		v, err := fn(r, id, who)
		var br badRequest
		switch {
		case errors.As(err, &br):
			writeErr(w, http.StatusBadRequest, CodeBadRequest, br.Error())
		case err != nil:
			s.fail(w, err)
		default:
			writeJSON(w, http.StatusOK, v)
		}
	}
}

func (s *Server) authn(min auth.Role, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := s.Identify(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="operator"`)
			writeErr(w, http.StatusUnauthorized, CodeUnauthenticated, err.Error())
			return
		}
		if !id.Role.AtLeast(min) {
			writeErr(w, http.StatusForbidden, CodeForbidden, fmt.Sprintf("%s has role %s; %s %s needs %s", id.Name, id.Role, r.Method, r.URL.Path, min))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		h(w, r, id)
	}
}

// WhoAmI is the body of GET /api/v1/whoami.
type WhoAmI struct {
	Identity auth.Identity `json:"identity"`
	// ClusterID is the PD cluster the daemon acts on ("" before it could
	// read it from PD).
	ClusterID string `json:"cluster_id"`
	// Cluster is the name ClusterID is bound under ([cluster] name).
	Cluster string `json:"cluster,omitempty"`
	Version string `json:"version"`
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	writeJSON(w, http.StatusOK, WhoAmI{Identity: id, ClusterID: s.o.Store.ClusterID(), Cluster: s.o.Store.ClusterName(), Version: s.o.Version})
}

// clusterQuery resolves the query parameter cluster=NAME (a [cluster]
// name the database holds) to its PD cluster id; "" when absent (every
// cluster). An unknown name is answered 400 and ok is false.
func (s *Server) clusterQuery(w http.ResponseWriter, r *http.Request) (id string, ok bool) {
	name := r.URL.Query().Get("cluster")
	if name == "" {
		return "", true
	}
	id, err := s.o.Store.ClusterNamed(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		writeErr(w, http.StatusBadRequest, CodeBadRequest, safetext.Line(err.Error(), 300))
		return "", false
	}
	if err != nil {
		s.fail(w, err)
		return "", false
	}
	return id, true
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	cs, err := s.o.Store.ClusterList(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(cs))
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("id %q is not a positive integer", r.PathValue("id"))
	}
	return id, nil
}

func queryInt(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q is not a non-negative integer", name, v)
	}
	return n, nil
}

func (s *Server) listTickets(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	f := store.TicketFilter{}
	for _, st := range splitQuery(r, "status") {
		f.Statuses = append(f.Statuses, ticket.Status(st))
	}
	var ok bool
	if f.Cluster, ok = s.clusterQuery(w, r); !ok {
		return
	}
	ts, err := s.o.Store.Tickets(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	if ts == nil {
		ts = []ticket.Ticket{}
	}
	writeJSON(w, http.StatusOK, ts)
}

// TicketView is the body of GET /api/v1/tickets/{id}.
type TicketView struct {
	Ticket  ticket.Ticket     `json:"ticket"`
	Actions []action.Proposal `json:"actions"`
	Records []action.Record   `json:"records"`
}

func (s *Server) getTicket(r *http.Request, id int64, _ auth.Identity) (any, error) {
	t, err := s.o.Store.Ticket(r.Context(), id)
	if err != nil {
		return nil, err
	}
	ps, err := s.o.Store.Proposals(r.Context(), store.ProposalFilter{TicketID: id})
	if err != nil {
		return nil, err
	}
	recs, err := s.o.Store.Records(r.Context(), store.RecordFilter{TicketID: id})
	if err != nil {
		return nil, err
	}
	return TicketView{Ticket: t, Actions: nonNil(ps), Records: nonNil(recs)}, nil
}

func (s *Server) listActions(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	f := store.ProposalFilter{}
	for _, st := range splitQuery(r, "status") {
		f.Statuses = append(f.Statuses, action.Status(st))
	}
	tid, err := queryInt(r, "ticket")
	if err != nil {
		writeErr(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	f.TicketID = tid
	var ok bool
	if f.Cluster, ok = s.clusterQuery(w, r); !ok {
		return
	}
	ps, err := s.o.Store.Proposals(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(ps))
}

// ActionView is the body of GET /api/v1/actions/{id}.
type ActionView struct {
	Action       action.Proposal `json:"action"`
	Records      []action.Record `json:"records"`
	TicketStatus ticket.Status   `json:"ticket_status"`
}

func (s *Server) actionView(ctx context.Context, id int64) (ActionView, error) {
	p, err := s.o.Store.Proposal(ctx, id)
	if err != nil {
		return ActionView{}, err
	}
	recs, err := s.o.Store.Records(ctx, store.RecordFilter{ProposalID: id})
	if err != nil {
		return ActionView{}, err
	}
	v := ActionView{Action: p, Records: nonNil(recs)}
	if t, err := s.o.Store.Ticket(ctx, p.TicketID); err == nil {
		v.TicketStatus = t.Status
	}
	return v, nil
}

func (s *Server) getAction(r *http.Request, id int64, _ auth.Identity) (any, error) {
	return s.actionView(r.Context(), id)
}

// DecisionRequest is the body of POST .../approve and .../reject.
type DecisionRequest struct {
	// OnBehalfOf: an admin deciding for another person.
	OnBehalfOf string `json:"on_behalf_of,omitempty"`
	// EvidenceDigest: the hash of the dry-run record the person saw.
	EvidenceDigest string `json:"evidence_digest,omitempty"`
	// Reason is required to reject.
	Reason string `json:"reason,omitempty"`
}

// DryRunResponse is the body of POST .../dry-run.
type DryRunResponse struct {
	DryRun action.DryRunResult `json:"dry_run"`
	Action action.Proposal     `json:"action"`
	Record action.Record       `json:"record"`
}

// ApproveResponse is the body of POST .../approve.
type ApproveResponse struct {
	Action    action.Proposal `json:"action"`
	Approvals int             `json:"approvals"`
	Required  int             `json:"required"`
}

func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return badRequest("read body: " + err.Error())
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: " + err.Error())
	}
	return nil
}

func (s *Server) dryRun(r *http.Request, id int64, who auth.Identity) (any, error) {
	res, rec, err := s.o.Executor.DryRunAs(r.Context(), id, who)
	if err != nil {
		return nil, err
	}
	p, err := s.o.Store.Proposal(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return DryRunResponse{DryRun: res, Action: p, Record: rec}, nil
}

func (s *Server) approve(r *http.Request, id int64, who auth.Identity) (any, error) {
	var req DecisionRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	p, res, err := s.o.Executor.ApproveAs(r.Context(), id, who, executor.Decision{OnBehalfOf: req.OnBehalfOf, EvidenceDigest: req.EvidenceDigest})
	if err != nil {
		return nil, err
	}
	return ApproveResponse{Action: p, Approvals: res.Approvals, Required: res.Required}, nil
}

func (s *Server) reject(r *http.Request, id int64, who auth.Identity) (any, error) {
	var req DecisionRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	reason := safetext.Text(strings.TrimSpace(req.Reason), 1000)
	if reason == "" {
		return nil, badRequest("a reason is required to reject")
	}
	return s.o.Executor.RejectAs(r.Context(), id, who, executor.Decision{OnBehalfOf: req.OnBehalfOf}, reason)
}

// ProposeRequest is the body of POST /api/v1/actions: a person proposes a
// catalog action, which someone else then approves.
type ProposeRequest struct {
	ActionType string          `json:"action_type"`
	Params     json.RawMessage `json:"params,omitempty"`
	// TicketID: the ticket the action is for; absent or 0 creates a
	// manual ticket.
	TicketID int64 `json:"ticket_id,omitempty"`
	// Reason is required.
	Reason string `json:"reason"`
}

func (s *Server) propose(w http.ResponseWriter, r *http.Request, who auth.Identity) {
	var req ProposeRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	if strings.TrimSpace(req.ActionType) == "" || strings.TrimSpace(req.Reason) == "" {
		writeErr(w, http.StatusBadRequest, CodeBadRequest, "action_type and reason are required")
		return
	}
	p, err := s.o.Executor.ProposeAs(r.Context(), who, executor.Proposal{
		ActionType: req.ActionType, Params: req.Params, TicketID: req.TicketID, Reason: req.Reason})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) listReverts(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	f := store.FollowUpFilter{}
	for _, st := range splitQuery(r, "status") {
		f.Statuses = append(f.Statuses, store.FollowUpStatus(st))
	}
	var err error
	if f.ProposalID, err = queryInt(r, "action"); err != nil {
		writeErr(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	fs, err := s.o.Store.FollowUps(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(fs))
}

// RevertRequest is the body of POST /api/v1/reverts/{id}/cancel (Reason
// required) and .../extend (By, a Go duration such as "30m", required).
type RevertRequest struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

func (s *Server) cancelRevert(r *http.Request, id int64, who auth.Identity) (any, error) {
	var req RevertRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return nil, badRequest("a reason is required to cancel a scheduled revert")
	}
	return s.o.Executor.CancelRevertAs(r.Context(), id, who, req.Reason)
}

func (s *Server) extendRevert(r *http.Request, id int64, who auth.Identity) (any, error) {
	var req RevertRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	d, err := time.ParseDuration(strings.TrimSpace(req.By))
	if err != nil {
		return nil, badRequest(fmt.Sprintf("by %q: want a Go duration such as 30m", safetext.Line(req.By, 64)))
	}
	return s.o.Executor.ExtendRevertAs(r.Context(), id, who, d)
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	f := store.RecordFilter{}
	var err error
	if f.ProposalID, err = queryInt(r, "action"); err == nil {
		if f.TicketID, err = queryInt(r, "ticket"); err == nil {
			var lim int64
			lim, err = queryInt(r, "limit")
			f.Limit = int(lim)
		}
	}
	if err != nil {
		writeErr(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	var ok bool
	if f.Cluster, ok = s.clusterQuery(w, r); !ok {
		return
	}
	recs, err := s.o.Store.Records(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nonNil(recs))
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	rep, err := s.o.Verify(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// fail maps an error to its status and code.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var (
		te *action.ErrTransition
		tt *ticket.ErrTransition
	)
	msg := safetext.Text(err.Error(), 4096)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, CodeNotFound, msg)
	case errors.Is(err, executor.ErrForbidden):
		writeErr(w, http.StatusForbidden, CodeForbidden, msg)
	case errors.As(err, &te), errors.As(err, &tt), errors.Is(err, store.ErrFollowUpState), errors.Is(err, store.ErrSilenceOver):
		writeErr(w, http.StatusConflict, CodeWrongState, msg)
	case errors.Is(err, store.ErrExpired):
		writeErr(w, http.StatusConflict, CodeExpired, msg)
	case errors.Is(err, executor.ErrPolicy), errors.Is(err, store.ErrPolicy):
		writeErr(w, http.StatusConflict, CodePolicy, msg)
	case errors.Is(err, store.ErrWrongCluster):
		writeErr(w, http.StatusConflict, CodeWrongCluster, msg)
	case errors.Is(err, store.ErrInvalid):
		writeErr(w, http.StatusBadRequest, CodeBadRequest, msg)
	case errors.Is(err, pd.ErrUnreachable):
		writeErr(w, http.StatusServiceUnavailable, CodePDUnreachable, msg)
	default:
		s.o.Logger.Error("api request failed", "err", err)
		writeErr(w, http.StatusInternalServerError, CodeInternal, msg)
	}
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorBody{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func splitQuery(r *http.Request, name string) []string {
	var out []string
	for _, v := range r.URL.Query()[name] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
