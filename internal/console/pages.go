package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
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

// MaxListed bounds the tickets and audit records a list page shows.
const MaxListed = 500

func canDecide(se *session) bool { return se != nil && se.who.Role.AtLeast(auth.Approver) }

func pathID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

// fail renders a store or executor error as a page with its status.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, se *session, err error) {
	status := http.StatusInternalServerError
	var (
		te *action.ErrTransition
		tt *ticket.ErrTransition
	)
	switch {
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, executor.ErrForbidden):
		status = http.StatusForbidden
	case errors.As(err, &te), errors.As(err, &tt), errors.Is(err, store.ErrExpired), errors.Is(err, executor.ErrPolicy),
		errors.Is(err, store.ErrPolicy), errors.Is(err, store.ErrWrongCluster):
		status = http.StatusConflict
	case errors.Is(err, store.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, pd.ErrUnreachable):
		status = http.StatusServiceUnavailable
	default:
		s.o.Logger.Error("console request failed", "path", r.URL.Path, "err", err)
	}
	s.errorPage(w, r, se, status, err.Error())
}

// ---- tickets ----

type ticketRow struct {
	T        ticket.Ticket
	Cluster  string // the ticket's cluster name; "" when the database holds one cluster
	Summary  string
	Action   *action.Proposal
	Children []ticketRow
}

type ticketsView struct {
	Clusters                    clusterFilter
	Status, Severity, Invariant string
	Invariants                  []string
	Rows                        []ticketRow
	Count                       int
}

func (s *Server) tickets(w http.ResponseWriter, r *http.Request, se *session) {
	q := r.URL.Query()
	v := ticketsView{Status: q.Get("status"), Severity: q.Get("severity"), Invariant: q.Get("invariant")}
	f := store.TicketFilter{Limit: MaxListed}
	var err error
	if v.Clusters, err = s.clusterFilter(r); err != nil {
		s.errorPage(w, r, se, http.StatusBadRequest, err.Error())
		return
	}
	f.Cluster = v.Clusters.ID
	switch v.Status {
	case "", "all":
		v.Status = ""
	case "active":
		f.Statuses = []ticket.Status{ticket.Open, ticket.Diagnosed}
	default:
		f.Statuses = []ticket.Status{ticket.Status(v.Status)}
	}
	all, err := s.o.Store.Tickets(r.Context(), f)
	if err != nil {
		s.fail(w, r, se, err)
		return
	}
	props, err := s.o.Store.Proposals(r.Context(), store.ProposalFilter{Cluster: f.Cluster})
	if err != nil {
		s.fail(w, r, se, err)
		return
	}
	latest := map[int64]*action.Proposal{}
	for i := range props {
		p := &props[i]
		if cur := latest[p.TicketID]; cur == nil || p.ID > cur.ID {
			latest[p.TicketID] = p
		}
	}
	invs := map[string]bool{}
	var kept []ticket.Ticket
	for _, t := range all {
		invs[t.Invariant] = true
		if v.Severity != "" && string(t.Severity) != v.Severity {
			continue
		}
		if v.Invariant != "" && t.Invariant != v.Invariant {
			continue
		}
		kept = append(kept, t)
	}
	for k := range invs {
		v.Invariants = append(v.Invariants, k)
	}
	sort.Strings(v.Invariants)
	// Incidents: a linked ticket is listed under its root when the root is
	// listed too (newest first in both).
	listed := map[int64]bool{}
	for _, t := range kept {
		listed[t.ID] = true
	}
	children := map[int64][]ticketRow{}
	for _, t := range kept {
		if t.RootID != nil && listed[*t.RootID] && *t.RootID != t.ID {
			children[*t.RootID] = append(children[*t.RootID], ticketRow{T: t, Cluster: v.Clusters.Row(t.ClusterID), Summary: safetext.Line(t.Summary, 300), Action: latest[t.ID]})
		}
	}
	for _, t := range kept {
		if t.RootID != nil && listed[*t.RootID] && *t.RootID != t.ID {
			continue
		}
		v.Rows = append(v.Rows, ticketRow{T: t, Cluster: v.Clusters.Row(t.ClusterID), Summary: safetext.Line(t.Summary, 300), Action: latest[t.ID], Children: children[t.ID]})
	}
	v.Count = len(kept)
	s.render(w, r, se, http.StatusOK, "tickets", v)
}

// ---- one ticket ----

