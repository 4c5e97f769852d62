package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// ManualInvariant is the invariant of the tickets that carry an action a
// person (or a scheduled revert) proposed without a ticket of its own:
// key "manual/<action_type>:<n>", subject "<action_type>:<n>" with n the
// id the proposal gets. No monitor evaluates it: such a ticket is created
// diagnosed (the diagnoser never picks it up), the executor does not
// re-evaluate it before sending, and it is resolved when its action ends.
const ManualInvariant = "manual"

// ManualProposal is what ProposeManual stores.
type ManualProposal struct {
	// TicketID is the ticket the proposal is for; 0 creates a manual
	// ticket (ManualInvariant) in the same transaction.
	TicketID int64
	// Proposal: ActionType, Params, Rationale (the reason), ProposedBy
	// (action.HumanProposer+name, or "revert") and ExpiresAt are required;
	// Urgency defaults to soon.
	Proposal action.Proposal
	// Severity of a created manual ticket; default warning.
	Severity ticket.Severity
}

// ProposeManual stores a proposal that no diagnosis made, in one
// transaction: with m.TicketID 0 it first creates a manual ticket (status
// diagnosed, tagged with the store's cluster id, diagnosis_backend =
// ProposedBy, summary naming the action and the reason); otherwise the
// ticket must exist, not be resolved, and belong to this database's
// cluster. The proposal is inserted proposed and an approval request is
// enqueued in the outbox. It returns the stored proposal.
//
// Errors: ErrInvalid (no action type, proposer, reason or expiry, params
// not a JSON object); ErrNotFound for an unknown ticket; ErrWrongCluster;
// *ticket.ErrTransition when the ticket is resolved.
func (s *Store) ProposeManual(ctx context.Context, m ManualProposal, now time.Time) (action.Proposal, error) {
	p := m.Proposal
	if p.ProposedBy == "" || p.Rationale == "" {
		return action.Proposal{}, fmt.Errorf("propose: %w: a proposer and a reason are required", ErrInvalid)
	}
	if p.Urgency == "" {
		p.Urgency = action.Soon
	}
	if len(p.Params) == 0 {
		p.Params = json.RawMessage(`{}`)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(p.Params, &obj); err != nil || obj == nil {
		return action.Proposal{}, fmt.Errorf("propose: %w: params must be a JSON object", ErrInvalid)
	}
	sev := m.Severity
	if sev == "" {
		sev = ticket.Warning
	}
	if !validSeverity(sev) {
		return action.Proposal{}, fmt.Errorf("propose: %w: severity %q", ErrInvalid, sev)
	}
	cluster := s.ClusterID()
	var out action.Proposal
	err := s.write(ctx, func(tx *sql.Tx) error {
		tid := m.TicketID
		if tid == 0 {
			var err error
			if tid, err = s.insertManualTicket(ctx, tx, p, sev, cluster, now); err != nil {
				return err
			}
		} else {
			t, err := scanTicket(tx.QueryRowContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE id = ?`, tid))
			if err == sql.ErrNoRows {
				return fmt.Errorf("ticket %d: %w", tid, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("read ticket %d: %w", tid, err)
			}
			if t.Status == ticket.Resolved {
				return &ticket.ErrTransition{ID: tid, From: t.Status, To: ticket.Diagnosed}
			}
			if cluster != "" && t.ClusterID != "" && t.ClusterID != cluster {
				return fmt.Errorf("%w: ticket %d belongs to PD cluster %s (%s), this daemon watches %s (%s); propose through that cluster's daemon",
					ErrWrongCluster, tid, t.ClusterID, clusterNameTx(ctx, tx, t.ClusterID), cluster, s.ClusterName())
			}
		}
		a, err := newProposalArgs(tid, p, p.ProposedBy, now)
		if err != nil {
			return err
		}
		id, err := insertProposal(ctx, tx, a, now)
		if err != nil {
			return err
		}
		if err := s.enqueueProposed(ctx, tx, id, now); err != nil {
			return err
		}
		out, err = readProposal(ctx, tx, id)
		return err
	})
	if err != nil {
		return action.Proposal{}, fmt.Errorf("propose %s: %w", p.ActionType, err)
	}
	return out, nil
}

// insertManualTicket creates the diagnosed manual ticket of p inside tx
// and returns its id.
func (s *Store) insertManualTicket(ctx context.Context, tx *sql.Tx, p action.Proposal, sev ticket.Severity, cluster string, now time.Time) (int64, error) {
	// The id the proposal will get: past both the newest row and the
	// highest id ever issued (AUTOINCREMENT).
	var next int64
	if err := tx.QueryRowContext(ctx, `SELECT CASE WHEN a > b THEN a ELSE b END + 1 FROM (SELECT
	coalesce((SELECT max(id) FROM action_proposals), 0) AS a,
	coalesce((SELECT seq FROM `+s.seqTable()+` WHERE name = 'action_proposals'), 0) AS b) AS next`).Scan(&next); err != nil {
		return 0, fmt.Errorf("next proposal id: %w", err)
	}
	subject := fmt.Sprintf("%s:%d", p.ActionType, next)
	key := ticket.Observation{Invariant: ManualInvariant, Subject: subject}.Key()
	ev, err := json.Marshal(map[string]any{"action_type": p.ActionType, "params": p.Params, "proposed_by": p.ProposedBy, "reason": p.Rationale})
	if err != nil {
		return 0, err
	}
	ts := fmtTime(now)
	summary := fmt.Sprintf("%s proposed %s: %s", p.ProposedBy, p.ActionType, p.Rationale)
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO tickets
	(key, invariant, subject, severity, status, summary, evidence, first_evidence,
	 first_seen, last_seen, occurrences, updated_at, cluster_id,
	 diagnosis_markdown, diagnosis_backend, diagnosed_at)
VALUES (?1, ?2, ?3, ?4, 'diagnosed', ?5, ?6, ?6, ?7, ?7, 1, ?7, ?8, ?9, ?10, ?7)
RETURNING id`, key, ManualInvariant, subject, string(sev), summary, string(ev), ts, cluster, p.Rationale, p.ProposedBy).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert manual ticket: %w", err)
	}
	return id, nil
}
