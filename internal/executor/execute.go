package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// Execution results, the "result" label of operator_executor_executions_total.
const (
	resultCompleted   = "completed"   // effect verified
	resultFailed      = "failed"      // sent, PD refused or the effect was not verified
	resultRefused     = "refused"     // nothing sent: unknown action, preconditions no longer hold
	resultUnknown     = "unknown"     // the request's fate is unknown (connection lost after sending)
	resultInterrupted = "interrupted" // found executing at start (Recover)
)

// execute carries one claimed proposal to completed or failed. ctx is not
// cancelled by shutdown (Run detaches it); every step has its own bound.
func (e *Executor) execute(ctx context.Context, p action.Proposal) {
	log := e.log.With("action_id", p.ID, "action", p.ActionType, "ticket_id", p.TicketID)
	started := e.now()
	if p.ExecutedAt != nil {
		started = *p.ExecutedAt
	}
	if p.ApprovedAt != nil {
		e.m.claimDelay.Observe(started.Sub(*p.ApprovedAt).Seconds())
	}
	log.Info("executing", "params", string(p.Params), "approved_by", p.ApprovedBy)
	rec := action.Record{StartedAt: started, ExecutedBy: e.name, Requests: json.RawMessage(`[]`)}

	var reverts []store.FollowUp // temporary change: its scheduled reverts
	finish := func(to action.Status, label, result, detail string) {
		rec.Message = result
		if detail != "" {
			rec.Message += "; " + detail
		}
		e.m.executions.WithLabelValues(p.ActionType, label).Inc()
		e.m.duration.WithLabelValues(p.ActionType).Observe(e.now().Sub(started).Seconds())
		e.crash.at(CrashBeforeRecord)
		e.record(ctx, p, to, result, rec, reverts)
		if to == action.Completed || label == resultRefused || label == resultFailed {
			e.afterExecution(ctx, p)
		}
	}

	a, err := e.cat.Lookup(p.ActionType)
	if err != nil {
		finish(action.Failed, resultRefused, fmt.Sprintf("refused, nothing sent to PD: %v", err), "")
		return
	}

	// The approval was for a problem: if PD shows it gone, the approval no
	// longer applies (PD may have fixed it by itself while the approval
	// waited).
	if e.holds != nil && !e.manualTicket(ctx, p.TicketID) {
		t, err := e.st.Ticket(ctx, p.TicketID)
		if err != nil {
			finish(action.Failed, resultRefused, fmt.Sprintf("refused, nothing sent to PD: ticket %d could not be read: %v", p.TicketID, err), "")
			return
		}
		hctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
		held, err := e.holds(hctx, t)
		cancel()
		if err != nil {
			finish(action.Failed, resultRefused, fmt.Sprintf("refused, nothing sent to PD: the ticket's invariant could not be re-evaluated: %v", err), "")
			return
		}
		if held {
			finish(action.Expired, "expired", fmt.Sprintf("expired, nothing sent to PD: %s holds again on fresh PD state, so the approval no longer applies", t.Key), "")
			return
		}
	}

	// Re-check preconditions against live PD right before executing: the
	// cluster may have changed since the approval.
	dctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
	check, err := a.DryRun(dctx, p.Params)
	cancel()
	if err != nil {
		finish(action.Failed, resultRefused, fmt.Sprintf("refused, nothing sent to PD: preconditions could not be checked: %v", err), "")
		return
	}
	if !check.Valid {
		finish(action.Failed, resultRefused, "refused, nothing sent to PD: preconditions no longer hold: "+failedChecks(check), "")
		return
	}

	if e.capture != nil {
		cctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
		rec.StateBefore, err = e.capture(cctx, p.Params)
		cancel()
		if err != nil {
			rec.StateBefore = nil
			finish(action.Failed, resultRefused, fmt.Sprintf("refused, nothing sent to PD: state before could not be captured: %v", err), "")
			return
		}
	}

	// Several replicas: send only while this process still leads its term.
	if e.fence != nil {
		if err := e.fence(ctx); err != nil {
			finish(action.Failed, resultRefused, fmt.Sprintf("refused, nothing sent to PD: %v", err), "")
			return
		}
	}
	e.crash.at(CrashBeforeRequest)
	xctx, cancel := context.WithTimeout(ctx, e.timeout)
	e.crash.arm()
	out, xerr := a.Execute(xctx, p.Params)
	e.crash.disarm()
	cancel()
	var followNote string
	if xerr == nil && !out.Success && out.Running {
		out, followNote = e.followRunning(ctx, a, p, out, started)
	}
	if out.Requests == nil {
		out.Requests = []action.Request{}
	}
	if b, err := json.Marshal(out.Requests); err == nil {
		rec.Requests = b
	}
	if e.capture != nil {
		cctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
		after, err := e.capture(cctx, p.Params)
		cancel()
		if err != nil {
			after, _ = json.Marshal(map[string]string{"error": "state after could not be captured: " + err.Error()})
		}
		rec.StateAfter = after
	}

	detail := outcomeDetail(out)
	if followNote != "" {
		detail = strings.TrimPrefix(followNote+"; "+detail, "; ")
		detail = strings.TrimSuffix(detail, "; ")
	}
	switch {
	case xerr != nil:
		msg := out.Message
		if msg == "" {
			msg = "execution failed"
		}
		finish(action.Failed, resultUnknown, fmt.Sprintf("outcome unknown: %s: %v", msg, xerr), detail)
	case out.Running:
		// Still running when PD's longest step timeout passed, or when the
		// daemon stopped: PD decides; nothing to re-diagnose yet.
		finish(action.Failed, resultUnknown, "outcome unknown: PD's operator was still running when the executor stopped following it: "+out.Message, detail)
	case out.Success:
		var note string
		reverts, note = e.scheduleReverts(a, p, out)
		if note != "" {
			detail = strings.TrimPrefix(detail+"; "+note, "; ")
		}
		finish(action.Completed, resultCompleted, out.Message, detail)
	case len(out.Requests) == 0:
		finish(action.Failed, resultRefused, out.Message, detail)
	default:
		finish(action.Failed, resultFailed, out.Message, detail)
	}
}

