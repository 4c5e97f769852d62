package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/store"
)

// Approve approves proposal id on behalf of by (a person: --as, else the
// OS user) after the approval policy: when RequireDistinctApprover is set,
// by must differ from the proposal's ProposedBy; the catalog must know the
// action and accept its params; with MaxPerHour set, executions started in
// the last hour plus proposals approved and still waiting must be below
// the cap. It then moves the proposal to approved (store.Approve, a
// compare-and-swap) and wakes Run, which claims it within moments.
//
// Errors: ErrPolicy (wrapped, with the reason; also wrapping
// action.ErrUnknownAction or action.ErrInvalidParams for a proposal the
// catalog cannot execute); store.ErrNotFound; store.ErrExpired (the
// proposal was past its ExpiresAt and is now expired);
// *action.ErrTransition when it is not proposed or dry_run, including when
// a concurrent approver won; store.ErrInvalid for an empty by.
func (e *Executor) Approve(ctx context.Context, id int64, by string) (action.Proposal, error) {
	if err := e.ready(); err != nil {
		return action.Proposal{}, err
	}
	by = strings.TrimSpace(by)
	if by == "" {
		return action.Proposal{}, fmt.Errorf("approve action %d: %w: approver is required", id, store.ErrInvalid)
	}
	p, err := e.st.Proposal(ctx, id)
	if err != nil {
		return action.Proposal{}, fmt.Errorf("approve action %d: %w", id, err)
	}
	if !action.CanTransition(p.Status, action.Approved) {
		return action.Proposal{}, fmt.Errorf("approve action %d: %w", id, &action.ErrTransition{ID: id, From: p.Status, To: action.Approved})
	}
	now := e.now()
	if now.After(p.ExpiresAt) {
		// The store moves it to expired and returns ErrExpired.
		return e.st.Approve(ctx, id, by, now)
	}
	if e.distinct && strings.EqualFold(by, p.ProposedBy) {
		return action.Proposal{}, fmt.Errorf("approve action %d: %w: %s proposed it and cannot approve it too (require-distinct-approver)", id, ErrPolicy, by)
	}
	a, err := e.cat.Lookup(p.ActionType)
	if err != nil {
		return action.Proposal{}, fmt.Errorf("approve action %d: %w: %w", id, ErrPolicy, err)
	}
	if err := action.ValidateParams(a.Spec(), p.Params); err != nil {
		return action.Proposal{}, fmt.Errorf("approve action %d: %w: %w", id, ErrPolicy, err)
	}
	if e.maxPerHour > 0 {
		if err := e.checkCap(ctx, now); err != nil {
			return action.Proposal{}, fmt.Errorf("approve action %d: %w", id, err)
		}
	}
	np, err := e.st.Approve(ctx, id, by, now)
	if err != nil {
		return np, err
	}
	e.log.Info("action approved", "action_id", id, "action", np.ActionType, "by", by)
	e.poke()
	return np, nil
}

// checkCap refuses with ErrPolicy when executions started in the hour
// before now plus approved proposals still waiting reach MaxPerHour.
func (e *Executor) checkCap(ctx context.Context, now time.Time) error {
	started, oldest, err := e.st.ClaimedSince(ctx, now.Add(-time.Hour))
	if err != nil {
		return err
	}
	waiting, err := e.st.Proposals(ctx, store.ProposalFilter{Statuses: []action.Status{action.Approved}})
	if err != nil {
		return err
	}
	if used := started + len(waiting); used >= e.maxPerHour {
		msg := fmt.Sprintf("hourly execution cap reached: %d executions started in the last hour and %d approved actions waiting (max-executions-per-hour %d)",
			started, len(waiting), e.maxPerHour)
		if started > 0 && len(waiting) == 0 {
			msg += "; a slot frees at " + oldest.Add(time.Hour).UTC().Format(time.RFC3339)
		}
		return fmt.Errorf("%w: %s", ErrPolicy, msg)
	}
	return nil
}

// Reject rejects proposal id on behalf of by with reason (both required);
// see store.Reject. Errors: store.ErrNotFound, *action.ErrTransition,
// store.ErrInvalid.
func (e *Executor) Reject(ctx context.Context, id int64, by, reason string) (action.Proposal, error) {
	if err := e.ready(); err != nil {
		return action.Proposal{}, err
	}
	p, err := e.st.Reject(ctx, id, strings.TrimSpace(by), strings.TrimSpace(reason), e.now())
	if err != nil {
		return p, err
	}
	e.log.Info("action rejected", "action_id", id, "action", p.ActionType, "by", p.RejectedBy, "reason", reason)
	return p, nil
}

