package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// ticketCols is the column list scanTicket reads, in order.
const ticketCols = `id, key, invariant, subject, severity, status, summary, evidence,
	first_evidence, first_seen, last_seen, occurrences, cleared_at, resolved_at,
	previous_id, diagnosis_markdown, diagnosis_json, diagnosed_at, diagnosis_backend,
	input_tokens, output_tokens, diagnosis_attempts, next_diagnosis_at,
	last_diagnosis_error, updated_at, root_id, cluster_id`

func scanTicket(sc scanner) (ticket.Ticket, error) {
	var (
		t                                         ticket.Ticket
		severity, status                          string
		evidence, firstEvidence, diagJSON         sql.NullString
		firstSeen, lastSeen, updatedAt            timeCol
		clearedAt, resolvedAt, diagnosedAt, nextD timeCol
		prev, root                                sql.NullInt64
	)
	err := sc.Scan(&t.ID, &t.Key, &t.Invariant, &t.Subject, &severity, &status, &t.Summary,
		&evidence, &firstEvidence, &firstSeen, &lastSeen, &t.Occurrences, &clearedAt,
		&resolvedAt, &prev, &t.DiagnosisMarkdown, &diagJSON, &diagnosedAt,
		&t.DiagnosisBackend, &t.InputTokens, &t.OutputTokens, &t.DiagnosisAttempts,
		&nextD, &t.LastDiagnosisErr, &updatedAt, &root, &t.ClusterID)
	if err != nil {
		return ticket.Ticket{}, err
	}
	t.Severity = ticket.Severity(severity)
	t.Status = ticket.Status(status)
	t.Evidence = jsonCol(evidence)
	t.FirstEvidence = jsonCol(firstEvidence)
	t.DiagnosisJSON = jsonCol(diagJSON)
	t.FirstSeen, t.LastSeen, t.UpdatedAt = firstSeen.t, lastSeen.t, updatedAt.t
	t.ClearedAt, t.ResolvedAt = clearedAt.ptr(), resolvedAt.ptr()
	t.DiagnosedAt, t.NextDiagnosisAt = diagnosedAt.ptr(), nextD.ptr()
	if prev.Valid {
		id := prev.Int64
		t.PreviousID = &id
	}
	if root.Valid {
		id := root.Int64
		t.RootID = &id
	}
	return t, nil
}

func validSeverity(s ticket.Severity) bool {
	switch s {
	case ticket.Warning, ticket.Critical, ticket.Emergency:
		return true
	}
	return false
}

// Observe records one violation seen at now. If a non-resolved ticket with
// obs.Key() exists it is updated: last_seen (never moved backwards),
// occurrences+1, latest evidence (kept when obs.Evidence is empty),
// severity, summary, and cleared_at is reset to nil. Otherwise a new open
// ticket is inserted with obs.Evidence as both first and latest evidence,
// and PreviousID pointing at the newest resolved ticket with the same key.
// opened reports whether a ticket was created. Tickets are per cluster:
// the key is looked up among this handle's cluster's tickets
// (BindCluster; "" when not bound) and a new ticket is tagged with it. The
// partial unique index tickets_active_key guarantees at most one
// non-resolved ticket per cluster and key across processes.
//
// Errors: ErrInvalid for an empty invariant or subject, an unknown
// severity or evidence that is not valid JSON.
func (s *Store) Observe(ctx context.Context, obs ticket.Observation, now time.Time) (t ticket.Ticket, opened bool, err error) {
	if obs.Invariant == "" || obs.Subject == "" {
		return ticket.Ticket{}, false, fmt.Errorf("observe: %w: invariant and subject are required (got %q)", ErrInvalid, obs.Key())
	}
	if !validSeverity(obs.Severity) {
		return ticket.Ticket{}, false, fmt.Errorf("observe %s: %w: severity %q", obs.Key(), ErrInvalid, obs.Severity)
	}
	ev, err := jsonArg("evidence", obs.Evidence)
	if err != nil {
		return ticket.Ticket{}, false, fmt.Errorf("observe %s: %w", obs.Key(), err)
	}
	key, ts, cluster := obs.Key(), fmtTime(now), s.ClusterID()
	err = s.write(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, `UPDATE tickets SET
	last_seen = CASE WHEN last_seen > ?1 THEN last_seen ELSE ?1 END, occurrences = occurrences + 1,
	evidence = coalesce(?2, evidence), severity = ?3, summary = ?4,
	cleared_at = NULL, updated_at = ?1
WHERE key = ?5 AND cluster_id = ?6 AND status <> 'resolved'
RETURNING `+ticketCols, ts, ev, string(obs.Severity), obs.Summary, key, cluster)
		var err error
		t, err = scanTicket(row)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("update ticket: %w", err)
		}
		row = tx.QueryRowContext(ctx, `INSERT INTO tickets
	(key, invariant, subject, severity, status, summary, evidence, first_evidence,
	 first_seen, last_seen, occurrences, previous_id, updated_at, cluster_id)
VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?6, ?7, ?7, 1,
	(SELECT max(id) FROM tickets WHERE key = ?1 AND cluster_id = ?8 AND status = 'resolved'), ?7, ?8)
RETURNING `+ticketCols, key, obs.Invariant, obs.Subject, string(obs.Severity), obs.Summary, ev, ts, cluster)
		if t, err = scanTicket(row); err != nil {
			return fmt.Errorf("insert ticket: %w", err)
		}
		opened = true
		return s.enqueueTicket(ctx, tx, KindTicketOpened, t, now, "")
	})
	if err != nil {
		return ticket.Ticket{}, false, fmt.Errorf("observe %s: %w", key, err)
	}
	return t, opened, nil
}

