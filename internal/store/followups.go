package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// schemaV6 adds action_followups: the scheduled revert of a temporary
// change (an action executed with a duration). A row is written in the
// transaction that records the action's completion, so it survives
// restarts and fail-over; the executor carries it out when due.
const schemaV6 = `
CREATE TABLE action_followups (
	id                 INTEGER PRIMARY KEY AUTOINCREMENT,
	proposal_id        INTEGER NOT NULL REFERENCES action_proposals(id), -- the temporary change
	ticket_id          INTEGER NOT NULL,
	cluster_id         TEXT    NOT NULL DEFAULT '',
	action_type        TEXT    NOT NULL,                 -- the revert action
	params             TEXT    NOT NULL DEFAULT '{}',    -- its params, JSON object
	expect             TEXT    NOT NULL,                 -- JSON: what PD shows while the change is in place
	restore            TEXT    NOT NULL,                 -- JSON: what PD shows once reverted
	due_at             TEXT    NOT NULL,
	status             TEXT    NOT NULL DEFAULT 'scheduled'
	                   CHECK (status IN ('scheduled', 'running', 'done', 'proposed', 'cancelled', 'failed')),
	claimed_by         TEXT    NOT NULL DEFAULT '',
	result             TEXT    NOT NULL DEFAULT '',
	revert_proposal_id INTEGER REFERENCES action_proposals(id),
	created_at         TEXT    NOT NULL,
	updated_at         TEXT    NOT NULL
);
CREATE INDEX action_followups_due ON action_followups(status, due_at);
CREATE INDEX action_followups_proposal ON action_followups(proposal_id, id);
`

// FollowUpStatus is a scheduled revert's state.
type FollowUpStatus string

// Follow-up statuses.
const (
	// FollowUpScheduled: waiting for DueAt.
	FollowUpScheduled FollowUpStatus = "scheduled"
	// FollowUpRunning: claimed by an executor, being carried out.
	FollowUpRunning FollowUpStatus = "running"
	// FollowUpDone: reverted (or found already reverted); final.
	FollowUpDone FollowUpStatus = "done"
	// FollowUpProposed: PD no longer showed the value the action set, so
	// the revert was proposed for approval (RevertProposalID); final.
	FollowUpProposed FollowUpStatus = "proposed"
	// FollowUpCancelled: a person cancelled it; final.
	FollowUpCancelled FollowUpStatus = "cancelled"
	// FollowUpFailed: the revert was sent and PD refused it or its effect
	// was not verified; final.
	FollowUpFailed FollowUpStatus = "failed"
)

// RevertProposer is the ProposedBy of a revert the executor could not
// carry out by itself and proposes for approval instead.
const RevertProposer = "revert"

// FollowUp is a scheduled revert of a temporary change.
type FollowUp struct {
	ID int64 `json:"id"`
	// ProposalID is the action that made the temporary change.
	ProposalID int64  `json:"proposal_id"`
	TicketID   int64  `json:"ticket_id"`
	ClusterID  string `json:"cluster_id,omitempty"`
	// ActionType and Params are the revert action (a catalog action).
	ActionType string          `json:"action_type"`
	Params     json.RawMessage `json:"params"`
	// Expect is what PD shows while the change is in place (the value the
	// action set); Restore is what PD shows once reverted (the recorded
	// previous value). Both in the shape the subject's Current reads.
	Expect  json.RawMessage `json:"expect"`
	Restore json.RawMessage `json:"restore"`
	DueAt   time.Time       `json:"due_at"`
	Status  FollowUpStatus  `json:"status"`
	// ClaimedBy names the executor that took it (host:pid).
	ClaimedBy string `json:"claimed_by,omitempty"`
	Result    string `json:"result,omitempty"`
	// RevertProposalID is the proposal made when the revert needed an
	// approval (status proposed).
	RevertProposalID int64     `json:"revert_proposal_id,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

const followUpCols = `id, proposal_id, ticket_id, cluster_id, action_type, params, expect, restore,
	due_at, status, claimed_by, result, revert_proposal_id, created_at, updated_at`

func scanFollowUp(sc scanner) (FollowUp, error) {
	var (
		f                       FollowUp
		params, expect, restore string
		status                  string
		due, created, updated   timeCol
		revert                  sql.NullInt64
	)
	if err := sc.Scan(&f.ID, &f.ProposalID, &f.TicketID, &f.ClusterID, &f.ActionType, &params, &expect, &restore,
		&due, &status, &f.ClaimedBy, &f.Result, &revert, &created, &updated); err != nil {
		return FollowUp{}, err
	}
	f.Params, f.Expect, f.Restore = json.RawMessage(params), json.RawMessage(expect), json.RawMessage(restore)
	f.DueAt, f.CreatedAt, f.UpdatedAt = due.t, created.t, updated.t
	f.Status = FollowUpStatus(status)
	f.RevertProposalID = revert.Int64
	return f, nil
}

func readFollowUp(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id int64) (FollowUp, error) {
	f, err := scanFollowUp(q.QueryRowContext(ctx, `SELECT `+followUpCols+` FROM action_followups WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return FollowUp{}, fmt.Errorf("scheduled revert %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return FollowUp{}, fmt.Errorf("read scheduled revert %d: %w", id, err)
	}
	return f, nil
}

