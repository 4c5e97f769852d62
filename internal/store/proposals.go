package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// proposalCols is the column list scanProposal reads, in order.
const proposalCols = `id, ticket_id, action_type, params, rationale, risks, urgency, status,
	proposed_by, proposed_at, expires_at, approved_by, approved_at, rejected_by,
	rejected_at, rejection_reason, executed_by, executed_at, finished_at, result,
	updated_at, cluster_id, approval_expires_at`

func scanProposal(sc scanner) (action.Proposal, error) {
	var (
		p                                          action.Proposal
		params, risks, urgency, status             string
		approvedBy, rejectedBy, reason, executedBy sql.NullString
		result                                     sql.NullString
		proposedAt, expiresAt, updatedAt           timeCol
		approvedAt, rejectedAt, executedAt, finAt  timeCol
		approvalExpires                            timeCol
	)
	err := sc.Scan(&p.ID, &p.TicketID, &p.ActionType, &params, &p.Rationale, &risks, &urgency,
		&status, &p.ProposedBy, &proposedAt, &expiresAt, &approvedBy, &approvedAt, &rejectedBy,
		&rejectedAt, &reason, &executedBy, &executedAt, &finAt, &result, &updatedAt,
		&p.ClusterID, &approvalExpires)
	if err != nil {
		return action.Proposal{}, err
	}
	p.Params = json.RawMessage(params)
	if err := json.Unmarshal([]byte(risks), &p.Risks); err != nil {
		return action.Proposal{}, fmt.Errorf("proposal %d: stored risks: %w", p.ID, err)
	}
	p.Urgency, p.Status = action.Urgency(urgency), action.Status(status)
	p.ProposedAt, p.ExpiresAt, p.UpdatedAt = proposedAt.t, expiresAt.t, updatedAt.t
	p.ApprovedBy, p.RejectedBy, p.RejectionReason = approvedBy.String, rejectedBy.String, reason.String
	p.ExecutedBy, p.Result = executedBy.String, result.String
	p.ApprovedAt, p.RejectedAt = approvedAt.ptr(), rejectedAt.ptr()
	p.ExecutedAt, p.FinishedAt = executedAt.ptr(), finAt.ptr()
	p.ApprovalExpiresAt = approvalExpires.ptr()
	return p, nil
}

// proposalArgs is a validated proposal ready to insert.
type proposalArgs struct {
	ticketID                  int64
	actionType, params        string
	rationale, risks, urgency string
	proposedBy                string
	proposedAt, expiresAt     string
	clusterID                 string
}

func newProposalArgs(ticketID int64, p action.Proposal, backend string, now time.Time) (*proposalArgs, error) {
	if p.TicketID != 0 && p.TicketID != ticketID {
		return nil, fmt.Errorf("%w: proposal names ticket %d, diagnosis is for ticket %d", ErrInvalid, p.TicketID, ticketID)
	}
	if p.ActionType == "" {
		return nil, fmt.Errorf("%w: proposal has no action type", ErrInvalid)
	}
	if p.ExpiresAt.IsZero() {
		return nil, fmt.Errorf("%w: proposal has no expiry time", ErrInvalid)
	}
	params := "{}"
	if len(p.Params) > 0 {
		if !json.Valid(p.Params) {
			return nil, fmt.Errorf("%w: proposal params are not valid JSON", ErrInvalid)
		}
		params = string(p.Params)
	}
	risks := p.Risks
	if risks == nil {
		risks = []string{}
	}
	rb, err := json.Marshal(risks)
	if err != nil {
		return nil, fmt.Errorf("%w: proposal risks: %v", ErrInvalid, err)
	}
	a := &proposalArgs{
		ticketID: ticketID, actionType: p.ActionType, params: params,
		rationale: p.Rationale, risks: string(rb), urgency: string(p.Urgency),
		proposedBy: p.ProposedBy, proposedAt: fmtTime(p.ProposedAt), expiresAt: fmtTime(p.ExpiresAt),
		clusterID: p.ClusterID,
	}
	if a.proposedBy == "" {
		a.proposedBy = backend
	}
	if p.ProposedAt.IsZero() {
		a.proposedAt = fmtTime(now)
	}
	return a, nil
}

