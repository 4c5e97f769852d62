package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/store"
)

// Temporary changes (docs/executor.md, "Temporary changes"): an action
// executed with a duration records its reverts as follow-ups in the same
// transaction as its completion; Run carries each out when due.

// scheduleReverts returns the follow-ups of a completed execution of a
// with p's params and outcome out, and a note for the audit record.
func (e *Executor) scheduleReverts(a action.Action, p action.Proposal, out action.Outcome) ([]store.FollowUp, string) {
	t, ok := a.(action.Temporary)
	if !ok {
		return nil, ""
	}
	rs, err := t.Reverts(p.Params, out)
	if err != nil {
		e.log.Warn("temporary change: no revert scheduled", "action_id", p.ID, "err", err)
		return nil, "no revert scheduled: " + err.Error()
	}
	var (
		fus   []store.FollowUp
		notes []string
	)
	now := e.now()
	for _, r := range rs {
		due := now.Add(r.After)
		fus = append(fus, store.FollowUp{ActionType: r.ActionType, Params: r.Params, Expect: r.Expect, Restore: r.Restore, DueAt: due})
		notes = append(notes, fmt.Sprintf("revert %s %s scheduled at %s", r.ActionType, compact(r.Params), due.UTC().Format(time.RFC3339)))
	}
	return fus, strings.Join(notes, "; ")
}

// followUps claims and carries out due reverts, one at a time, until none
// is due or ctx ends.
func (e *Executor) followUps(ctx context.Context) {
	for ctx.Err() == nil {
		f, err := e.st.ClaimDueFollowUp(ctx, e.name, e.now())
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("claim scheduled revert", "err", err)
			}
			return
		}
		if f == nil {
			return
		}
		if retry := e.revert(context.WithoutCancel(ctx), *f); retry {
			return
		}
	}
}