type timelineEntry struct {
	At   time.Time
	Kind string // observation, diagnosis, proposal, dry_run, approval, rejection, execution, resolved
	Text string
	Link string
}

type ticketView struct {
	T         ticket.Ticket
	Summary   string
	Evidence  []kv
	First     []kv
	Diagnosis template.HTML
	Backend   string
	DiagErr   string
	Actions   []action.Proposal
	Timeline  []timelineEntry
	Root      *ticket.Ticket
	Linked    []ticket.Ticket
}

func (v ticketView) title() string { return fmt.Sprintf("Ticket %d: %s", v.T.ID, v.T.Key) }

func (s *Server) ticket(w http.ResponseWriter, r *http.Request, se *session) {
	id, ok := pathID(r)
	if !ok {
		s.errorPage(w, r, se, http.StatusBadRequest, "a ticket id is a positive integer")
		return
	}
	ctx := r.Context()
	t, err := s.o.Store.Ticket(ctx, id)
	if err != nil {
		s.fail(w, r, se, err)
		return
	}
	v := ticketView{T: t, Summary: safetext.Text(t.Summary, 2000), Evidence: flatten(t.Evidence),
		Backend: safetext.Line(t.DiagnosisBackend, 100), DiagErr: safetext.Text(t.LastDiagnosisErr, 2000)}
	if string(t.FirstEvidence) != string(t.Evidence) {
		v.First = flatten(t.FirstEvidence)
	}
	if t.DiagnosisMarkdown != "" {
		v.Diagnosis = renderMarkdown(t.DiagnosisMarkdown)
	}
	if v.Actions, err = s.o.Store.Proposals(ctx, store.ProposalFilter{TicketID: id}); err != nil {
		s.fail(w, r, se, err)
		return
	}
	recs, err := s.o.Store.Records(ctx, store.RecordFilter{TicketID: id})
	if err != nil {
		s.fail(w, r, se, err)
		return
	}
	past, err := s.o.Store.Diagnoses(ctx, id)
	if err != nil {
		s.fail(w, r, se, err)
		return
	}
	rootID := id
	if t.RootID != nil {
		rootID = *t.RootID
		if root, err := s.o.Store.Ticket(ctx, rootID); err == nil {
			v.Root = &root
		}
	}
	if linked, err := s.o.Store.LinkedTickets(ctx, rootID); err == nil {
		for _, lid := range linked {
			if lid == id {
				continue
			}
			if lt, err := s.o.Store.Ticket(ctx, lid); err == nil {
				v.Linked = append(v.Linked, lt)
			}
		}
	}
	v.Timeline = s.timeline(t, past, v.Actions, recs)
	s.render(w, r, se, http.StatusOK, "ticket", v)
}

func (s *Server) timeline(t ticket.Ticket, past []store.PastDiagnosis, props []action.Proposal, recs []action.Record) []timelineEntry {
	var tl []timelineEntry
	add := func(at time.Time, kind, text, link string) {
		if !at.IsZero() {
			tl = append(tl, timelineEntry{At: at, Kind: kind, Text: safetext.Line(text, 600), Link: link})
		}
	}
	add(t.FirstSeen, "observation", fmt.Sprintf("opened: %s (%s)", t.Summary, t.Severity), "")
	if t.LastSeen.After(t.FirstSeen) {
		add(t.LastSeen, "observation", fmt.Sprintf("last seen violated (%s in all)", plural(int(t.Occurrences), "observation", "observations")), "")
	}
	for _, d := range past {
		if d.DiagnosedAt != nil {
			add(*d.DiagnosedAt, "diagnosis", "diagnosed by "+d.Backend+" (archived)", "")
		}
		add(d.ArchivedAt, "diagnosis", "new diagnosis requested: "+d.Reason, "")
	}
	if t.DiagnosedAt != nil {
		add(*t.DiagnosedAt, "diagnosis", "diagnosed by "+t.DiagnosisBackend, "")
	}
	for _, p := range props {
		link := fmt.Sprintf("%s/actions/%d", s.o.Prefix, p.ID)
		add(p.ProposedAt, "proposal", fmt.Sprintf("action %d proposed by %s: %s %s", p.ID, p.ProposedBy, p.ActionType, compact(p.Params)), link)
		if p.FinishedAt != nil && (p.Status == action.Expired || p.Status == action.Refused) {
			add(*p.FinishedAt, "decision", fmt.Sprintf("action %d %s: %s", p.ID, p.Status, p.Result), link)
		}
	}
	for _, rec := range recs {
		link := fmt.Sprintf("%s/actions/%d", s.o.Prefix, rec.ProposalID)
		kind, text := recordSummary(rec)
		add(rec.StartedAt, kind, fmt.Sprintf("action %d: %s", rec.ProposalID, text), link)
	}
	if t.ResolvedAt != nil {
		add(*t.ResolvedAt, "resolved", "resolved: the invariant held again for the quiet period", "")
	}
	sort.SliceStable(tl, func(i, j int) bool { return tl[i].At.Before(tl[j].At) })
	return tl
}

