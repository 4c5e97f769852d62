package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Retention (issue 17; docs/retention.md): history that nobody needs any
// more is pruned, so that a year of tickets does not slow the monitor; the
// audit trail is never touched.
//
// What goes, once resolved before the cutoff:
//   - a resolved ticket that no audit record names (action_records.ticket_id),
//     with its proposals (none of them named by an audit record or a
//     scheduled revert), its archived diagnoses and its Alertmanager alert
//     links (alerts.ticket_id set to NULL); tickets that point at it
//     (previous_id, root_id) lose the link.
//   - the archived diagnoses (table diagnoses) of every resolved ticket,
//     kept or not.
//   - notification events (outbox) created before the cutoff whose every
//     delivery is final (delivered or dead), with their deliveries.
//
// What stays: action_records (append-only, hash-chained), every ticket and
// proposal an audit record names (they are the audit's subjects: `audit
// show` and `tickets show` still resolve them), open and diagnosed tickets,
// scheduled reverts, silences (audited too) and the monitor's memory
// (monitor_alerts, monitor_state: a few rows, rewritten every cycle).
//
// Each batch is one short write transaction of at most RetentionBatch
// tickets, so the monitor's writes never wait behind a long delete. The
// SQL is portable (? placeholders, no SQLite-only functions).

// RetentionBatch is the most tickets one retention transaction deletes.
const RetentionBatch = 200

// RetentionReport is what one Prune did.
type RetentionReport struct {
	// Tickets and Proposals are the resolved tickets and their proposals
	// deleted.
	Tickets   int `json:"tickets"`
	Proposals int `json:"proposals"`
	// Diagnoses are the archived diagnoses deleted.
	Diagnoses int `json:"diagnoses"`
	// OutboxEvents are the notification events deleted (with their
	// deliveries).
	OutboxEvents int `json:"outbox_events"`
	// Batches is the write transactions used.
	Batches int `json:"batches"`
}

// Prune deletes the history resolved before cutoff (see the package
// comment above: never an audit record, nor a ticket or proposal one
// names), in batches of RetentionBatch tickets, each its own short write
// transaction; it stops early when ctx ends and reports what was done so
// far. Errors name the step that failed.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (RetentionReport, error) {
	var rep RetentionReport
	cut := fmtTime(cutoff)
	for ctx.Err() == nil {
		n, err := s.pruneTickets(ctx, cut, &rep)
		if err != nil {
			return rep, err
		}
		if n < RetentionBatch {
			break
		}
	}
	for ctx.Err() == nil {
		n, err := s.pruneDiagnoses(ctx, cut, &rep)
		if err != nil {
			return rep, err
		}
		if n < RetentionBatch {
			break
		}
	}
	for ctx.Err() == nil {
		n, err := s.pruneOutbox(ctx, cut, &rep)
		if err != nil {
			return rep, err
		}
		if n < RetentionBatch {
			break
		}
	}
	return rep, ctx.Err()
}

// schemaV10 lets a deleted ticket's successors be found (and the foreign
// key on tickets.previous_id be checked) without a scan of the whole
// tickets table per deleted ticket: without it, pruning 100,000 tickets
// did not finish in 15 minutes; with it, 2.1 s. The same statement is
// PostgreSQL's migration 10.
const schemaV10 = `CREATE INDEX tickets_previous_id ON tickets(previous_id) WHERE previous_id IS NOT NULL;`

// prunableTickets selects resolved tickets resolved before the cutoff that
// no audit record names and whose proposals no audit record or scheduled
// revert names.
const prunableTickets = `SELECT t.id FROM tickets t
WHERE t.status = 'resolved' AND t.resolved_at < ?
AND NOT EXISTS (SELECT 1 FROM action_records r WHERE r.ticket_id = t.id)
AND NOT EXISTS (SELECT 1 FROM action_proposals p WHERE p.ticket_id = t.id AND (
	EXISTS (SELECT 1 FROM action_records r WHERE r.proposal_id = p.id)
	OR EXISTS (SELECT 1 FROM action_followups f WHERE f.proposal_id = p.id OR f.revert_proposal_id = p.id)))
ORDER BY t.id LIMIT ?`