// ErrFollowUpState is returned (wrapped) when a scheduled revert is not in
// the status a change needs (cancel or extend one that already ran).
var ErrFollowUpState = errors.New("scheduled revert is not in a status that allows it")

// FinishScheduling is Finish that also stores fus (the reverts of the
// temporary change the action made) in the same transaction, tagged with
// the proposal's ticket and cluster. Each needs ActionType, Params (JSON
// object), Expect, Restore and DueAt. It returns the record and the stored
// follow-ups. Errors: as Finish, and ErrInvalid for an incomplete follow-up.
func (s *Store) FinishScheduling(ctx context.Context, id int64, to action.Status, result string, rec action.Record, fus []FollowUp, now time.Time) (action.Record, []FollowUp, error) {
	for _, f := range fus {
		if f.ActionType == "" || f.DueAt.IsZero() || !json.Valid(f.Params) || !json.Valid(f.Expect) || !json.Valid(f.Restore) {
			return action.Record{}, nil, fmt.Errorf("finish action %d: %w: incomplete scheduled revert %+v", id, ErrInvalid, f)
		}
	}
	if to != action.Completed && to != action.Failed {
		return action.Record{}, nil, fmt.Errorf("finish action %d: %w: status %q", id, ErrInvalid, to)
	}
	rec.Event, rec.DryRun, rec.Success = action.EventExecution, false, to == action.Completed
	if rec.Message == "" {
		rec.Message = result
	}
	var (
		out    action.Record
		stored []FollowUp
	)
	err := s.write(ctx, func(tx *sql.Tx) error {
		p, err := readProposal(ctx, tx, id)
		if err != nil {
			return err
		}
		np, err := casProposal(ctx, tx, p, to, now, `result = ?, finished_at = ?`, result, fmtTime(now))
		if err != nil {
			return err
		}
		if out, err = s.appendRecord(ctx, tx, np, rec, now); err != nil {
			return err
		}
		ts := fmtTime(now)
		for _, f := range fus {
			var fid int64
			err := tx.QueryRowContext(ctx, `INSERT INTO action_followups
	(proposal_id, ticket_id, cluster_id, action_type, params, expect, restore, due_at, status, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'scheduled', ?, ?) RETURNING id`,
				np.ID, np.TicketID, np.ClusterID, f.ActionType, string(f.Params), string(f.Expect), string(f.Restore),
				fmtTime(f.DueAt), ts, ts).Scan(&fid)
			if err != nil {
				return fmt.Errorf("insert scheduled revert: %w", err)
			}
			sf, err := readFollowUp(ctx, tx, fid)
			if err != nil {
				return err
			}
			stored = append(stored, sf)
		}
		return nil
	})
	if err != nil {
		return action.Record{}, nil, fmt.Errorf("finish action %d: %w", id, err)
	}
	return out, stored, nil
}

// FollowUpFilter selects follow-ups for FollowUps.
type FollowUpFilter struct {
	// Statuses keeps these statuses; empty means all.
	Statuses []FollowUpStatus
	// ProposalID keeps the reverts of one action; 0 means all.
	ProposalID int64
}