func compact(b json.RawMessage) string {
	if len(b) == 0 {
		return ""
	}
	return scalar(b)
}

// recordSummary names a record's event and says who did what.
func recordSummary(rec action.Record) (kind, text string) {
	who := rec.ApprovedBy
	if who == "" {
		who = rec.ExecutedBy
	}
	if rec.OnBehalfOf != "" {
		who += " on behalf of " + rec.OnBehalfOf
	}
	switch {
	case rec.Event == action.EventApproval:
		return "approval", "approved by " + who + roleOf(rec)
	case rec.Event == action.EventRejection:
		// The store writes "rejected by NAME[ on behalf of X]: REASON".
		return "rejection", rec.Message + roleOf(rec)
	case rec.Event == action.EventDryRun || rec.DryRun:
		return "dry_run", "dry run by " + who + roleOf(rec) + ": " + rec.Message
	case rec.IsExecution():
		verdict := "failed"
		if rec.Success {
			verdict = "succeeded"
		}
		return "execution", fmt.Sprintf("executed by %s, %s: %s", rec.ExecutedBy, verdict, rec.Message)
	}
	return rec.Event, rec.Message
}

func roleOf(rec action.Record) string {
	if rec.ActorRole == "" {
		return ""
	}
	return " (" + rec.ActorRole + ")"
}

// ---- one action ----

type paramRow struct {
	Name, Value, Doc string
}

type recordRow struct {
	R       action.Record
	Cluster string // the record's cluster name on the audit page; "" when the database holds one cluster
	Kind    string
	Text    string
}

type actionView struct {
	A         action.Proposal
	Ticket    *ticket.Ticket
	Rationale string
	Risks     []string
	Spec      *action.Spec
	SpecErr   string
	Params    []paramRow
	Result    string
	Rejection string
	// Dry is the full dry run this person ran; LastDry the latest dry-run
	// record (anyone's).
	Dry      *dryView
	LastDry  *action.Record
	Requests []action.Request
	ReqFrom  string
	Diff     *stateDiff
	DiffFrom string
	Records  []recordRow
	// Decision panel.
	Pending   bool
	Approvers []string
	Approvals int
	Required  int
	Mine      bool
	CanDecide bool
	Evidence  string
}

func (v actionView) title() string { return fmt.Sprintf("Action %d: %s", v.A.ID, v.A.ActionType) }

func (s *Server) action(w http.ResponseWriter, r *http.Request, se *session) {
	id, ok := pathID(r)
	if !ok {
		s.errorPage(w, r, se, http.StatusBadRequest, "an action id is a positive integer")
		return
	}
	v, err := s.actionView(r.Context(), id, se)
	if err != nil {
		s.fail(w, r, se, err)
		return
	}
	s.render(w, r, se, http.StatusOK, "action", v)
}

