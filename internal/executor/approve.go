package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/store"
)

// Decision is what a person adds to an approval or rejection besides who
// they are.
type Decision struct {
	// OnBehalfOf names the person an admin decides for; only admins may
	// set it, and both names are recorded.
	OnBehalfOf string
	// EvidenceDigest is the hash of the dry-run record the person saw
	// ("" when none was shown; the latest one is then bound).
	EvidenceDigest string
}

// ApprovalResult tells how far an approval got.
type ApprovalResult struct {
	// Approvals is the number of distinct people who approved so far.
	Approvals int `json:"approvals"`
	// Required is how many the policy asks for this action's risk.
	Required int `json:"required"`
}

// Approve approves proposal id as the person `by` with the approver role;
// see ApproveAs. It is for tests and in-process callers that have already
// authenticated by.
func (e *Executor) Approve(ctx context.Context, id int64, by string) (action.Proposal, error) {
	p, _, err := e.ApproveAs(ctx, id, auth.Identity{Name: strings.TrimSpace(by), Role: auth.Approver, Via: "internal"}, Decision{})
	return p, err
}

// ApproveAs records who's approval of proposal id after the approval
// policy, evaluated with the daemon's configuration: who must be an
// approver or admin (an admin may act on behalf of d.OnBehalfOf); nobody
// approves an action they proposed themselves; the catalog must know the
// action and accept its params; with MaxPerHour set, executions started in
// the last hour plus proposals approved and still waiting must be below
// the cap. The store then appends the bound approval record (identity,
// role, action digest, cluster, ticket, evidence digest, expiry) and, once
// the number of distinct approvers the action's risk requires is reached,
// moves the proposal to approved (a compare-and-swap) and wakes Run. An
// action of another cluster sharing the database may be approved here
// too: its approval record is bound to its own cluster, whose daemon alone
// claims and runs it (and checks its hourly cap).
//
// Errors: ErrPolicy (wrapped, with the reason; also wrapping
// action.ErrUnknownAction or action.ErrInvalidParams); store.ErrNotFound;
// store.ErrExpired; *action.ErrTransition when it is not proposed or
// dry_run, including when a concurrent approver won; store.ErrInvalid for
// an invalid name.
func (e *Executor) ApproveAs(ctx context.Context, id int64, who auth.Identity, d Decision) (action.Proposal, ApprovalResult, error) {
	if err := e.ready(); err != nil {
		return action.Proposal{}, ApprovalResult{}, err
	}
	if err := e.checkDecider(who, d); err != nil {
		return action.Proposal{}, ApprovalResult{}, fmt.Errorf("approve action %d: %w", id, err)
	}
	p, err := e.st.Proposal(ctx, id)
	if err != nil {
		return action.Proposal{}, ApprovalResult{}, fmt.Errorf("approve action %d: %w", id, err)
	}
	if !action.CanTransition(p.Status, action.Approved) {
		return action.Proposal{}, ApprovalResult{}, fmt.Errorf("approve action %d: %w", id, &action.ErrTransition{ID: id, From: p.Status, To: action.Approved})
	}
	// An action of another cluster sharing the database may be approved
	// here too: the approval record is bound to the action's cluster, and
	// only that cluster's daemon claims and runs it.
	own := p.ClusterID == "" || p.ClusterID == e.st.ClusterID()
	now := e.now()
	if now.After(p.ExpiresAt) {
		// The store moves it to expired and returns ErrExpired.
		np, err := e.st.Approve(ctx, id, who.Name, now)
		return np, ApprovalResult{}, err
	}
	if proposer := humanProposer(p); proposer != "" && (strings.EqualFold(proposer, who.Name) || strings.EqualFold(proposer, d.OnBehalfOf)) {
		return action.Proposal{}, ApprovalResult{}, fmt.Errorf("approve action %d: %w: %s proposed it and cannot approve it too; another person must", id, ErrPolicy, proposer)
	}
	a, err := e.cat.Lookup(p.ActionType)
	if err != nil {
		return action.Proposal{}, ApprovalResult{}, fmt.Errorf("approve action %d: %w: %w", id, ErrPolicy, err)
	}
	if err := action.ValidateParams(a.Spec(), p.Params); err != nil {
		return action.Proposal{}, ApprovalResult{}, fmt.Errorf("approve action %d: %w: %w", id, ErrPolicy, err)
	}
	if e.maxPerHour > 0 && own { // another cluster's cap is its daemon's (checked again at claim)
		if err := e.checkCap(ctx, now); err != nil {
			return action.Proposal{}, ApprovalResult{}, fmt.Errorf("approve action %d: %w", id, err)
		}
	}
	need := e.policy.RequiredFor(a.Spec().Risk)
	np, n, err := e.st.ApproveBound(ctx, id, store.Approval{
		By: who.Name, Role: string(who.Role), OnBehalfOf: d.OnBehalfOf, Via: viaOf(who),
		EvidenceDigest: d.EvidenceDigest, TTL: e.policy.ApprovalTTL, Required: need,
	}, now)
	if errors.Is(err, store.ErrPolicy) {
		return np, ApprovalResult{}, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	if err != nil {
		return np, ApprovalResult{}, err
	}
	res := ApprovalResult{Approvals: n, Required: need}
	e.log.Info("action approved", "action_id", id, "action", np.ActionType, "by", who.Name, "role", who.Role,
		"via", who.Via, "on_behalf_of", d.OnBehalfOf, "approvals", n, "required", need, "status", np.Status)
	if np.Status == action.Approved {
		e.poke()
	}
	return np, res, nil
}

// checkDecider refuses a decision by someone who may not make it.
func (e *Executor) checkDecider(who auth.Identity, d Decision) error {
	if err := auth.ValidName(who.Name); err != nil {
		return fmt.Errorf("%w: %w", store.ErrInvalid, err)
	}
	if !who.Role.AtLeast(auth.Approver) {
		return fmt.Errorf("%w: %s has role %q; approving, rejecting and dry runs need approver or admin", ErrForbidden, who.Name, who.Role)
	}
	if d.OnBehalfOf != "" {
		if who.Role != auth.Admin {
			return fmt.Errorf("%w: only an admin may act on behalf of another person (%s is %s)", ErrForbidden, who.Name, who.Role)
		}
		if err := auth.ValidName(d.OnBehalfOf); err != nil {
			return fmt.Errorf("%w: on behalf of: %w", store.ErrInvalid, err)
		}
	}
	return nil
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

// Reject rejects proposal id as the person `by` with the approver role;
// see RejectAs.
func (e *Executor) Reject(ctx context.Context, id int64, by, reason string) (action.Proposal, error) {
	return e.RejectAs(ctx, id, auth.Identity{Name: strings.TrimSpace(by), Role: auth.Approver, Via: "internal"}, Decision{}, reason)
}

// RejectAs rejects proposal id as who (approver or admin; an admin may act
// on behalf of d.OnBehalfOf) with reason (required), recording the role;
// see store.Reject. Errors: ErrForbidden, store.ErrNotFound,
// *action.ErrTransition, store.ErrInvalid.
func (e *Executor) RejectAs(ctx context.Context, id int64, who auth.Identity, d Decision, reason string) (action.Proposal, error) {
	if err := e.ready(); err != nil {
		return action.Proposal{}, err
	}
	if err := e.checkDecider(who, d); err != nil {
		return action.Proposal{}, fmt.Errorf("reject action %d: %w", id, err)
	}
	p, err := e.st.RejectAs(ctx, id, store.Approval{By: who.Name, Role: string(who.Role), OnBehalfOf: d.OnBehalfOf}, strings.TrimSpace(reason), e.now())
	if err != nil {
		return p, err
	}
	e.log.Info("action rejected", "action_id", id, "action", p.ActionType, "by", who.Name, "role", who.Role, "reason", reason)
	// A rejection is new evidence: the ticket is diagnosed again, and the
	// diagnosis does not propose the rejected action again
	// (diagnose.Runner.Rejected).
	why := fmt.Sprintf("%saction %d (%s) rejected by %s: %s", store.RejectionReasonPrefix, id, p.ActionType, who.Name, reason)
	if err := e.st.RequestRediagnosis(ctx, p.TicketID, why, e.now()); err != nil {
		e.log.Debug("no re-diagnosis after the rejection", "ticket_id", p.TicketID, "err", err)
	}
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
	return e.DryRunAs(ctx, id, auth.Identity{Name: strings.TrimSpace(by), Role: auth.Approver, Via: "internal"})
}

// DryRunAs is DryRun by an authenticated person (approver or admin: a dry
// run writes an audit record), recording their role. A dry run reads this
// daemon's PD, so an action of another cluster sharing the database is
// refused with store.ErrWrongCluster naming it.
func (e *Executor) DryRunAs(ctx context.Context, id int64, who auth.Identity) (action.DryRunResult, action.Record, error) {
	if err := e.ready(); err != nil {
		return action.DryRunResult{}, action.Record{}, err
	}
	if err := e.checkDecider(who, Decision{}); err != nil {
		return action.DryRunResult{}, action.Record{}, fmt.Errorf("dry run action %d: %w", id, err)
	}
	by := who.Name
	p, err := e.st.Proposal(ctx, id)
	if err != nil {
		return action.DryRunResult{}, action.Record{}, fmt.Errorf("dry run action %d: %w", id, err)
	}
	if !action.CanTransition(p.Status, action.DryRun) {
		return action.DryRunResult{}, action.Record{}, fmt.Errorf("dry run action %d: %w", id, &action.ErrTransition{ID: id, From: p.Status, To: action.DryRun})
	}
	if cluster := e.st.ClusterID(); p.ClusterID != "" && p.ClusterID != cluster {
		// A dry run reads PD: this daemon's PD is another cluster's.
		return action.DryRunResult{}, action.Record{}, fmt.Errorf("dry run action %d: %w: it was made for PD cluster %s (%s), this daemon watches cluster %s (%s); dry-run it through that cluster's daemon",
			id, store.ErrWrongCluster, p.ClusterID, e.clusterName(ctx, p.ClusterID), cluster, e.st.ClusterName())
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
	rec := action.Record{ExecutedBy: by, ActorRole: string(who.Role), StartedAt: started, Success: res.Valid, Message: dryRunMessage(res)}
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

// viaOf is how who was authenticated, for the approval record's message;
// "" for in-process callers (tests, tools).
func viaOf(who auth.Identity) string {
	if who.Via == "internal" || who.Via == "test" {
		return ""
	}
	return who.Via
}

// clusterName returns the name PD cluster id is bound under in the
// database, or "unknown name".
func (e *Executor) clusterName(ctx context.Context, id string) string {
	cs, err := e.st.ClusterList(ctx)
	if err == nil {
		for _, c := range cs {
			if c.ID == id {
				return c.Name
			}
		}
	}
	return "unknown name"
}
