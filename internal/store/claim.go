package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// ErrCapReached is returned (wrapped) by ClaimNext when ClaimOptions.Max
// proposals were already claimed inside the window; nothing was claimed.
var ErrCapReached = errors.New("execution cap reached")

// ClaimOptions restrict what ClaimNext may take.
type ClaimOptions struct {
	// Conflicts reports whether candidate must wait because it touches
	// something (a region, a store) that one of the executing proposals
	// touches. It is called inside the claim transaction, with every
	// proposal in status executing, so the decision and the claim are
	// atomic across processes. It must not do I/O. nil means no conflicts.
	Conflicts func(candidate action.Proposal, executing []action.Proposal) bool
	// Max, when > 0, caps claims: nothing is claimed when Max proposals
	// have an ExecutedAt at or after Since (whatever their status now).
	Max   int
	Since time.Time
	// Eligible, when not nil, decides inside the claim transaction whether
	// an approved candidate may be claimed, from its approval records
	// (oldest first) and its ticket's status. It must not do I/O. nil lets
	// the claim proceed; an error wrapping ErrClaimRefused or
	// ErrClaimExpired ends the candidate as refused or expired, with a
	// refusal or expiry record whose message is the error, in the same
	// transaction; any other error leaves it approved and skips it.
	Eligible func(candidate action.Proposal, approvals []action.Record, ticketStatus ticket.Status) error
	// Term, when > 0, is the claiming leader's term (internal/ha: its
	// election revision in PD's etcd), as WithTerm: the claim is refused
	// with ErrStaleTerm, in the same transaction, when a higher term is
	// recorded, and is stored as the proposal's claim term. 0 uses the
	// term of ctx, if any (no HA: none).
	Term int64
}

// Claim-time verdicts of ClaimOptions.Eligible.
var (
	// ErrClaimRefused: the approval does not authorise execution (no valid
	// approval record, another cluster, the policy); the proposal ends
	// refused.
	ErrClaimRefused = errors.New("refused at claim")
	// ErrClaimExpired: the approval is past its TTL, or its ticket
	// resolved; the proposal ends expired.
	ErrClaimExpired = errors.New("expired at claim")
)

// Tampered starts the reason of a claim-time refusal that only a change
// made outside the daemon explains (a status without an approval, an
// approval record the daemon did not sign, params edited after approval,
// another cluster's action). VerifyWith reports such refusal records.
const Tampered = "tampered: "

// ClaimEnded is a proposal that ClaimNext ended (refused or expired)
// instead of claiming, with its record.
type ClaimEnded struct {
	Proposal action.Proposal
	Record   action.Record
	Reason   error
}

// ClaimNext atomically takes the oldest approved proposal of this
// handle's cluster (BindCluster; "" when not bound), by approval time then
// id, that does not conflict with an executing one of that cluster, and moves
// it approved -> executing, recording executor as ExecutedBy and now as
// ExecutedAt, like Claim. Proposals skipped because of a conflict stay
// approved. It returns nil when nothing can be claimed. A cheap read
// first avoids taking the write lock when nothing is approved, so polling
// it often is fine.
//
// Errors: ErrInvalid for an empty executor name; ErrCapReached (wrapped,
// naming the count) when the cap of o is reached while an approved
// proposal is waiting; otherwise the wrapped SQLite error.
func (s *Store) ClaimNext(ctx context.Context, executor string, now time.Time, o ClaimOptions) (*action.Proposal, error) {
	p, _, err := s.ClaimNextChecked(ctx, executor, now, o)
	return p, err
}