// DryRun validates proposal id against live PD without changing anything
// in PD (operator actions approve ID --dry-run): the proposal must be
// proposed or dry_run and not past its ExpiresAt; the action's DryRun
// checks its params and preconditions and lists the exact PD requests an
// execution would send. The result is written to the audit trail as a
// record with dry_run=true (executed_by = by, requests = the requests that
// would be sent, state_before = the captured state, message = verdict,
// failed checks and warnings) and the proposal moves to dry_run, from
// which it can still be approved or rejected. An action the catalog does
// not know, or invalid params, give Valid=false and are recorded too.
//
// Errors: store.ErrNotFound; *action.ErrTransition (To = dry_run) when the
// proposal is in another status; store.ErrExpired when past ExpiresAt (the
// proposal is moved to expired); store.ErrInvalid for an empty by; an
// error when the preconditions could not be read (PD unreachable), in
// which case nothing is recorded.
func (e *Executor) DryRun(ctx context.Context, id int64, by string) (action.DryRunResult, action.Record, error) {
	if err := e.ready(); err != nil {
		return action.DryRunResult{}, action.Record{}, err
	}
	by = strings.TrimSpace(by)
	if by == "" {
		return action.DryRunResult{}, action.Record{}, fmt.Errorf("dry run action %d: %w: who runs it is required", id, store.ErrInvalid)
	}
	p, err := e.st.Proposal(ctx, id)
	if err != nil {
		return action.DryRunResult{}, action.Record{}, fmt.Errorf("dry run action %d: %w", id, err)
	}
	if !action.CanTransition(p.Status, action.DryRun) {
		return action.DryRunResult{}, action.Record{}, fmt.Errorf("dry run action %d: %w", id, &action.ErrTransition{ID: id, From: p.Status, To: action.DryRun})
	}
	started := e.now()
	if started.After(p.ExpiresAt) {
		if _, err := e.st.ExpireProposals(ctx, started); err != nil {
			e.log.Warn("expire proposals", "err", err)
		}
		return action.DryRunResult{}, action.Record{}, fmt.Errorf("dry run action %d: %w at %s; ask for a new diagnosis",
			id, store.ErrExpired, p.ExpiresAt.UTC().Format(time.RFC3339))
	}

	var res action.DryRunResult
	a, err := e.cat.Lookup(p.ActionType)
	if err != nil {
		res = action.DryRunResult{Message: "refused: " + err.Error(), Requests: []action.Request{},
			Preconditions: []action.Check{{Name: "action_known", Passed: false, Detail: err.Error()}}}
	} else {
		dctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
		res, err = a.DryRun(dctx, p.Params)
		cancel()
		if err != nil {
			return action.DryRunResult{}, action.Record{}, fmt.Errorf("dry run action %d: %w", id, err)
		}
	}
	if res.Requests == nil {
		res.Requests = []action.Request{}
	}
	rec := action.Record{ExecutedBy: by, StartedAt: started, Success: res.Valid, Message: dryRunMessage(res)}
	if b, err := json.Marshal(res.Requests); err == nil {
		rec.Requests = b
	}
	if e.capture != nil {
		cctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
		state, err := e.capture(cctx, p.Params)
		cancel()
		if err != nil {
			rec.Message += fmt.Sprintf("; state could not be captured: %v", err)
		} else {
			rec.StateBefore = state
		}
	}
	stored, err := e.st.RecordDryRun(ctx, id, rec, e.now())
	if err != nil {
		return res, action.Record{}, err
	}
	e.log.Info("dry run recorded", "action_id", id, "action", p.ActionType, "by", by, "valid", res.Valid, "record_id", stored.ID)
	return res, stored, nil
}

// dryRunMessage summarises a dry run for its audit record.
func dryRunMessage(r action.DryRunResult) string {
	var b strings.Builder
	if r.Valid {
		b.WriteString("dry run: valid: ")
		b.WriteString(r.Message)
	} else {
		b.WriteString("dry run: invalid: ")
		b.WriteString(failedChecks(r))
	}
	if len(r.Warnings) > 0 {
		b.WriteString("; warnings: ")
		b.WriteString(strings.Join(r.Warnings, "; "))
	}
	return b.String()
}