// revert carries out one claimed follow-up: without a new approval when PD
// still shows exactly the value the action set (restoring the recorded
// previous value then changes nothing else); finished as done with
// nothing sent when PD already shows the previous value; otherwise (and
// when the revert fails) proposed for approval, which notifies.
//
// It reports true when PD could not be read and the revert went back to
// scheduled, to be tried again at the next look.
func (e *Executor) revert(ctx context.Context, f store.FollowUp) (retry bool) {
	log := e.log.With("revert_id", f.ID, "action_id", f.ProposalID, "revert", f.ActionType)
	started := e.now()
	rec := action.Record{ExecutedBy: e.name, StartedAt: started, Requests: json.RawMessage(`[]`)}
	propose := func(why string) {
		rec.Message = fmt.Sprintf("scheduled revert %d of action %d not carried out, proposed for approval instead: %s", f.ID, f.ProposalID, why)
		p, err := e.st.ProposeFollowUp(ctx, f.ID, action.Proposal{
			ProposedBy: store.RevertProposer, ExpiresAt: e.now().Add(DefaultProposalTTL),
			Rationale: safetext.Text(fmt.Sprintf("revert of the temporary change made by action %d, due %s: %s", f.ProposalID, f.DueAt.UTC().Format(time.RFC3339), why), MaxReason),
		}, why, rec, e.now())
		if err != nil {
			log.Error("propose the revert", "err", err)
			return
		}
		e.m.executions.WithLabelValues(f.ActionType, "revert_proposed").Inc()
		log.Warn("revert needs an approval; proposed", "proposal_id", p.ID, "why", why)
	}
	finish := func(to store.FollowUpStatus, result string) {
		rec.Message = result
		if _, err := e.st.FinishFollowUp(ctx, f.ID, to, result, rec, e.now()); err != nil {
			log.Error("record the revert", "err", err)
			return
		}
		e.m.executions.WithLabelValues(f.ActionType, "revert_"+string(to)).Inc()
		log.Info("scheduled revert finished", "status", to, "result", result)
	}
	if cluster := e.st.ClusterID(); cluster == "" || (f.ClusterID != "" && f.ClusterID != cluster) {
		propose(fmt.Sprintf("it was scheduled for PD cluster %q, this daemon acts on %q", f.ClusterID, cluster))
		return false
	}
	a, err := e.cat.Lookup(f.ActionType)
	if err != nil {
		propose(err.Error())
		return false
	}
	tgt, ok := a.(action.RevertTarget)
	if !ok {
		propose(fmt.Sprintf("%s cannot read what PD shows now", f.ActionType))
		return false
	}
	sctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
	cur, err := tgt.RevertState(sctx, f.Params)
	cancel()
	if err != nil {
		// PD unreadable: try again later rather than decide blind.
		log.Warn("scheduled revert: PD state unreadable; retrying later", "err", err)
		if _, rerr := e.st.RequeueFollowUps(ctx, func(by string) bool { return by == e.name }, e.now()); rerr != nil {
			log.Error("requeue scheduled revert", "err", rerr)
		}
		return true
	}
	rec.StateBefore = cur
	switch {
	case jsonEqual(cur, f.Restore):
		finish(store.FollowUpDone, fmt.Sprintf("scheduled revert %d of action %d: PD already shows the previous value %s; nothing sent", f.ID, f.ProposalID, compact(cur)))
		return false
	case !jsonEqual(cur, f.Expect):
		propose(fmt.Sprintf("PD shows %s, not %s as the action set it: someone changed it meanwhile", compact(cur), compact(f.Expect)))
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
	check, err := a.DryRun(dctx, f.Params)
	cancel()
	if err != nil || !check.Valid {
		why := "preconditions refused: "
		if err != nil {
			why += err.Error()
		} else {
			why += failedChecks(check)
		}
		propose(why)
		return false
	}
	xctx, cancel := context.WithTimeout(ctx, e.timeout)
	out, xerr := a.Execute(xctx, f.Params)
	cancel()
	if out.Requests == nil {
		out.Requests = []action.Request{}
	}
	if b, err := json.Marshal(out.Requests); err == nil {
		rec.Requests = b
	}
	actx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
	if after, err := tgt.RevertState(actx, f.Params); err == nil {
		rec.StateAfter = after
	}
	cancel()
	switch {
	case xerr != nil:
		propose(fmt.Sprintf("the revert's outcome is unknown: %s: %v", out.Message, xerr))
	case !out.Success:
		propose("the revert failed: " + out.Message)
	default:
		finish(store.FollowUpDone, fmt.Sprintf("scheduled revert %d of action %d carried out without a new approval (PD still showed %s, the value the action set): %s",
			f.ID, f.ProposalID, compact(f.Expect), out.Message))
	}
	return false
}

// CancelRevertAs cancels scheduled revert id as who (approver or admin),
// with reason, recorded in the audit trail. Errors: ErrForbidden;
// store.ErrNotFound; store.ErrFollowUpState (not scheduled any more);
// store.ErrInvalid.
func (e *Executor) CancelRevertAs(ctx context.Context, id int64, who auth.Identity, reason string) (store.FollowUp, error) {
	if err := e.ready(); err != nil {
		return store.FollowUp{}, err
	}
	if err := e.checkDecider(who, Decision{}); err != nil {
		return store.FollowUp{}, fmt.Errorf("cancel scheduled revert %d: %w", id, err)
	}
	reason = safetext.Text(strings.TrimSpace(reason), MaxReason)
	f, err := e.st.CancelFollowUp(ctx, id, store.Approval{By: who.Name, Role: string(who.Role)}, reason, e.now())
	if err != nil {
		return f, err
	}
	e.log.Info("scheduled revert cancelled", "revert_id", id, "by", who.Name, "reason", reason)
	return f, nil
}

// MaxRevertExtension bounds one extension of a scheduled revert.
const MaxRevertExtension = 7 * 24 * time.Hour

// ExtendRevertAs postpones scheduled revert id by d (0 < d <=
// MaxRevertExtension) as who (approver or admin), recorded in the audit
// trail. Errors: as CancelRevertAs.
func (e *Executor) ExtendRevertAs(ctx context.Context, id int64, who auth.Identity, d time.Duration) (store.FollowUp, error) {
	if err := e.ready(); err != nil {
		return store.FollowUp{}, err
	}
	if err := e.checkDecider(who, Decision{}); err != nil {
		return store.FollowUp{}, fmt.Errorf("extend scheduled revert %d: %w", id, err)
	}
	if d <= 0 || d > MaxRevertExtension {
		return store.FollowUp{}, fmt.Errorf("extend scheduled revert %d: %w: by %s: want more than 0 and at most %s", id, store.ErrInvalid, d, MaxRevertExtension)
	}
	f, err := e.st.ExtendFollowUp(ctx, id, store.Approval{By: who.Name, Role: string(who.Role)}, d, e.now())
	if err != nil {
		return f, err
	}
	e.log.Info("scheduled revert extended", "revert_id", id, "by", who.Name, "due_at", f.DueAt)
	return f, nil
}

// requeueFollowUps puts back reverts left running by an executor that is
// gone (this one before a restart, or a dead process on this host).
func (e *Executor) requeueFollowUps(ctx context.Context) error {
	n, err := e.st.RequeueFollowUps(ctx, func(by string) bool { return by == e.name || !processAlive(by) }, e.now())
	if err != nil {
		return fmt.Errorf("requeue interrupted reverts: %w", err)
	}
	if n > 0 {
		e.log.Warn("interrupted scheduled reverts requeued; PD is read again before any is sent", "count", n)
	}
	return nil
}

// jsonEqual compares two JSON documents by value (numbers as float64).
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func compact(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return safetext.Line(string(raw), 200)
	}
	b, _ := json.Marshal(v)
	return safetext.Line(string(b), 400)
}