// ClaimNextChecked is ClaimNext that also returns the proposals it ended
// (refused or expired by ClaimOptions.Eligible) on the way.
func (s *Store) ClaimNextChecked(ctx context.Context, executor string, now time.Time, o ClaimOptions) (*action.Proposal, []ClaimEnded, error) {
	if executor == "" {
		return nil, nil, fmt.Errorf("claim action: %w: executor name is required", ErrInvalid)
	}
	if o.Term > 0 {
		ctx = WithTerm(ctx, o.Term)
	}
	// Only this handle's cluster's proposals (BindCluster): an action of
	// another cluster is its own daemon's to run.
	cluster := s.ClusterID()
	var waiting int
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM action_proposals WHERE status = 'approved' AND cluster_id = ?)`, cluster).Scan(&waiting); err != nil {
		return nil, nil, fmt.Errorf("claim action: %w", err)
	}
	if waiting == 0 {
		return nil, nil, nil
	}
	var (
		out    *action.Proposal
		capped int
		ended  []ClaimEnded
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		ended = ended[:0]
		if o.Max > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM action_proposals WHERE cluster_id = ? AND executed_at >= ?`,
				cluster, fmtTime(o.Since)).Scan(&n); err != nil {
				return fmt.Errorf("count claims: %w", err)
			}
			if n >= o.Max {
				capped = n
				return nil
			}
		}
		executing, err := txProposals(ctx, tx, `SELECT `+proposalCols+` FROM action_proposals WHERE status = 'executing' AND cluster_id = ? ORDER BY id`, cluster)
		if err != nil {
			return err
		}
		approved, err := txProposals(ctx, tx, `SELECT `+proposalCols+` FROM action_proposals WHERE status = 'approved' AND cluster_id = ? ORDER BY approved_at, id`, cluster)
		if err != nil {
			return err
		}
		for _, p := range approved {
			if o.Eligible != nil {
				approvals, err := queryRecords(ctx, tx, `SELECT `+recordCols+` FROM action_records WHERE proposal_id = ? AND event = 'approval' ORDER BY id`, p.ID)
				if err != nil {
					return err
				}
				var tstatus string
				if err := tx.QueryRowContext(ctx, `SELECT status FROM tickets WHERE id = ?`, p.TicketID).Scan(&tstatus); err != nil && !errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("read ticket %d: %w", p.TicketID, err)
				}
				if verdict := o.Eligible(p, approvals, ticket.Status(tstatus)); verdict != nil {
					to, event := action.Status(""), ""
					switch {
					case errors.Is(verdict, ErrClaimRefused):
						to, event = action.Refused, action.EventRefusal
					case errors.Is(verdict, ErrClaimExpired):
						to, event = action.Expired, action.EventExpiry
					default:
						continue
					}
					np, err := casProposal(ctx, tx, p, to, now, `result = ?, finished_at = ?`, verdict.Error(), fmtTime(now))
					if err != nil {
						return err
					}
					rec, err := s.appendRecord(ctx, tx, np, action.Record{
						Event: event, Success: false, ExecutedBy: executor,
						Message: "nothing sent to PD: " + verdict.Error(), StartedAt: now, FinishedAt: now,
					}, now)
					if err != nil {
						return err
					}
					ended = append(ended, ClaimEnded{Proposal: np, Record: rec, Reason: verdict})
					continue
				}
			}
			if o.Conflicts != nil && o.Conflicts(p, executing) {
				continue
			}
			np, err := casProposal(ctx, tx, p, action.Executing, now,
				`executed_by = ?, executed_at = ?`, executor, fmtTime(now))
			if err != nil {
				return err
			}
			out = &np
			return nil
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("claim action: %w", err)
	}
	if capped > 0 {
		return nil, nil, fmt.Errorf("claim action: %w: %d claimed since %s (max %d)", ErrCapReached, capped, o.Since.UTC().Format(time.RFC3339), o.Max)
	}
	return out, ended, nil
}

// txProposals runs a proposal query inside tx.
func txProposals(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]action.Proposal, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
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

// ClaimedSince counts the proposals of this handle's cluster an executor
// claimed at or after since
// (ExecutedAt >= since, whatever their status now: executing, completed
// or failed) and returns the oldest such claim time (zero when n is 0).
// Unlike ExecutionsSince it also counts executions still in flight, which
// is what a per-hour cap needs.
func (s *Store) ClaimedSince(ctx context.Context, since time.Time) (n int, oldest time.Time, err error) {
	var first timeCol
	err = s.db.QueryRowContext(ctx, `SELECT count(*), min(executed_at) FROM action_proposals WHERE cluster_id = ? AND executed_at >= ?`,
		s.ClusterID(), fmtTime(since)).Scan(&n, &first)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count claimed actions: %w", err)
	}
	return n, first.t, nil
}

// ExpireTicketProposals moves the proposals of ticket ticketID that have
// not started executing (proposed, dry_run and approved) to expired, and
// returns how many it moved; an approved one gets an expiry record in the
// audit trail. Resolving a ticket (Sweep, ResolveTicket) already does this
// in the same transaction; this is for callers that expire without
// resolving.
func (s *Store) ExpireTicketProposals(ctx context.Context, ticketID int64, now time.Time) (n int, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		var err error
		n, _, err = s.expireTicketProposals(ctx, tx, ticketID, now, "its ticket was closed")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire actions of ticket %d: %w", ticketID, err)
	}
	return n, nil
}

// expireTicketProposalsTx is expireTicketProposals inside the caller's
// write transaction (resolving a ticket and expiring its proposals is one
// transaction).
func (s *Store) expireTicketProposalsTx(ctx context.Context, tx *sql.Tx, ticketID int64, now time.Time, why string) error {
	_, _, err := s.expireTicketProposals(ctx, tx, ticketID, now, why)
	return err
}

func (s *Store) expireTicketProposals(ctx context.Context, tx *sql.Tx, ticketID int64, now time.Time, why string) (int, []action.Record, error) {
	ps, err := txProposals(ctx, tx, `SELECT `+proposalCols+` FROM action_proposals
WHERE ticket_id = ? AND status IN ('proposed', 'dry_run', 'approved') ORDER BY id`, ticketID)
	if err != nil {
		return 0, nil, err
	}
	var recs []action.Record
	for _, p := range ps {
		np, err := casProposal(ctx, tx, p, action.Expired, now, `result = ?`, "expired: "+why)
		if err != nil {
			return 0, nil, err
		}
		if p.Status != action.Approved {
			continue
		}
		rec, err := s.appendRecord(ctx, tx, np, action.Record{
			Event: action.EventExpiry, Success: false,
			Message:   "approval expired before execution, nothing sent to PD: " + why,
			StartedAt: now, FinishedAt: now,
		}, now)
		if err != nil {
			return 0, nil, err
		}
		recs = append(recs, rec)
	}
	return len(ps), recs, nil
}