func (s *Server) actionView(ctx context.Context, id int64, se *session) (actionView, error) {
	p, err := s.o.Store.Proposal(ctx, id)
	if err != nil {
		return actionView{}, err
	}
	v := actionView{A: p, Rationale: safetext.Text(p.Rationale, 8192), Result: safetext.Text(p.Result, 4096),
		Rejection: safetext.Text(p.RejectionReason, 2000), CanDecide: canDecide(se)}
	for _, risk := range p.Risks {
		v.Risks = append(v.Risks, safetext.Text(risk, 2000))
	}
	if t, err := s.o.Store.Ticket(ctx, p.TicketID); err == nil {
		v.Ticket = &t
	}
	var params map[string]json.RawMessage
	_ = json.Unmarshal(p.Params, &params)
	docs := map[string]string{}
	if s.o.Catalog != nil {
		if a, err := s.o.Catalog.Lookup(p.ActionType); err != nil {
			v.SpecErr = err.Error()
		} else {
			spec := a.Spec()
			v.Spec = &spec
			for _, prm := range spec.Params {
				docs[prm.Name] = prm.Description
			}
		}
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v.Params = append(v.Params, paramRow{Name: safetext.Line(k, 100), Value: scalar(params[k]), Doc: docs[k]})
	}
	recs, err := s.o.Store.Records(ctx, store.RecordFilter{ProposalID: id})
	if err != nil {
		return actionView{}, err
	}
	var exec *action.Record
	for i := range recs {
		rec := &recs[i]
		kind, text := recordSummary(*rec)
		v.Records = append(v.Records, recordRow{R: *rec, Kind: kind, Text: safetext.Text(text, 4096)})
		if kind == "execution" && exec == nil {
			exec = rec
		}
		if kind == "dry_run" && v.LastDry == nil {
			v.LastDry = rec
		}
	}
	if se != nil {
		s.mu.Lock()
		if d, ok := se.dry[id]; ok {
			v.Dry = &d
		}
		s.mu.Unlock()
	}
	switch {
	case exec != nil:
		v.Requests, v.ReqFrom = requestsOf(exec.Requests), "Sent by the execution"
		v.Diff, v.DiffFrom = diffStates(exec.StateBefore, exec.StateAfter), "Captured by the execution"
	case v.Dry != nil:
		v.Requests, v.ReqFrom = v.Dry.Result.Requests, "From the dry run: what an execution would send"
		v.Diff, v.DiffFrom = diffStates(v.Dry.Record.StateBefore, nil), "Captured by the dry run (not executed yet)"
	case v.LastDry != nil:
		v.Requests, v.ReqFrom = requestsOf(v.LastDry.Requests), "From the latest dry run: what an execution would send"
		v.Diff, v.DiffFrom = diffStates(v.LastDry.StateBefore, nil), "Captured by the latest dry run (not executed yet)"
	}
	for i := range v.Requests {
		v.Requests[i].Path = safetext.Line(v.Requests[i].Path, 2000)
	}
	v.Pending = p.Status == action.Proposed || p.Status == action.DryRun
	if v.Pending {
		apps, err := s.o.Store.Approvals(ctx, id)
		if err != nil {
			return actionView{}, err
		}
		seen := map[string]bool{}
		for _, a := range apps {
			name := a.ApprovedBy
			if a.OnBehalfOf != "" {
				name = a.OnBehalfOf
			}
			if !seen[strings.ToLower(name)] {
				seen[strings.ToLower(name)] = true
				v.Approvers = append(v.Approvers, name)
			}
			if se != nil && strings.EqualFold(name, se.who.Name) {
				v.Mine = true
			}
		}
		v.Approvals = len(v.Approvers)
		v.Required = 1
		if v.Spec != nil {
			v.Required = s.o.Required(v.Spec.Risk)
		}
		switch {
		case v.Dry != nil:
			v.Evidence = v.Dry.Record.Hash
		case v.LastDry != nil:
			v.Evidence = v.LastDry.Hash
		}
	}
	return v, nil
}

func requestsOf(raw json.RawMessage) []action.Request {
	var out []action.Request
	_ = json.Unmarshal(raw, &out)
	return out
}