// FollowUp returns one scheduled revert, or ErrNotFound.
func (s *Store) FollowUp(ctx context.Context, id int64) (FollowUp, error) {
	return readFollowUp(ctx, s.db, id)
}

// FollowUps returns the scheduled reverts matching f, soonest due first.
func (s *Store) FollowUps(ctx context.Context, f FollowUpFilter) ([]FollowUp, error) {
	q := `SELECT ` + followUpCols + ` FROM action_followups WHERE 1 = 1`
	var args []any
	if len(f.Statuses) > 0 {
		q += ` AND status IN (` + placeholders(len(f.Statuses)) + `)`
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.ProposalID != 0 {
		q += ` AND proposal_id = ?`
		args = append(args, f.ProposalID)
	}
	q += ` ORDER BY due_at, id`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list scheduled reverts: %w", err)
	}
	defer rows.Close()
	var out []FollowUp
	for rows.Next() {
		fu, err := scanFollowUp(rows)
		if err != nil {
			return nil, fmt.Errorf("list scheduled reverts: %w", err)
		}
		out = append(out, fu)
	}
	return out, rows.Err()
}

// ClaimDueFollowUp moves the soonest scheduled revert of this handle's
// cluster (BindCluster) due at or before now
// to running for executor and returns it, or nil when none is due. A
// compare-and-swap: two executors never claim the same one.
func (s *Store) ClaimDueFollowUp(ctx context.Context, executor string, now time.Time) (*FollowUp, error) {
	var out *FollowUp
	err := s.write(ctx, func(tx *sql.Tx) error {
		f, err := scanFollowUp(tx.QueryRowContext(ctx, `UPDATE action_followups SET status = 'running', claimed_by = ?, claim_term = ?, updated_at = ?
WHERE id = (SELECT id FROM action_followups WHERE status = 'scheduled' AND cluster_id = ? AND due_at <= ? ORDER BY due_at, id LIMIT 1)
RETURNING `+followUpCols, executor, termOrNull(ctx), fmtTime(now), s.ClusterID(), fmtTime(now)))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		out = &f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim scheduled revert: %w", err)
	}
	return out, nil
}

// schemaV11 records the leader term of a revert's claim, so that a new
// leader requeues the reverts a deposed one left running by term (as
// actions are recovered), not by host:pid, which breaks on PID reuse and
// across hosts.
const schemaV11 = `ALTER TABLE action_followups ADD COLUMN claim_term BIGINT;`

// termOrNull is ctx's leader term for a claim column, NULL without one.
func termOrNull(ctx context.Context) any {
	if t := TermFrom(ctx); t > 0 {
		return t
	}
	return nil
}

// RequeueFollowUps moves running reverts of this handle's cluster whose
// executor is gone back to scheduled, so that they are checked again: the
// check reads PD first, so a revert that was already applied is found
// restored and not sent twice. With a leader term in ctx (several
// replicas, WithTerm) a revert is gone when it was claimed under a lower
// term or none; without one, when dead reports true for the name that
// claimed it. It returns how many it moved.
func (s *Store) RequeueFollowUps(ctx context.Context, dead func(claimedBy string) bool, now time.Time) (int, error) {
	running, err := s.FollowUps(ctx, FollowUpFilter{Statuses: []FollowUpStatus{FollowUpRunning}})
	if err != nil {
		return 0, err
	}
	term := TermFrom(ctx)
	var claimTerms map[int64]int64
	if term > 0 && len(running) > 0 {
		if claimTerms, err = s.followUpClaimTerms(ctx); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, f := range running {
		if f.ClusterID != s.ClusterID() {
			continue
		}
		if term > 0 {
			if claimTerms[f.ID] >= term {
				continue // claimed under this leader's term: running here
			}
		} else if !dead(f.ClaimedBy) {
			continue
		}
		err := s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE action_followups SET status = 'scheduled', updated_at = ?
WHERE id = ? AND status = 'running' AND claimed_by = ?`, fmtTime(now), f.ID, f.ClaimedBy)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("requeue scheduled revert %d: %w", f.ID, err)
		}
		n++
	}
	return n, nil
}

// FinishFollowUp ends a running revert as done or failed with result, and
// appends rec (event action.EventRevert, on the original action, params =
// the revert's) to the audit trail in the same transaction.
func (s *Store) FinishFollowUp(ctx context.Context, id int64, to FollowUpStatus, result string, rec action.Record, now time.Time) (action.Record, error) {
	if to != FollowUpDone && to != FollowUpFailed {
		return action.Record{}, fmt.Errorf("finish scheduled revert %d: %w: status %q", id, ErrInvalid, to)
	}
	var out action.Record
	err := s.write(ctx, func(tx *sql.Tx) error {
		f, err := casFollowUp(ctx, tx, id, FollowUpRunning, to, now, `result = ?`, result)
		if err != nil {
			return err
		}
		out, err = s.appendFollowUpRecord(ctx, tx, f, rec, to == FollowUpDone, now)
		return err
	})
	if err != nil {
		return action.Record{}, fmt.Errorf("finish scheduled revert %d: %w", id, err)
	}
	return out, nil
}

// ProposeFollowUp ends a running revert as proposed: PD no longer shows
// the value the action set, so restoring the previous value without an
// approval could undo someone else's change. In one transaction it stores
// p (the revert, ProposedBy RevertProposer) on a new manual ticket, which
// enqueues its approval request (the notification), links it, and appends
// rec (event action.EventRevert, success false) on the original action.
func (s *Store) ProposeFollowUp(ctx context.Context, id int64, p action.Proposal, result string, rec action.Record, now time.Time) (action.Proposal, error) {
	if p.ProposedBy == "" {
		p.ProposedBy = RevertProposer
	}
	var out action.Proposal
	err := s.write(ctx, func(tx *sql.Tx) error {
		f, err := readFollowUp(ctx, tx, id)
		if err != nil {
			return err
		}
		p.ActionType, p.Params = f.ActionType, f.Params
		if p.Urgency == "" {
			p.Urgency = action.Soon
		}
		tid, err := s.insertManualTicket(ctx, tx, p, "warning", f.ClusterID, now)
		if err != nil {
			return err
		}
		a, err := newProposalArgs(tid, p, p.ProposedBy, now)
		if err != nil {
			return err
		}
		pid, err := insertProposal(ctx, tx, a, now)
		if err != nil {
			return err
		}
		if err := s.enqueueProposed(ctx, tx, pid, now); err != nil {
			return err
		}
		if f, err = casFollowUp(ctx, tx, id, FollowUpRunning, FollowUpProposed, now, `result = ?, revert_proposal_id = ?`, result, pid); err != nil {
			return err
		}
		if _, err := s.appendFollowUpRecord(ctx, tx, f, rec, false, now); err != nil {
			return err
		}
		out, err = readProposal(ctx, tx, pid)
		return err
	})
	if err != nil {
		return action.Proposal{}, fmt.Errorf("propose scheduled revert %d: %w", id, err)
	}
	return out, nil
}

// CancelFollowUp cancels a scheduled revert as the person a (By and Role;
// approver or admin, checked by the caller) with reason, recording it in
// the audit trail. Errors: ErrNotFound; ErrFollowUpState when it is not
// scheduled; ErrInvalid without a name or reason.
func (s *Store) CancelFollowUp(ctx context.Context, id int64, a Approval, reason string, now time.Time) (FollowUp, error) {
	if a.By == "" || reason == "" {
		return FollowUp{}, fmt.Errorf("cancel scheduled revert %d: %w: who and a reason are required", id, ErrInvalid)
	}
	var out FollowUp
	err := s.write(ctx, func(tx *sql.Tx) error {
		f, err := casFollowUp(ctx, tx, id, FollowUpScheduled, FollowUpCancelled, now, `result = ?`, "cancelled by "+a.By+": "+reason)
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("scheduled revert %d (%s, due %s) cancelled by %s: %s", f.ID, f.ActionType, f.DueAt.UTC().Format(time.RFC3339), a.By, reason)
		if _, err := s.appendFollowUpRecord(ctx, tx, f, action.Record{ExecutedBy: a.By, ActorRole: a.Role, OnBehalfOf: a.OnBehalfOf, Message: msg}, true, now); err != nil {
			return err
		}
		out = f
		return nil
	})
	if err != nil {
		return FollowUp{}, fmt.Errorf("cancel scheduled revert %d: %w", id, err)
	}
	return out, nil
}

// ExtendFollowUp moves a scheduled revert's due time later by d (> 0) as
// the person a, recording it in the audit trail. Errors: as CancelFollowUp.
func (s *Store) ExtendFollowUp(ctx context.Context, id int64, a Approval, d time.Duration, now time.Time) (FollowUp, error) {
	if a.By == "" || d <= 0 {
		return FollowUp{}, fmt.Errorf("extend scheduled revert %d: %w: who and a positive duration are required", id, ErrInvalid)
	}
	var out FollowUp
	err := s.write(ctx, func(tx *sql.Tx) error {
		cur, err := readFollowUp(ctx, tx, id)
		if err != nil {
			return err
		}
		due := cur.DueAt.Add(d)
		f, err := casFollowUp(ctx, tx, id, FollowUpScheduled, FollowUpScheduled, now, `due_at = ?`, fmtTime(due))
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("scheduled revert %d (%s) extended by %s by %s: due %s instead of %s", f.ID, f.ActionType, d, a.By,
			due.UTC().Format(time.RFC3339), cur.DueAt.UTC().Format(time.RFC3339))
		if _, err := s.appendFollowUpRecord(ctx, tx, f, action.Record{ExecutedBy: a.By, ActorRole: a.Role, OnBehalfOf: a.OnBehalfOf, Message: msg}, true, now); err != nil {
			return err
		}
		out = f
		return nil
	})
	if err != nil {
		return FollowUp{}, fmt.Errorf("extend scheduled revert %d: %w", id, err)
	}
	return out, nil
}

// casFollowUp moves follow-up id from status from to to inside tx, with
// extra "col = ?" assignments, and returns it as updated.
func casFollowUp(ctx context.Context, tx *sql.Tx, id int64, from, to FollowUpStatus, now time.Time, set string, args ...any) (FollowUp, error) {
	q := `UPDATE action_followups SET status = ?, updated_at = ?`
	if set != "" {
		q += `, ` + set
	}
	q += ` WHERE id = ? AND status = ? RETURNING ` + followUpCols
	all := append([]any{string(to), fmtTime(now)}, args...)
	all = append(all, id, string(from))
	f, err := scanFollowUp(tx.QueryRowContext(ctx, q, all...))
	if errors.Is(err, sql.ErrNoRows) {
		cur, rerr := readFollowUp(ctx, tx, id)
		if rerr != nil {
			return FollowUp{}, rerr
		}
		return FollowUp{}, fmt.Errorf("%w: scheduled revert %d is %s, not %s", ErrFollowUpState, id, cur.Status, from)
	}
	if err != nil {
		return FollowUp{}, fmt.Errorf("update scheduled revert %d: %w", id, err)
	}
	return f, nil
}

// appendFollowUpRecord appends rec as an action.EventRevert record of f's
// original action (params = the revert's, action type = the revert's).
func (s *Store) appendFollowUpRecord(ctx context.Context, tx *sql.Tx, f FollowUp, rec action.Record, success bool, now time.Time) (action.Record, error) {
	p, err := readProposal(ctx, tx, f.ProposalID)
	if err != nil {
		return action.Record{}, err
	}
	rec.Event, rec.DryRun, rec.Success = action.EventRevert, false, success
	rec.ActionType, rec.Params = f.ActionType, f.Params
	if rec.StartedAt.IsZero() {
		rec.StartedAt = now
	}
	rec.FinishedAt = now
	return s.appendRecord(ctx, tx, p, rec, now)
}

// followUpClaimTerms maps each running revert of this handle's cluster to
// the term it was claimed under (0: none).
func (s *Store) followUpClaimTerms(ctx context.Context) (map[int64]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, claim_term FROM action_followups WHERE status = 'running' AND cluster_id = ?`, s.ClusterID())
	if err != nil {
		return nil, fmt.Errorf("read revert claim terms: %w", err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var (
			id int64
			t  sql.NullInt64
		)
		if err := rows.Scan(&id, &t); err != nil {
			return nil, fmt.Errorf("read revert claim terms: %w", err)
		}
		out[id] = t.Int64
	}
	return out, rows.Err()
}