func (s *Store) pruneTickets(ctx context.Context, cut string, rep *RetentionReport) (int, error) {
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		ids, err := queryIDs(ctx, tx, prunableTickets, cut, RetentionBatch)
		if err != nil || len(ids) == 0 {
			return err
		}
		in, args := inList(ids)
		steps := []struct {
			what, q string
			count   *int
		}{
			{"unlink later tickets", `UPDATE tickets SET previous_id = NULL WHERE previous_id IN ` + in, nil},
			{"unlink incident members", `UPDATE tickets SET root_id = NULL WHERE root_id IN ` + in, nil},
			{"unlink alerts", `UPDATE alerts SET ticket_id = NULL WHERE ticket_id IN ` + in, nil},
			{"delete diagnoses", `DELETE FROM diagnoses WHERE ticket_id IN ` + in, &rep.Diagnoses},
			{"delete proposals", `DELETE FROM action_proposals WHERE ticket_id IN ` + in, &rep.Proposals},
			{"delete tickets", `DELETE FROM tickets WHERE id IN ` + in, &rep.Tickets},
		}
		for _, st := range steps {
			res, err := tx.ExecContext(ctx, st.q, args...)
			if err != nil {
				return fmt.Errorf("retention: %s: %w", st.what, err)
			}
			if st.count != nil {
				k, _ := res.RowsAffected()
				*st.count += int(k)
			}
		}
		n = len(ids)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		rep.Batches++
	}
	return n, nil
}

// pruneDiagnoses deletes archived diagnoses of tickets resolved before the
// cutoff (the tickets an audit record names stay, their old diagnoses go).
func (s *Store) pruneDiagnoses(ctx context.Context, cut string, rep *RetentionReport) (int, error) {
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		ids, err := queryIDs(ctx, tx, `SELECT d.id FROM diagnoses d JOIN tickets t ON t.id = d.ticket_id
WHERE t.status = 'resolved' AND t.resolved_at < ? ORDER BY d.id LIMIT ?`, cut, RetentionBatch)
		if err != nil || len(ids) == 0 {
			return err
		}
		in, args := inList(ids)
		res, err := tx.ExecContext(ctx, `DELETE FROM diagnoses WHERE id IN `+in, args...)
		if err != nil {
			return fmt.Errorf("retention: delete diagnoses: %w", err)
		}
		k, _ := res.RowsAffected()
		rep.Diagnoses += int(k)
		n = len(ids)
		return nil
	})
	if err == nil && n > 0 {
		rep.Batches++
	}
	return n, err
}

// pruneOutbox deletes notification events created before the cutoff,
// routed, whose every delivery is final (delivered or dead), with their
// deliveries.
func (s *Store) pruneOutbox(ctx context.Context, cut string, rep *RetentionReport) (int, error) {
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		ids, err := queryIDs(ctx, tx, `SELECT o.id FROM outbox o
WHERE o.routed = 1 AND o.created_at < ?
AND NOT EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = o.id AND d.status NOT IN ('delivered', 'dead'))
ORDER BY o.id LIMIT ?`, cut, RetentionBatch)
		if err != nil || len(ids) == 0 {
			return err
		}
		in, args := inList(ids)
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox_deliveries WHERE event_id IN `+in, args...); err != nil {
			return fmt.Errorf("retention: delete outbox deliveries: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id IN `+in, args...)
		if err != nil {
			return fmt.Errorf("retention: delete outbox events: %w", err)
		}
		k, _ := res.RowsAffected()
		rep.OutboxEvents += int(k)
		n = len(ids)
		return nil
	})
	if err == nil && n > 0 {
		rep.Batches++
	}
	return n, err
}

func queryIDs(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("retention: select: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("retention: select: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// inList returns "(?, ?, ...)" for ids and the ids as arguments.
func inList(ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")", args
}