// decide handles POST .../dry-run, .../approve and .../reject.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, se *session) {
	id, ok := pathID(r)
	if !ok {
		s.errorPage(w, r, se, http.StatusBadRequest, "an action id is a positive integer")
		return
	}
	if !canDecide(se) {
		s.o.Logger.Warn("console decision refused: role", "name", se.who.Name, "role", se.who.Role, "path", r.URL.Path)
		s.errorPage(w, r, se, http.StatusForbidden, fmt.Sprintf("%s has role %s; dry runs, approvals and rejections need approver or admin", se.who.Name, se.who.Role))
		return
	}
	if s.o.Decider == nil {
		s.errorPage(w, r, se, http.StatusServiceUnavailable, "decisions are not available")
		return
	}
	ctx := r.Context()
	back := fmt.Sprintf("%s/actions/%d", s.o.Prefix, id)
	verb := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	var err error
	switch verb {
	case "dry-run":
		var res action.DryRunResult
		var rec action.Record
		res, rec, err = s.o.Decider.DryRunAs(ctx, id, se.who)
		if err == nil {
			s.mu.Lock()
			se.dry[id] = dryView{Result: res, Record: rec}
			s.mu.Unlock()
			verdict := "valid"
			if !res.Valid {
				verdict = "invalid"
			}
			s.addFlash(se, "ok", fmt.Sprintf("Dry run recorded (record %d): %s. Nothing was sent to PD.", rec.ID, verdict))
			back += "#dry-run"
		}
	case "approve":
		var p action.Proposal
		var res executor.ApprovalResult
		p, res, err = s.o.Decider.ApproveAs(ctx, id, se.who, executor.Decision{EvidenceDigest: strings.TrimSpace(r.PostFormValue("evidence"))})
		if err == nil {
			if p.Status == action.Approved {
				s.addFlash(se, "ok", fmt.Sprintf("Approved by %s (%d of %d): the executor claims it within a second.", se.who.Name, res.Approvals, res.Required))
			} else {
				s.addFlash(se, "ok", fmt.Sprintf("Your approval is recorded: %d of %d. Another approver must add theirs.", res.Approvals, res.Required))
			}
		}
	case "reject":
		reason := safetext.Text(strings.TrimSpace(r.PostFormValue("reason")), 1000)
		if reason == "" {
			s.addFlash(se, "error", "A reason is required to reject.")
			http.Redirect(w, r, back, http.StatusSeeOther)
			return
		}
		_, err = s.o.Decider.RejectAs(ctx, id, se.who, executor.Decision{}, reason)
		if err == nil {
			s.addFlash(se, "ok", "Rejected: "+reason)
		}
	default:
		s.errorPage(w, r, se, http.StatusNotFound, "no such decision")
		return
	}
	if err != nil {
		if errors.Is(err, executor.ErrForbidden) {
			s.fail(w, r, se, err)
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			s.fail(w, r, se, err)
			return
		}
		s.o.Logger.Info("console decision refused", "action_id", id, "verb", verb, "name", se.who.Name, "err", err)
		s.addFlash(se, "error", "Refused: "+err.Error())
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// ---- audit ----

type auditView struct {
	Clusters  clusterFilter
	Records   []recordRow
	Report    *store.VerifyReport
	VerifyErr string
	Limit     int
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, se *session) {
	v := auditView{Limit: MaxListed}
	var err error
	if v.Clusters, err = s.clusterFilter(r); err != nil {
		s.errorPage(w, r, se, http.StatusBadRequest, err.Error())
		return
	}
	recs, err := s.o.Store.Records(r.Context(), store.RecordFilter{Limit: MaxListed, Cluster: v.Clusters.ID})
	if err != nil {
		s.fail(w, r, se, err)
		return
	}
	for _, rec := range recs {
		kind, text := recordSummary(rec)
		v.Records = append(v.Records, recordRow{R: rec, Cluster: v.Clusters.Row(rec.ClusterID), Kind: kind, Text: safetext.Text(text, 4096)})
	}
	if s.o.Verify == nil {
		v.VerifyErr = "verification is not available in this process"
	} else if rep, err := s.o.Verify(r.Context()); err != nil {
		v.VerifyErr = safetext.Text(err.Error(), 2000)
	} else {
		for i := range rep.Warnings {
			rep.Warnings[i] = safetext.Line(rep.Warnings[i], 500)
		}
		if rep.Broken != nil {
			rep.Broken.Detail = safetext.Text(rep.Broken.Detail, 2000)
		}
		v.Report = &rep
	}
	s.render(w, r, se, http.StatusOK, "audit", v)
}

// ---- cluster ----

type storeRowView struct {
	ID                  uint64
	Address, State      string
	Labels              []string
	Capacity, Available string
	UsedPct             int
	Leaders, Regions    int
	Bars                template.HTML
	Heartbeat           string
}

type clusterView struct {
	Stores     []storeRowView
	Operators  []pd.Operator
	Paused     []pausedView
	Schedulers []string
	Errors     []string
}

type pausedView struct {
	Name            string
	PausedAt, Until string
}

func (s *Server) cluster(w http.ResponseWriter, r *http.Request, se *session) {
	v := clusterView{}
	if s.o.PD == nil {
		v.Errors = append(v.Errors, "no PD client in this process")
		s.render(w, r, se, http.StatusOK, "cluster", v)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	stores, err := s.o.PD.Stores(ctx)
	if err != nil {
		v.Errors = append(v.Errors, "GET /pd/api/v1/stores: "+err.Error())
	}
	maxCount := 1
	for _, st := range stores {
		maxCount = max(maxCount, st.Status.LeaderCount, st.Status.RegionCount)
	}
	sort.Slice(stores, func(i, j int) bool { return stores[i].Store.ID < stores[j].Store.ID })
	for _, st := range stores {
		row := storeRowView{ID: st.Store.ID, Address: safetext.Line(st.Store.Address, 200), State: safetext.Line(st.Store.StateName, 40),
			Capacity: st.Status.Capacity.String(), Available: st.Status.Available.String(),
			Leaders: st.Status.LeaderCount, Regions: st.Status.RegionCount}
		if st.Status.Capacity > 0 {
			row.UsedPct = int(100 - uint64(st.Status.Available)*100/uint64(st.Status.Capacity))
		}
		for _, l := range st.Store.Labels {
			row.Labels = append(row.Labels, safetext.Line(l.Key, 100)+"="+safetext.Line(l.Value, 200))
		}
		if !st.Status.LastHeartbeatTS.IsZero() {
			row.Heartbeat = st.Status.LastHeartbeatTS.UTC().Format("15:04:05Z")
		}
		row.Bars = countBars(row.Leaders, row.Regions, maxCount, fmt.Sprintf("store %d: %d leaders, %d regions", row.ID, row.Leaders, row.Regions))
		v.Stores = append(v.Stores, row)
	}
	if ops, err := s.o.PD.Operators(ctx); err != nil {
		v.Errors = append(v.Errors, "GET /pd/api/v1/operators: "+err.Error())
	} else {
		for _, op := range ops {
			op.Desc, op.Brief = safetext.Line(op.Desc, 200), safetext.Line(op.Brief, 500)
			v.Operators = append(v.Operators, op)
		}
	}
	if ps, err := s.o.PD.PausedSchedulerTimes(ctx); err != nil {
		v.Errors = append(v.Errors, "GET /pd/api/v1/schedulers?status=paused: "+err.Error())
	} else {
		for _, p := range ps {
			v.Paused = append(v.Paused, pausedView{Name: safetext.Line(p.Name, 200), PausedAt: fmtT(p.PausedAt), Until: fmtT(p.ResumeAt)})
		}
	}
	if names, err := s.o.PD.Schedulers(ctx); err != nil {
		v.Errors = append(v.Errors, "GET /pd/api/v1/schedulers: "+err.Error())
	} else {
		for _, n := range names {
			v.Schedulers = append(v.Schedulers, safetext.Line(n, 200))
		}
		sort.Strings(v.Schedulers)
	}
	for i := range v.Errors {
		v.Errors[i] = safetext.Line(v.Errors[i], 600)
	}
	s.render(w, r, se, http.StatusOK, "cluster", v)
}

func fmtT(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ---- clusters ----

// clusterFilter is the ?cluster=NAME filter of the tickets and audit
// pages, for a database holding several TiKV clusters (docs/console.md).
type clusterFilter struct {
	// Selected is the selected name ("" for every cluster), ID its PD
	// cluster id.
	Selected, ID string
	// Names are the clusters' names, oldest first; the filter and the
	// Cluster column are shown when there are several.
	Names []string
	byID  map[string]string
}

// clusterFilter reads ?cluster=NAME. Errors: an unknown name.
func (s *Server) clusterFilter(r *http.Request) (clusterFilter, error) {
	cs, err := s.o.Store.ClusterList(r.Context())
	if err != nil {
		return clusterFilter{}, err
	}
	f := clusterFilter{Selected: r.URL.Query().Get("cluster"), byID: map[string]string{}}
	for _, c := range cs {
		f.Names = append(f.Names, c.Name)
		f.byID[c.ID] = c.Name
		if c.Name == f.Selected {
			f.ID = c.ID
		}
	}
	if f.Selected != "" && f.ID == "" {
		return clusterFilter{}, fmt.Errorf("no cluster named %q in this database (it holds %s)",
			safetext.Line(f.Selected, 64), strings.Join(f.Names, ", "))
	}
	return f, nil
}

// Several reports whether the database holds more than one cluster.
func (f clusterFilter) Several() bool { return len(f.Names) > 1 }

// Row is the Cluster cell of a row of PD cluster id: its name ("-" for
// none), or "" when the database holds one cluster (no column).
func (f clusterFilter) Row(id string) string {
	if !f.Several() {
		return ""
	}
	if n, ok := f.byID[id]; ok {
		return n
	}
	if id == "" {
		return "-"
	}
	return id
}