// Sweep clears and resolves tickets whose invariant held this cycle,
// among this handle's cluster's tickets (BindCluster).
// evaluated lists the invariants that were evaluated successfully this
// cycle; violated holds the keys (ticket.Observation.Key) still violated.
// For every non-resolved ticket whose invariant is in evaluated and whose
// key is not in violated: cleared_at is set to now if nil, and when
// cleared_at <= now-quiet the ticket is resolved (status resolved,
// resolved_at = now). Tickets of invariants not in evaluated (for example
// one whose evaluation failed) are left alone. Sweep returns the tickets it
// resolved, in id order. One transaction.
func (s *Store) Sweep(ctx context.Context, evaluated []string, violated map[string]bool, now time.Time, quiet time.Duration) (resolved []ticket.Ticket, err error) {
	if len(evaluated) == 0 {
		return nil, nil
	}
	names, err := json.Marshal(evaluated)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	ts := fmtTime(now)
	cutoff := now.Add(-quiet)
	err = s.write(ctx, func(tx *sql.Tx) error {
		resolved = resolved[:0]
		rows, err := tx.QueryContext(ctx, `SELECT id, key, status, cleared_at FROM tickets
WHERE status IN ('open', 'diagnosed') AND cluster_id = ? AND invariant IN (SELECT value FROM `+s.jsonEach()+`)
ORDER BY id`, s.ClusterID(), string(names))
		if err != nil {
			return fmt.Errorf("list tickets: %w", err)
		}
		type cand struct {
			id      int64
			status  ticket.Status
			cleared *time.Time
		}
		var cands []cand
		for rows.Next() {
			var (
				c       cand
				key, st string
				cl      timeCol
			)
			if err := rows.Scan(&c.id, &key, &st, &cl); err != nil {
				rows.Close()
				return fmt.Errorf("list tickets: %w", err)
			}
			if violated[key] {
				continue
			}
			c.status, c.cleared = ticket.Status(st), cl.ptr()
			cands = append(cands, c)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list tickets: %w", err)
		}
		rows.Close()
		for _, c := range cands {
			cleared := now
			if c.cleared != nil {
				cleared = *c.cleared
			} else if _, err := tx.ExecContext(ctx, `UPDATE tickets SET cleared_at = ?, updated_at = ? WHERE id = ? AND status = ?`,
				ts, ts, c.id, string(c.status)); err != nil {
				return fmt.Errorf("clear ticket %d: %w", c.id, err)
			}
			if cleared.After(cutoff) {
				continue
			}
			t, err := casTicket(ctx, tx, c.id, ticket.Resolved, now, `resolved_at = ?`, ts)
			if err != nil {
				return err
			}
			if err := s.expireTicketProposalsTx(ctx, tx, c.id, now, "its ticket resolved (the invariant held for the quiet period)"); err != nil {
				return err
			}
			if err := s.enqueueTicket(ctx, tx, KindTicketResolved, t, now, ""); err != nil {
				return err
			}
			resolved = append(resolved, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	return resolved, nil
}

// casTicket moves ticket id to status to inside tx, as a compare-and-swap
// on its current status validated by ticket.CanTransition. set is extra
// "col = ?" assignments with their args. It returns the updated ticket,
// ErrNotFound, or *ticket.ErrTransition with the current status.
func casTicket(ctx context.Context, tx *sql.Tx, id int64, to ticket.Status, now time.Time, set string, args ...any) (ticket.Ticket, error) {
	var cur string
	if err := tx.QueryRowContext(ctx, `SELECT status FROM tickets WHERE id = ?`, id).Scan(&cur); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ticket.Ticket{}, fmt.Errorf("ticket %d: %w", id, ErrNotFound)
		}
		return ticket.Ticket{}, fmt.Errorf("read ticket %d: %w", id, err)
	}
	from := ticket.Status(cur)
	if !ticket.CanTransition(from, to) {
		return ticket.Ticket{}, &ticket.ErrTransition{ID: id, From: from, To: to}
	}
	q := `UPDATE tickets SET status = ?, updated_at = ?`
	if set != "" {
		q += ", " + set
	}
	q += ` WHERE id = ? AND status = ? RETURNING ` + ticketCols
	all := make([]any, 0, len(args)+4)
	all = append(all, string(to), fmtTime(now))
	all = append(all, args...)
	all = append(all, id, cur)
	t, err := scanTicket(tx.QueryRowContext(ctx, q, all...))
	if errors.Is(err, sql.ErrNoRows) {
		// Cannot happen under BEGIN IMMEDIATE, but the CAS is the contract.
		var st string
		_ = tx.QueryRowContext(ctx, `SELECT status FROM tickets WHERE id = ?`, id).Scan(&st)
		return ticket.Ticket{}, &ticket.ErrTransition{ID: id, From: ticket.Status(st), To: to}
	}
	if err != nil {
		return ticket.Ticket{}, fmt.Errorf("update ticket %d: %w", id, err)
	}
	return t, nil
}

// Ticket returns the ticket with the given id, or ErrNotFound.
func (s *Store) Ticket(ctx context.Context, id int64) (ticket.Ticket, error) {
	t, err := scanTicket(s.db.QueryRowContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ticket.Ticket{}, fmt.Errorf("ticket %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return ticket.Ticket{}, fmt.Errorf("read ticket %d: %w", id, err)
	}
	return t, nil
}

// OpenTicket returns the non-resolved (open or diagnosed) ticket with the
// given dedup key ("store_down/store:4") of this handle's cluster
// (BindCluster), or ErrNotFound.
func (s *Store) OpenTicket(ctx context.Context, key string) (ticket.Ticket, error) {
	t, err := scanTicket(s.db.QueryRowContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE key = ? AND cluster_id = ? AND status <> 'resolved'`, key, s.ClusterID()))
	if errors.Is(err, sql.ErrNoRows) {
		return ticket.Ticket{}, fmt.Errorf("no unresolved ticket for %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return ticket.Ticket{}, fmt.Errorf("read ticket %s: %w", key, err)
	}
	return t, nil
}

// TicketFilter selects tickets for Tickets.
type TicketFilter struct {
	// Statuses keeps tickets in any of these statuses; empty means all.
	Statuses []ticket.Status
	// Limit caps the number returned; 0 means no limit.
	Limit int
	// Cluster keeps the tickets of one PD cluster (its id); "" means
	// every cluster.
	Cluster string
}

// Tickets returns the tickets matching f, newest (highest id) first.
func (s *Store) Tickets(ctx context.Context, f TicketFilter) ([]ticket.Ticket, error) {
	q := `SELECT ` + ticketCols + ` FROM tickets WHERE 1 = 1`
	var args []any
	if len(f.Statuses) > 0 {
		q += ` AND status IN (` + placeholders(len(f.Statuses)) + `)`
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
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
	return s.queryTickets(ctx, q, args...)
}

// TicketsToDiagnose returns up to limit open tickets whose diagnosis
// backoff has passed (next_diagnosis_at nil or <= now), oldest first,
// among this handle's cluster's tickets (BindCluster): each daemon
// diagnoses its own cluster's tickets.
// limit <= 0 means no limit.
func (s *Store) TicketsToDiagnose(ctx context.Context, now time.Time, limit int) ([]ticket.Ticket, error) {
	q := `SELECT ` + ticketCols + ` FROM tickets
WHERE status = 'open' AND cluster_id = ? AND (next_diagnosis_at IS NULL OR next_diagnosis_at <= ?)
ORDER BY id`
	args := []any{s.ClusterID(), fmtTime(now)}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	return s.queryTickets(ctx, q, args...)
}

func (s *Store) queryTickets(ctx context.Context, q string, args ...any) ([]ticket.Ticket, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list tickets: %w", err)
	}
	defer rows.Close()
	var out []ticket.Ticket
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, fmt.Errorf("list tickets: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tickets: %w", err)
	}
	return out, nil
}

// DiagnosisInput is what the diagnosis runner stores for a ticket.
type DiagnosisInput struct {
	// Markdown is the diagnosis for humans.
	Markdown string
	// JSON is the structured diagnosis (a JSON object); may be empty.
	JSON json.RawMessage
	// Backend names the diagnosis backend ("rules", "anthropic:MODEL").
	Backend string
	// InputTokens and OutputTokens are the model tokens this diagnosis used
	// (0 for rules). SaveDiagnosis adds them to the ticket's totals; they
	// must not be negative.
	InputTokens, OutputTokens int64
	// Proposal, when not nil, is inserted with status proposed. Its
	// TicketID must be 0 or the ticket's id; ActionType and ExpiresAt are
	// required; ProposedAt defaults to now and ProposedBy to Backend; Params
	// defaults to {}. ID, Status and the approval/execution fields are
	// ignored.
	Proposal *action.Proposal
}

// SaveDiagnosis stores a diagnosis for an open ticket in one transaction:
// CAS open -> diagnosed (any other status is refused with
// *ticket.ErrTransition), stores markdown, JSON and backend, ADDS
// d.InputTokens and d.OutputTokens to the ticket's token totals (which
// then count every attempt of the ticket's life: failed ones recorded by
// DiagnosisFailedSpent, earlier diagnoses before a Reopen, and this one),
// resets the failure count and backoff, and inserts d.Proposal if any. It
// returns the new proposal's id, or 0 when d.Proposal is nil.
//
// Errors: ErrNotFound, *ticket.ErrTransition, ErrInvalid (malformed JSON or
// proposal, negative token counts).
func (s *Store) SaveDiagnosis(ctx context.Context, ticketID int64, d DiagnosisInput, now time.Time) (proposalID int64, err error) {
	diag, err := jsonArg("diagnosis JSON", d.JSON)
	if err != nil {
		return 0, fmt.Errorf("save diagnosis for ticket %d: %w", ticketID, err)
	}
	if err := validTokens(d.InputTokens, d.OutputTokens); err != nil {
		return 0, fmt.Errorf("save diagnosis for ticket %d: %w", ticketID, err)
	}
	var p *proposalArgs
	if d.Proposal != nil {
		if p, err = newProposalArgs(ticketID, *d.Proposal, d.Backend, now); err != nil {
			return 0, fmt.Errorf("save diagnosis for ticket %d: %w", ticketID, err)
		}
	}
	ts := fmtTime(now)
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := casTicket(ctx, tx, ticketID, ticket.Diagnosed, now,
			`diagnosis_markdown = ?, diagnosis_json = ?, diagnosis_backend = ?, diagnosed_at = ?,
	input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, diagnosis_attempts = 0, next_diagnosis_at = NULL,
	last_diagnosis_error = ''`,
			d.Markdown, diag, d.Backend, ts, d.InputTokens, d.OutputTokens)
		if err != nil {
			return err
		}
		if p != nil {
			if proposalID, err = insertProposal(ctx, tx, p, now); err != nil {
				return err
			}
			if err := s.enqueueProposed(ctx, tx, proposalID, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("save diagnosis for ticket %d: %w", ticketID, err)
	}
	return proposalID, nil
}

// DiagnosisFailed records a failed diagnosis attempt on an open ticket
// that spent no model tokens: DiagnosisFailedSpent with 0, 0.
//
// Errors: as DiagnosisFailedSpent.
func (s *Store) DiagnosisFailed(ctx context.Context, ticketID int64, errMsg string, next time.Time) error {
	return s.DiagnosisFailedSpent(ctx, ticketID, errMsg, next, 0, 0)
}

// DiagnosisFailedSpent records a failed diagnosis attempt on an open
// ticket: diagnosis_attempts+1, last error errMsg, next_diagnosis_at = next
// (the runner's backoff), and inputTokens/outputTokens (the model tokens
// the attempt consumed before failing, diagnose.Spent) added to the
// ticket's token totals, so that a per-ticket token budget holds across
// attempts. The ticket stays open.
//
// Errors: ErrNotFound; *ticket.ErrTransition (To = open) when the ticket
// is no longer open; ErrInvalid for negative token counts.
func (s *Store) DiagnosisFailedSpent(ctx context.Context, ticketID int64, errMsg string, next time.Time, inputTokens, outputTokens int64) error {
	if err := validTokens(inputTokens, outputTokens); err != nil {
		return fmt.Errorf("record diagnosis failure for ticket %d: %w", ticketID, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tickets SET diagnosis_attempts = diagnosis_attempts + 1,
	last_diagnosis_error = ?, next_diagnosis_at = ?,
	input_tokens = input_tokens + ?, output_tokens = output_tokens + ?
WHERE id = ? AND status = 'open'`, errMsg, fmtTime(next), inputTokens, outputTokens, ticketID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		var cur string
		if err := tx.QueryRowContext(ctx, `SELECT status FROM tickets WHERE id = ?`, ticketID).Scan(&cur); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		return &ticket.ErrTransition{ID: ticketID, From: ticket.Status(cur), To: ticket.Open}
	})
	if err != nil {
		return fmt.Errorf("record diagnosis failure for ticket %d: %w", ticketID, err)
	}
	return nil
}

// validTokens refuses negative token counts.
func validTokens(input, output int64) error {
	if input < 0 || output < 0 {
		return fmt.Errorf("%w: negative token count (%d input, %d output)", ErrInvalid, input, output)
	}
	return nil
}

// Reopen moves a diagnosed ticket back to open so that it is diagnosed
// again (for example after its proposal failed or expired while the
// problem persists). The failure count and backoff are reset; the old
// diagnosis stays until a new one replaces it.
//
// Errors: ErrNotFound, *ticket.ErrTransition.
func (s *Store) Reopen(ctx context.Context, ticketID int64, now time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := casTicket(ctx, tx, ticketID, ticket.Open, now,
			`diagnosis_attempts = 0, next_diagnosis_at = NULL, last_diagnosis_error = ''`)
		return err
	})
	if err != nil {
		return fmt.Errorf("reopen ticket %d: %w", ticketID, err)
	}
	return nil
}

// ResolveTicket resolves an open or diagnosed ticket now (used when the
// executor re-evaluates the invariant and it holds).
//
// Errors: ErrNotFound, *ticket.ErrTransition (already resolved).
func (s *Store) ResolveTicket(ctx context.Context, id int64, now time.Time) error {
	ts := fmtTime(now)
	err := s.write(ctx, func(tx *sql.Tx) error {
		t, err := casTicket(ctx, tx, id, ticket.Resolved, now,
			`resolved_at = ?, cleared_at = coalesce(cleared_at, ?)`, ts, ts)
		if err != nil {
			return err
		}
		if err := s.expireTicketProposalsTx(ctx, tx, id, now, "its ticket resolved (the invariant holds again)"); err != nil {
			return err
		}
		return s.enqueueTicket(ctx, tx, KindTicketResolved, t, now, "")
	})
	if err != nil {
		return fmt.Errorf("resolve ticket %d: %w", id, err)
	}
	return nil
}