// record finishes the proposal with rec, retrying store errors for a
// while. If the proposal is no longer executing (another executor's
// Recover finished it as interrupted), the real outcome is appended to the
// audit trail on its own so that it is not lost.
func (e *Executor) record(ctx context.Context, p action.Proposal, to action.Status, result string, rec action.Record, reverts []store.FollowUp) {
	e.recordFrom(ctx, p, to, result, rec, reverts, 1)
}

// recordFrom is record starting at attempt first (tests start at 2: a
// retry after a commit whose answer was lost).
func (e *Executor) recordFrom(ctx context.Context, p action.Proposal, to action.Status, result string, rec action.Record, reverts []store.FollowUp, first int) {
	log := e.log.With("action_id", p.ID, "action", p.ActionType)
	deadline := time.Now().Add(DefaultStepTimeout)
	for attempt := first; ; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
		var (
			stored action.Record
			err    error
		)
		if len(reverts) > 0 {
			// The reverts are stored with the completion: one transaction.
			stored, _, err = e.st.FinishScheduling(wctx, p.ID, to, result, rec, reverts, e.now())
		} else {
			stored, err = e.st.Finish(wctx, p.ID, to, result, rec, e.now())
		}
		cancel()
		if err == nil {
			log.Info("action finished", "status", to, "result", result, "record_id", stored.ID)
			return
		}
		if errors.Is(err, store.ErrStaleTerm) {
			// A newer leader exists (several replicas): it recovers this
			// action as interrupted. What was really sent to PD is still
			// appended to the audit trail, on its own (no status change).
			log.Error("a newer leader exists; this deposed leader does not finish the action", "err", err)
			if sent := len(rec.Requests) > 0 && string(rec.Requests) != "[]"; sent {
				rec.ProposalID = p.ID
				rec.Success = to == action.Completed
				rec.FinishedAt = e.now()
				rec.Message = fmt.Sprintf("late outcome from a deposed leader (%v): %s", err, rec.Message)
				if _, err := e.st.AppendRecord(store.WithTerm(ctx, 0), rec); err != nil {
					log.Error("append late record", "err", err)
				}
			}
			return
		}
		var te *action.ErrTransition
		if errors.As(err, &te) && attempt > 1 && te.From == to && e.ownOutcomeStored(ctx, p.ID, rec) {
			// The earlier attempt's COMMIT landed but its answer was lost
			// (a dropped database connection): the outcome is recorded
			// once already; a "late outcome" record would duplicate it.
			log.Info("action finished (an earlier attempt's commit had landed)", "status", to, "result", result, "attempts", attempt)
			return
		}
		if errors.As(err, &te) {
			log.Error("action was finished by someone else; appending the real outcome on its own", "err", err)
			rec.ProposalID = p.ID
			rec.Success = to == action.Completed
			rec.FinishedAt = e.now()
			rec.Message = fmt.Sprintf("late outcome (status was already %s): %s", te.From, rec.Message)
			if _, err := e.st.AppendRecord(ctx, rec); err != nil {
				log.Error("append late record", "err", err)
			}
			return
		}
		if time.Now().After(deadline) {
			log.Error("could not record the outcome; the action stays executing and will be recovered as interrupted",
				"err", err, "attempts", attempt)
			return
		}
		log.Warn("record outcome, retrying", "err", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// ownOutcomeStored reports whether the audit trail already holds this
// executor's execution record of proposal id for the execution that
// started at rec.StartedAt (an earlier attempt of record() committed).
func (e *Executor) ownOutcomeStored(ctx context.Context, id int64, rec action.Record) bool {
	rs, err := e.st.Records(ctx, store.RecordFilter{ProposalID: id, Limit: 20})
	if err != nil {
		return false
	}
	for _, r := range rs {
		if r.Event == action.EventExecution && !r.DryRun && r.ExecutedBy == rec.ExecutedBy && r.StartedAt.Equal(rec.StartedAt) {
			return true
		}
	}
	return false
}

// afterExecution re-evaluates the ticket's invariant: held resolves the
// ticket; still violated reopens a diagnosed ticket for a fresh diagnosis.
func (e *Executor) afterExecution(ctx context.Context, p action.Proposal) {
	log := e.log.With("action_id", p.ID, "ticket_id", p.TicketID)
	ctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
	defer cancel()
	t, err := e.st.Ticket(ctx, p.TicketID)
	if err != nil {
		log.Warn("re-evaluate: read ticket", "err", err)
		return
	}
	if t.Status == ticket.Resolved {
		return
	}
	if t.Invariant == store.ManualInvariant {
		// No monitor evaluates a manual ticket: it ends with its action.
		if err := e.st.ResolveTicket(ctx, t.ID, e.now()); err != nil && !errors.As(err, new(*ticket.ErrTransition)) {
			log.Warn("resolve manual ticket", "err", err)
		}
		return
	}
	if e.reevaluate == nil {
		return
	}
	held, err := e.reevaluate(ctx, t)
	if err != nil {
		log.Warn("re-evaluate invariant", "invariant", t.Invariant, "err", err)
		return
	}
	var te *ticket.ErrTransition
	if held {
		if err := e.st.ResolveTicket(ctx, t.ID, e.now()); err != nil && !errors.As(err, &te) {
			log.Warn("resolve ticket", "err", err)
			return
		}
		log.Info("invariant holds again; ticket resolved", "invariant", t.Invariant)
		if n, err := e.st.ExpireTicketProposals(ctx, t.ID, e.now()); err != nil {
			log.Warn("expire the resolved ticket's pending actions", "err", err)
		} else if n > 0 {
			log.Info("pending actions of the resolved ticket expired", "count", n)
		}
		return
	}
	if t.Status != ticket.Diagnosed {
		return
	}
	if settle := e.settleOf(p); settle > 0 {
		// PD's schedulers do the work now (resume_scheduler, a raised
		// store limit ...): a new diagnosis right away would propose what
		// PD is about to do. Look again once the settle time has passed.
		log.Info("invariant still violated; PD's schedulers work on it, re-checked after the settle time", "invariant", t.Invariant, "settle", settle)
		e.recheckAfter(p, settle)
		return
	}
	e.reopen(ctx, log, t)
}

// reopen reopens t for a fresh diagnosis (its invariant is still violated
// after an execution).
func (e *Executor) reopen(ctx context.Context, log *slog.Logger, t ticket.Ticket) {
	var te *ticket.ErrTransition
	if err := e.st.Reopen(ctx, t.ID, e.now()); err != nil && !errors.As(err, &te) {
		log.Warn("reopen ticket", "err", err)
		return
	}
	log.Info("invariant still violated; ticket reopened for a fresh diagnosis", "invariant", t.Invariant)
}

// settleOf returns the catalog's Spec.Settle of p's action type (0 when
// unknown).
func (e *Executor) settleOf(p action.Proposal) time.Duration {
	a, err := e.cat.Lookup(p.ActionType)
	if err != nil {
		return 0
	}
	return a.Spec().Settle
}

// recheckAfter follows p's ticket while PD's schedulers work on it (on
// the executor's Run context: a stopping daemon drops it, and the
// monitor's cycles keep judging the ticket). It re-evaluates the ticket
// every Options.SettleCheck (with the daemon's Reevaluator each check is
// the next monitor cycle's snapshot: nothing extra is read from PD):
//   - the invariant held and is violated again (someone paused the
//     scheduler again): a new occurrence, reopened for a fresh diagnosis
//     at once;
//   - settle passed: resolved if the invariant holds, reopened if not;
//   - the ticket left diagnosed (the monitor resolved it, a person asked
//     for a new diagnosis): nothing more to do.
func (e *Executor) recheckAfter(p action.Proposal, settle time.Duration) {
	runCtx := context.Background()
	if rp := e.running.Load(); rp != nil {
		runCtx = *rp
	}
	log := e.log.With("action_id", p.ID, "ticket_id", p.TicketID)
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		deadline := time.Now().Add(settle)
		heldOnce := false
		for {
			wait := min(e.settleCheck, time.Until(deadline))
			select {
			case <-runCtx.Done():
				return
			case <-time.After(max(wait, 0)):
			}
			ctx, cancel := context.WithTimeout(runCtx, DefaultStepTimeout)
			t, err := e.st.Ticket(ctx, p.TicketID)
			if err != nil || t.Status != ticket.Diagnosed {
				cancel()
				return // resolved by the monitor meanwhile, or rediagnosed
			}
			held, err := e.reevaluate(ctx, t)
			if err != nil {
				log.Warn("re-evaluate invariant while PD works on it", "invariant", t.Invariant, "err", err)
				if !time.Now().Before(deadline) {
					cancel()
					return
				}
				cancel()
				continue
			}
			switch {
			case held:
				heldOnce = true
				if !time.Now().Before(deadline) {
					var te *ticket.ErrTransition
					if err := e.st.ResolveTicket(ctx, t.ID, e.now()); err != nil && !errors.As(err, &te) {
						log.Warn("resolve ticket", "err", err)
					} else {
						log.Info("invariant holds after the settle time; ticket resolved", "invariant", t.Invariant)
					}
					cancel()
					return
				}
			case heldOnce:
				log.Info("invariant held after the action and is violated again: a new occurrence", "invariant", t.Invariant)
				e.reopen(ctx, log, t)
				cancel()
				return
			case !time.Now().Before(deadline):
				e.reopen(ctx, log, t)
				cancel()
				return
			}
			cancel()
		}
	}()
}

// DefaultSettleCheck is Options.SettleCheck's default.
const DefaultSettleCheck = 5 * time.Second

// followRunning keeps following the PD operator of an execution that was
// still running at the execution deadline (out.Running): the proposal stays
// executing and its ticket is not re-evaluated meanwhile; the outcome is
// decided by PD (its operator's SUCCESS, TIMEOUT, CANCEL or REPLACE), within
// MaxOperatorFollow after the deadline. It returns the final outcome and a
// note for the audit record.
func (e *Executor) followRunning(ctx context.Context, a action.Action, p action.Proposal, out action.Outcome, started time.Time) (action.Outcome, string) {
	f, ok := a.(action.Follower)
	if !ok {
		return out, ""
	}
	log := e.log.With("action_id", p.ID, "action", p.ActionType)
	deadline := e.now()
	log.Info("PD's operator still running at the execution deadline; following it until PD decides", "message", out.Message,
		"execution_timeout", e.timeout, "max_follow", MaxOperatorFollow)
	e.m.executions.WithLabelValues(p.ActionType, "still_running").Inc()
	fctx, cancel := context.WithTimeout(ctx, MaxOperatorFollow)
	stop := context.AfterFunc(e.runCtx(), cancel) // a shutdown stops following
	res, err := f.Follow(fctx, p.Params, out)
	stop()
	cancel()
	if err != nil {
		log.Warn("could not follow PD's operator", "err", err)
		return out, fmt.Sprintf("still running at the execution deadline (%s after the claim); could not follow it: %v", deadline.Sub(started).Round(time.Second), err)
	}
	if res.Requests == nil {
		res.Requests = out.Requests
	}
	return res, fmt.Sprintf("PD's operator was still running at the execution deadline (%s after the claim) and was followed until %s",
		deadline.Sub(started).Round(time.Second), e.now().UTC().Format(time.RFC3339))
}

// MaxOperatorFollow bounds how long the executor follows a PD operator
// still running at the execution deadline: PD's own longest step timeout
// (SlowStepWaitTime, 10 min; PD pkg/schedule/operator/step.go).
const MaxOperatorFollow = 10 * time.Minute

// manualTicket reports whether ticket id is a manual ticket (a person's
// or a revert's proposal without a ticket of its own): no invariant to
// re-evaluate before sending.
func (e *Executor) manualTicket(ctx context.Context, id int64) bool {
	t, err := e.st.Ticket(ctx, id)
	return err == nil && t.Invariant == store.ManualInvariant
}

// failedChecks lists the failed preconditions of a dry run, or its message
// when none is marked failed.
func failedChecks(r action.DryRunResult) string {
	var f []string
	for _, c := range r.Preconditions {
		if !c.Passed {
			f = append(f, c.Name+": "+c.Detail)
		}
	}
	if len(f) == 0 {
		return r.Message
	}
	return strings.Join(f, "; ")
}

// outcomeDetail renders the previous values and observations of an
// outcome for the audit record ("previous: {...}; observed: {...}").
func outcomeDetail(o action.Outcome) string {
	var parts []string
	for _, kv := range []struct {
		name string
		m    map[string]any
	}{{"previous", o.Previous}, {"observed", o.Observed}} {
		if len(kv.m) == 0 {
			continue
		}
		if b, err := json.Marshal(kv.m); err == nil {
			parts = append(parts, kv.name+": "+string(b))
		}
	}
	return strings.Join(parts, "; ")
}

// targetKeys names what a proposal touches: "region:<id>" and
// "store:<id>" from the params its spec lists in Targets (a param named
// *region_id is a region, *store_id a store), or "action:<type>" for an
// action without targets (cluster-wide config changes of one kind are
// serialised). Unknown actions and unreadable params touch nothing: they
// fail before any PD request.
func (e *Executor) targetKeys(p action.Proposal) []string {
	a, err := e.cat.Lookup(p.ActionType)
	if err != nil {
		return nil
	}
	return TargetKeys(a.Spec(), p.Params)
}

// TargetKeys returns the keys of what an action with spec and params
// touches, sorted: "region:<id>" for a param in spec.Targets whose name
// ends in region_id, "store:<id>" for one ending in store_id, "<name>:<v>"
// for any other target, and "action:<spec.Name>" when spec has no
// targets. Two proposals conflict when their keys intersect. Params that
// are not a JSON object, or a target that is absent, contribute nothing.
func TargetKeys(spec action.Spec, params json.RawMessage) []string {
	keys := targetKeys(spec, params)
	if spec.Capacity {
		// Capacity-reducing actions run one at a time per cluster: the next
		// one's precondition re-check then sees the previous one's effect.
		keys = append(keys, CapacityKey)
		sort.Strings(keys)
	}
	return keys
}

// CapacityKey is the target key every action with Spec.Capacity shares.
const CapacityKey = "cluster:capacity"

func targetKeys(spec action.Spec, params json.RawMessage) []string {
	if len(spec.Targets) == 0 {
		return []string{"action:" + spec.Name}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(params, &m); err != nil {
		return nil
	}
	var keys []string
	for _, name := range spec.Targets {
		raw, ok := m[name]
		if !ok {
			continue
		}
		v := targetValue(raw)
		if v == "" {
			continue
		}
		kind := name
		switch {
		case strings.HasSuffix(name, "region_id"):
			kind = "region"
		case strings.HasSuffix(name, "store_id"):
			kind = "store"
		}
		keys = append(keys, kind+":"+v)
	}
	sort.Strings(keys)
	return keys
}

// conflicts reports whether candidate touches something an executing
// proposal touches (store.ClaimOptions.Conflicts).
func (e *Executor) conflicts(candidate action.Proposal, executing []action.Proposal) bool {
	if len(executing) == 0 {
		return false
	}
	want := e.targetKeys(candidate)
	if len(want) == 0 {
		return false
	}
	busy := map[string]bool{}
	for _, x := range executing {
		for _, k := range e.targetKeys(x) {
			busy[k] = true
		}
	}
	for _, k := range want {
		if busy[k] {
			return true
		}
	}
	return false
}

// targetValue renders a target param's value: integers in plain decimal
// (so 5, 5.0 and "5" are one key), other strings as they are.
func targetValue(raw json.RawMessage) string {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if i, err := n.Int64(); err == nil {
			return strconv.FormatInt(i, 10)
		}
		if f, err := n.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return strconv.FormatInt(int64(f), 10)
		}
		return n.String()
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return ""
}
