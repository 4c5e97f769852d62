package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tikvops/operator/internal/action"
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
}

// ClaimNext atomically takes the oldest approved proposal (by approval
// time, then id) that does not conflict with an executing one, and moves
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
	if executor == "" {
		return nil, fmt.Errorf("claim action: %w: executor name is required", ErrInvalid)
	}
	var waiting int
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM action_proposals WHERE status = 'approved')`).Scan(&waiting); err != nil {
		return nil, fmt.Errorf("claim action: %w", err)
	}
	if waiting == 0 {
		return nil, nil
	}
	var (
		out    *action.Proposal
		capped int
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if o.Max > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM action_proposals WHERE executed_at >= ?`,
				fmtTime(o.Since)).Scan(&n); err != nil {
				return fmt.Errorf("count claims: %w", err)
			}
			if n >= o.Max {
				capped = n
				return nil
			}
		}
		executing, err := txProposals(ctx, tx, `SELECT `+proposalCols+` FROM action_proposals WHERE status = 'executing' ORDER BY id`)
		if err != nil {
			return err
		}
		approved, err := txProposals(ctx, tx, `SELECT `+proposalCols+` FROM action_proposals WHERE status = 'approved' ORDER BY approved_at, id`)
		if err != nil {
			return err
		}
		for _, p := range approved {
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
		return nil, fmt.Errorf("claim action: %w", err)
	}
	if capped > 0 {
		return nil, fmt.Errorf("claim action: %w: %d claimed since %s (max %d)", ErrCapReached, capped, o.Since.UTC().Format(time.RFC3339), o.Max)
	}
	return out, nil
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

// ClaimedSince counts the proposals an executor claimed at or after since
// (ExecutedAt >= since, whatever their status now: executing, completed
// or failed) and returns the oldest such claim time (zero when n is 0).
// Unlike ExecutionsSince it also counts executions still in flight, which
// is what a per-hour cap needs.
func (s *Store) ClaimedSince(ctx context.Context, since time.Time) (n int, oldest time.Time, err error) {
	var first timeCol
	err = s.db.QueryRowContext(ctx, `SELECT count(*), min(executed_at) FROM action_proposals WHERE executed_at >= ?`,
		fmtTime(since)).Scan(&n, &first)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count claimed actions: %w", err)
	}
	return n, first.t, nil
}

// ExpireTicketProposals moves the proposals of ticket ticketID still
// awaiting a human (proposed or dry_run) to expired, and returns how many
// it moved. The executor calls it when it resolves the ticket: a fix for
// a violation that is gone no longer fits. Approved, executing and final
// proposals are left alone.
func (s *Store) ExpireTicketProposals(ctx context.Context, ticketID int64, now time.Time) (n int, err error) {
	ts := fmtTime(now)
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE action_proposals SET status = 'expired', updated_at = ?
WHERE ticket_id = ? AND status IN ('proposed', 'dry_run')`, ts, ticketID)
		if err != nil {
			return err
		}
		c, err := res.RowsAffected()
		n = int(c)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire actions of ticket %d: %w", ticketID, err)
	}
	return n, nil
}