func insertProposal(ctx context.Context, tx *sql.Tx, a *proposalArgs, now time.Time) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO action_proposals
	(ticket_id, action_type, params, rationale, risks, urgency, status, proposed_by,
	 proposed_at, expires_at, updated_at, cluster_id)
VALUES (?, ?, ?, ?, ?, ?, 'proposed', ?, ?, ?, ?,
	coalesce(nullif(?, ''), (SELECT cluster_id FROM tickets WHERE id = ?), ''))
RETURNING id`,
		a.ticketID, a.actionType, a.params, a.rationale, a.risks, a.urgency, a.proposedBy,
		a.proposedAt, a.expiresAt, fmtTime(now), a.clusterID, a.ticketID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert proposal: %w", err)
	}
	return id, nil
}

// readProposal reads one proposal through q (the DB or a transaction).
func readProposal(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id int64) (action.Proposal, error) {
	p, err := scanProposal(q.QueryRowContext(ctx, `SELECT `+proposalCols+` FROM action_proposals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return action.Proposal{}, fmt.Errorf("action %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return action.Proposal{}, fmt.Errorf("read action %d: %w", id, err)
	}
	return p, nil
}

// casProposal moves proposal p (read in tx) to status to, as a
// compare-and-swap on p.Status validated by action.CanTransition. set is
// extra "col = ?" assignments with their args. It returns the updated
// proposal or *action.ErrTransition with the current status.
func casProposal(ctx context.Context, tx *sql.Tx, p action.Proposal, to action.Status, now time.Time, set string, args ...any) (action.Proposal, error) {
	if !action.CanTransition(p.Status, to) {
		return action.Proposal{}, &action.ErrTransition{ID: p.ID, From: p.Status, To: to}
	}
	q := `UPDATE action_proposals SET status = ?, updated_at = ?`
	if set != "" {
		q += ", " + set
	}
	if tset, targs := termSet(ctx, string(p.Status), string(to)); tset != "" { // fencing.go
		q += ", " + tset
		args = append(args[:len(args):len(args)], targs...)
	}
	q += ` WHERE id = ? AND status = ? RETURNING ` + proposalCols
	all := make([]any, 0, len(args)+4)
	all = append(all, string(to), fmtTime(now))
	all = append(all, args...)
	all = append(all, p.ID, string(p.Status))
	np, err := scanProposal(tx.QueryRowContext(ctx, q, all...))
	if errors.Is(err, sql.ErrNoRows) {
		// Cannot happen under BEGIN IMMEDIATE, but the CAS is the contract.
		cur, rerr := readProposal(ctx, tx, p.ID)
		if rerr != nil {
			return action.Proposal{}, rerr
		}
		return action.Proposal{}, &action.ErrTransition{ID: p.ID, From: cur.Status, To: to}
	}
	if err != nil {
		return action.Proposal{}, fmt.Errorf("update action %d: %w", p.ID, err)
	}
	return np, nil
}

// transition reads proposal id and applies casProposal in one write
// transaction.
func (s *Store) transition(ctx context.Context, id int64, to action.Status, now time.Time, set string, args ...any) (action.Proposal, error) {
	var out action.Proposal
	err := s.write(ctx, func(tx *sql.Tx) error {
		p, err := readProposal(ctx, tx, id)
		if err != nil {
			return err
		}
		out, err = casProposal(ctx, tx, p, to, now, set, args...)
		return err
	})
	return out, err
}

// Proposal returns the proposal with the given id, or ErrNotFound.
func (s *Store) Proposal(ctx context.Context, id int64) (action.Proposal, error) {
	return readProposal(ctx, s.db, id)
}

// ProposalFilter selects proposals for Proposals.
type ProposalFilter struct {
	// Statuses keeps proposals in any of these statuses; empty means all.
	Statuses []action.Status
	// TicketID keeps the proposals of one ticket; 0 means all.
	TicketID int64
	// Limit caps the number returned; 0 means no limit.
	Limit int
	// Cluster keeps the proposals of one PD cluster (its id); "" means
	// every cluster.
	Cluster string
}

// Proposals returns the proposals matching f, newest (highest id) first.
func (s *Store) Proposals(ctx context.Context, f ProposalFilter) ([]action.Proposal, error) {
	q := `SELECT ` + proposalCols + ` FROM action_proposals WHERE 1 = 1`
	var args []any
	if len(f.Statuses) > 0 {
		q += ` AND status IN (` + placeholders(len(f.Statuses)) + `)`
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.TicketID != 0 {
		q += ` AND ticket_id = ?`
		args = append(args, f.TicketID)
	}
	if f.Cluster != "" {
		q += ` AND cluster_id = ?`
		args = append(args, f.Cluster)
	}
	q += ` ORDER BY id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return s.queryProposals(ctx, q, args...)
}

// Executing returns the proposals of this handle's cluster (BindCluster)
// in status executing, oldest first. At start the executor treats each as
// interrupted (never re-run); another cluster's are its daemon's.
func (s *Store) Executing(ctx context.Context) ([]action.Proposal, error) {
	return s.queryProposals(ctx, `SELECT `+proposalCols+` FROM action_proposals WHERE status = 'executing' AND cluster_id = ? ORDER BY id`, s.ClusterID())
}

func (s *Store) queryProposals(ctx context.Context, q string, args ...any) ([]action.Proposal, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	defer rows.Close()
	var out []action.Proposal
	for rows.Next() {
		p, err := scanProposal(rows)
		if err != nil {
			return nil, fmt.Errorf("list actions: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	return out, nil
}

// DefaultApprovalTTL is how long an approval authorises execution when
// Approval.TTL is zero ([actions] approval-ttl).
const DefaultApprovalTTL = 15 * time.Minute

// Approval is one person's approval of a proposal, bound to exactly what
// they approved. The store writes it as an approval record in the hash
// chain carrying the identity, the role, a digest of the action type and
// params (action.ActionDigest), the cluster id, the ticket id, the
// evidence digest and the expiry.
type Approval struct {
	// By is the authenticated identity (OS user over the daemon's Unix
	// socket, a token's name, or the auth proxy's user). Required.
	By string
	// Role is By's role (viewer, approver, admin).
	Role string
	// OnBehalfOf names the person an admin approves for ("" for none).
	OnBehalfOf string
	// Via says how By was authenticated (unix, token, proxy, slack,
	// console); it ends the record's message.
	Via string
	// EvidenceDigest is the hash of the proposal's latest dry-run record
	// the approver saw, or "" when none was shown. When the proposal has a
	// dry run and the digest names another one, the approval is refused
	// (the evidence changed under the approver).
	EvidenceDigest string
	// TTL is how long the approval authorises execution; zero means
	// DefaultApprovalTTL.
	TTL time.Duration
	// Required is how many distinct people must approve before the
	// proposal becomes approved (the policy for its risk); < 1 means 1.
	Required int
}

// ErrPolicy is returned (wrapped) when the store refuses an approval on
// policy grounds it can check itself: the same person approving twice, or
// evidence that changed under the approver.
var ErrPolicy = errors.New("refused by approval policy")

// Approve records an approval by `by` with the role approver and the
// defaults of Approval (one approver, DefaultApprovalTTL, no evidence
// digest); see ApproveBound. For tests and tools: the daemon approves
// through executor.ApproveAs with the authenticated identity.
func (s *Store) Approve(ctx context.Context, id int64, by string, now time.Time) (action.Proposal, error) {
	p, _, err := s.ApproveBound(ctx, id, Approval{By: by, Role: "approver"}, now)
	return p, err
}

// ApproveBound records a's approval of proposal id (proposed or dry_run)
// in one transaction: it appends the approval record (event approval,
// bound as described on Approval) and, when a.Required distinct people
// have now approved it, moves it to approved with approved_by (the
// approvers, comma-separated), approved_at = now and approval_expires_at
// = the earliest approval's expiry. Until then the proposal keeps its
// status. It returns the proposal and the number of distinct approvers so
// far. If now is after the proposal's ExpiresAt, the proposal is moved to
// expired instead (no record) and ErrExpired is returned.
//
// Errors: ErrNotFound; *action.ErrTransition when the proposal is in any
// other status, including when a concurrent approver won; ErrExpired;
// ErrInvalid for an empty approver; ErrPolicy (wrapped) when a.By already
// approved it, or a.EvidenceDigest does not name the latest dry run.
func (s *Store) ApproveBound(ctx context.Context, id int64, a Approval, now time.Time) (action.Proposal, int, error) {
	if a.By == "" {
		return action.Proposal{}, 0, fmt.Errorf("approve action %d: %w: approver is required", id, ErrInvalid)
	}
	ttl := a.TTL
	if ttl <= 0 {
		ttl = DefaultApprovalTTL
	}
	required := max(a.Required, 1)
	var (
		out     action.Proposal
		expired bool
		count   int
	)
	ts := fmtTime(now)
	err := s.write(ctx, func(tx *sql.Tx) error {
		p, err := readProposal(ctx, tx, id)
		if err != nil {
			return err
		}
		if !action.CanTransition(p.Status, action.Approved) {
			return &action.ErrTransition{ID: id, From: p.Status, To: action.Approved}
		}
		if now.After(p.ExpiresAt) {
			expired = true
			out, err = casProposal(ctx, tx, p, action.Expired, now, "")
			return err
		}
		prior, err := queryRecords(ctx, tx, `SELECT `+recordCols+` FROM action_records WHERE proposal_id = ? AND event = 'approval' ORDER BY id`, id)
		if err != nil {
			return err
		}
		names := []string{}
		earliest := now.Add(ttl)
		for _, r := range prior {
			if r.ExpiresAt != nil && !r.ExpiresAt.After(now) {
				continue // an approval past its TTL no longer counts
			}
			if strings.EqualFold(r.ApprovedBy, a.By) {
				return fmt.Errorf("%w: %s already approved action %d; another person must approve it", ErrPolicy, a.By, id)
			}
			names = append(names, r.ApprovedBy)
			if r.ExpiresAt != nil && r.ExpiresAt.Before(earliest) {
				earliest = *r.ExpiresAt
			}
		}
		latest, err := queryRecords(ctx, tx, `SELECT `+recordCols+` FROM action_records WHERE proposal_id = ? AND event = 'dry_run' ORDER BY id DESC LIMIT 1`, id)
		if err != nil {
			return err
		}
		if a.EvidenceDigest != "" && (len(latest) == 0 || latest[0].Hash != a.EvidenceDigest) {
			return fmt.Errorf("%w: the evidence shown to %s (dry run %.12s…) is not the latest dry run of action %d; look again before approving", ErrPolicy, a.By, a.EvidenceDigest, id)
		}
		evidence := a.EvidenceDigest
		if evidence == "" && len(latest) > 0 {
			evidence = latest[0].Hash
		}
		names = append(names, a.By)
		count = len(names)
		exp := now.Add(ttl)
		msg := "approved by " + a.By
		if a.OnBehalfOf != "" {
			msg += " on behalf of " + a.OnBehalfOf
		}
		if a.Via != "" {
			msg += " via " + a.Via
		}
		if count < required {
			msg += fmt.Sprintf(" (approval %d of %d required)", count, required)
		}
		if _, err := s.appendRecord(ctx, tx, p, action.Record{
			Event: action.EventApproval, Success: true, ApprovedBy: a.By, ActorRole: a.Role,
			OnBehalfOf: a.OnBehalfOf, ActionDigest: action.ActionDigest(p.ActionType, p.Params),
			EvidenceDigest: evidence, ExpiresAt: &exp, ClusterID: p.ClusterID,
			Message: msg, StartedAt: now, FinishedAt: now,
		}, now); err != nil {
			return err
		}
		if count < required {
			out = p
			return nil
		}
		out, err = casProposal(ctx, tx, p, action.Approved, now,
			`approved_by = ?, approved_at = ?, approval_expires_at = ?`, strings.Join(names, ","), ts, fmtTime(earliest))
		return err
	})
	if err != nil {
		return action.Proposal{}, 0, fmt.Errorf("approve action %d: %w", id, err)
	}
	if expired {
		return out, 0, fmt.Errorf("approve action %d: %w at %s (proposed %s); ask for a new diagnosis",
			id, ErrExpired, out.ExpiresAt.Format(time.RFC3339), out.ProposedAt.Format(time.RFC3339))
	}
	return out, count, nil
}

// Reject moves a proposed or dry_run proposal to rejected, recording who
// (by), when (now) and why (reason, required), and appends an audit record
// (Event action.EventRejection, Success false, Message "rejected by BY:
// REASON", StartedAt = FinishedAt = now) in the same transaction.
//
// Errors: ErrNotFound; *action.ErrTransition; ErrInvalid for an empty
// rejecter or reason.
func (s *Store) Reject(ctx context.Context, id int64, by, reason string, now time.Time) (action.Proposal, error) {
	return s.RejectAs(ctx, id, Approval{By: by}, reason, now)
}

// RejectAs is Reject with the rejecter's authenticated role and, for an
// admin acting for someone, the name they act for (a.Role, a.OnBehalfOf;
// the other fields of a are ignored), recorded in the rejection record.
func (s *Store) RejectAs(ctx context.Context, id int64, a Approval, reason string, now time.Time) (action.Proposal, error) {
	by := a.By
	if by == "" || reason == "" {
		return action.Proposal{}, fmt.Errorf("reject action %d: %w: who and a reason are required", id, ErrInvalid)
	}
	ts := fmtTime(now)
	var p action.Proposal
	err := s.write(ctx, func(tx *sql.Tx) error {
		cur, err := readProposal(ctx, tx, id)
		if err != nil {
			return err
		}
		p, err = casProposal(ctx, tx, cur, action.Rejected, now,
			`rejected_by = ?, rejected_at = ?, rejection_reason = ?`, by, ts, reason)
		if err != nil {
			return err
		}
		msg := "rejected by " + by
		if a.OnBehalfOf != "" {
			msg += " on behalf of " + a.OnBehalfOf
		}
		_, err = s.appendRecord(ctx, tx, p, action.Record{
			Event: action.EventRejection, Success: false, ActorRole: a.Role, OnBehalfOf: a.OnBehalfOf,
			Message: msg + ": " + reason, StartedAt: now, FinishedAt: now,
		}, now)
		return err
	})
	if err != nil {
		return action.Proposal{}, fmt.Errorf("reject action %d: %w", id, err)
	}
	return p, nil
}

// ExpireProposals moves, among this handle's cluster's proposals
// (BindCluster), every proposed or dry_run proposal whose
// ExpiresAt is before now to expired, and every approved proposal whose
// approval expired (approval_expires_at before now) to expired with an
// expiry record, and returns how many it moved.
func (s *Store) ExpireProposals(ctx context.Context, now time.Time) (n int, err error) {
	ts, cluster := fmtTime(now), s.ClusterID()
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE action_proposals SET status = 'expired', updated_at = ?
WHERE status IN ('proposed', 'dry_run') AND cluster_id = ? AND expires_at < ?`, ts, cluster, ts)
		if err != nil {
			return err
		}
		c, err := res.RowsAffected()
		if err != nil {
			return err
		}
		n = int(c)
		stale, err := txProposals(ctx, tx, `SELECT `+proposalCols+` FROM action_proposals
WHERE status = 'approved' AND cluster_id = ? AND approval_expires_at IS NOT NULL AND approval_expires_at < ? ORDER BY id`, cluster, ts)
		if err != nil {
			return err
		}
		for _, p := range stale {
			why := "approval expired at " + p.ApprovalExpiresAt.UTC().Format(time.RFC3339) + " before the executor claimed it"
			np, err := casProposal(ctx, tx, p, action.Expired, now, `result = ?`, "expired: "+why)
			if err != nil {
				return err
			}
			if _, err := s.appendRecord(ctx, tx, np, action.Record{
				Event: action.EventExpiry, Success: false, Message: "nothing sent to PD: " + why,
				StartedAt: now, FinishedAt: now,
			}, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire actions: %w", err)
	}
	return n, nil
}

// Claim atomically takes the oldest approved proposal (by approval time,
// then id) and moves it approved -> executing, recording executor (for
// example "host:pid") as ExecutedBy and now as ExecutedAt. It returns nil
// when no proposal of this handle's cluster (BindCluster) is approved. The claim is durable before Claim
// returns, so a crash after it leaves the proposal visibly executing.
func (s *Store) Claim(ctx context.Context, executor string, now time.Time) (*action.Proposal, error) {
	if executor == "" {
		return nil, fmt.Errorf("claim action: %w: executor name is required", ErrInvalid)
	}
	var out *action.Proposal
	err := s.write(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM action_proposals WHERE status = 'approved' AND cluster_id = ?
ORDER BY approved_at, id LIMIT 1`, s.ClusterID()).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := readProposal(ctx, tx, id)
		if err != nil {
			return err
		}
		np, err := casProposal(ctx, tx, p, action.Executing, now,
			`executed_by = ?, executed_at = ?`, executor, fmtTime(now))
		if err != nil {
			return err
		}
		out = &np
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim action: %w", err)
	}
	return out, nil
}

// ClaimID moves proposal id approved -> executing for executor, like
// Claim but for one proposal.
//
// Errors: ErrNotFound; *action.ErrTransition when it is not approved
// (including when another executor claimed it first).
func (s *Store) ClaimID(ctx context.Context, id int64, executor string, now time.Time) (action.Proposal, error) {
	if executor == "" {
		return action.Proposal{}, fmt.Errorf("claim action %d: %w: executor name is required", id, ErrInvalid)
	}
	p, err := s.transition(ctx, id, action.Executing, now,
		`executed_by = ?, executed_at = ?`, executor, fmtTime(now))
	if err != nil {
		return action.Proposal{}, fmt.Errorf("claim action %d: %w", id, err)
	}
	return p, nil
}

// Finish ends an execution in one transaction: CAS executing -> to, set
// Result and FinishedAt = now, and append rec to the audit trail. Either
// both land or neither does. to is action.Completed or action.Failed
// (event execution), action.Expired (event expiry: the approval no longer
// applied when the executor looked, nothing sent) or action.Refused
// (event refusal: nothing sent).
//
// rec is completed from the proposal: ProposalID, TicketID, ActionType,
// Params, ApprovedBy and ExecutedBy when empty, StartedAt defaults to the
// proposal's ExecutedAt, FinishedAt to now, Message to result. DryRun is
// forced false and Success is set to (to == action.Completed). The stored
// record, with ID, PrevHash and Hash, is returned.
//
// A leader's Finish carries its term in ctx (WithTerm, fencing.go): it is
// stored as the finish term, and a term lower than the highest recorded
// one is refused with ErrStaleTerm before anything changes.
//
// Errors: ErrNotFound; *action.ErrTransition when the proposal is not
// executing; ErrInvalid for another target status, a record naming another
// proposal, or malformed JSON; ErrStaleTerm.
func (s *Store) Finish(ctx context.Context, id int64, to action.Status, result string, rec action.Record, now time.Time) (action.Record, error) {
	switch to {
	case action.Completed, action.Failed:
		rec.Event = action.EventExecution
	case action.Expired:
		rec.Event = action.EventExpiry
	case action.Refused:
		rec.Event = action.EventRefusal
	default:
		return action.Record{}, fmt.Errorf("finish action %d: %w: final status must be %s, %s, %s or %s, not %q",
			id, ErrInvalid, action.Completed, action.Failed, action.Expired, action.Refused, to)
	}
	rec.DryRun = false
	rec.Success = to == action.Completed
	if rec.Message == "" {
		rec.Message = result
	}
	var out action.Record
	err := s.write(ctx, func(tx *sql.Tx) error {
		p, err := readProposal(ctx, tx, id)
		if err != nil {
			return err
		}
		np, err := casProposal(ctx, tx, p, to, now, `result = ?, finished_at = ?`, result, fmtTime(now))
		if err != nil {
			return err
		}
		out, err = s.appendRecord(ctx, tx, np, rec, now)
		return err
	})
	if err != nil {
		return action.Record{}, fmt.Errorf("finish action %d: %w", id, err)
	}
	return out, nil
}

// RecordDryRun records a dry run in one transaction: CAS proposed|dry_run
// -> dry_run and append rec (DryRun forced true) to the audit trail. rec is
// completed from the proposal as in Finish; StartedAt and FinishedAt
// default to now. The proposal stays awaiting approval.
//
// Errors: ErrNotFound; *action.ErrTransition; ErrInvalid.
func (s *Store) RecordDryRun(ctx context.Context, id int64, rec action.Record, now time.Time) (action.Record, error) {
	rec.DryRun = true
	rec.Event = action.EventDryRun
	var out action.Record
	err := s.write(ctx, func(tx *sql.Tx) error {
		p, err := readProposal(ctx, tx, id)
		if err != nil {
			return err
		}
		np, err := casProposal(ctx, tx, p, action.DryRun, now, "")
		if err != nil {
			return err
		}
		out, err = s.appendRecord(ctx, tx, np, rec, now)
		return err
	})
	if err != nil {
		return action.Record{}, fmt.Errorf("record dry run of action %d: %w", id, err)
	}
	return out, nil
}
