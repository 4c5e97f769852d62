package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/ticket"
)

// schemaV5 adds the notification outbox (events written in the same
// transaction as the change they tell about, and their per-sink
// deliveries) and the state of alerts received from Alertmanager.
const schemaV5 = `
CREATE TABLE outbox (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	key         TEXT    NOT NULL UNIQUE,          -- idempotency key, e.g. proposal/7/awaiting_approval
	kind        TEXT    NOT NULL,
	ticket_id   INTEGER,
	proposal_id INTEGER,
	severity    TEXT    NOT NULL DEFAULT '',
	invariant   TEXT    NOT NULL DEFAULT '',
	subject     TEXT    NOT NULL DEFAULT '',
	payload     TEXT    NOT NULL,                 -- JSON OutboxEvent
	routed      INTEGER NOT NULL DEFAULT 0 CHECK (routed IN (0, 1)),
	created_at  TEXT    NOT NULL
);
CREATE INDEX outbox_unrouted ON outbox(routed, id);
CREATE INDEX outbox_proposal ON outbox(proposal_id, id);

CREATE TABLE outbox_deliveries (
	event_id        INTEGER NOT NULL REFERENCES outbox(id),
	sink            TEXT    NOT NULL,
	status          TEXT    NOT NULL DEFAULT 'pending'
	                CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	in_doubt        INTEGER NOT NULL DEFAULT 0,   -- a send may have happened before a crash
	next_attempt_at TEXT    NOT NULL,
	last_error      TEXT    NOT NULL DEFAULT '',
	ref             TEXT    NOT NULL DEFAULT '',  -- the sink's id of what it posted (Slack: channel/ts)
	delivered_at    TEXT,
	updated_at      TEXT    NOT NULL,
	PRIMARY KEY (event_id, sink)
);
CREATE INDEX outbox_deliveries_due ON outbox_deliveries(status, next_attempt_at);

CREATE TABLE alerts (
	fingerprint TEXT    PRIMARY KEY,              -- Alertmanager's fingerprint
	alertname   TEXT    NOT NULL,
	group_key   TEXT    NOT NULL DEFAULT '',
	status      TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
	ticket_id   INTEGER REFERENCES tickets(id),
	invariant   TEXT    NOT NULL,
	subject     TEXT    NOT NULL,
	labels      TEXT    NOT NULL DEFAULT '{}',
	starts_at   TEXT    NOT NULL,
	ends_at     TEXT,
	received    INTEGER NOT NULL DEFAULT 1,
	updated_at  TEXT    NOT NULL
);
CREATE INDEX alerts_group ON alerts(group_key);
CREATE INDEX alerts_ticket ON alerts(ticket_id);
`

// Outbox event kinds (OutboxEvent.Kind). docs/alerting.md lists them with
// their payloads.
const (
	KindTicketOpened     = "ticket_opened"
	KindTicketEscalated  = "ticket_escalated"
	KindTicketResolved   = "ticket_resolved"
	KindAwaitingApproval = "proposal_awaiting_approval"
	KindApproved         = "action_approved"
	KindRejected         = "action_rejected"
	KindCompleted        = "action_completed"
	KindFailed           = "action_failed"
	KindExpired          = "action_expired"
	KindRefused          = "action_refused"
	KindAuditFailed      = "audit_verification_failed"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySending   = "sending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)

// OutboxTicket is the ticket part of an event payload.
type OutboxTicket struct {
	ID        int64           `json:"id"`
	Status    ticket.Status   `json:"status"`
	Summary   string          `json:"summary"`
	Evidence  json.RawMessage `json:"evidence,omitempty"`
	FirstSeen time.Time       `json:"first_seen"`
	RootID    *int64          `json:"root_id,omitempty"`
	// Diagnosis is the diagnosis' one-line summary ("" before one).
	Diagnosis string `json:"diagnosis,omitempty"`
}

// OutboxAction is the action part of an event payload.
type OutboxAction struct {
	ID         int64           `json:"id"`
	Type       string          `json:"type"`
	Params     json.RawMessage `json:"params"`
	Status     action.Status   `json:"status"`
	Rationale  string          `json:"rationale,omitempty"`
	ProposedBy string          `json:"proposed_by,omitempty"`
	ExpiresAt  time.Time       `json:"expires_at"`
	// DryRun lists the exact PD requests the diagnosis' dry run says an
	// execution would send.
	DryRun []action.Request `json:"dry_run_requests,omitempty"`
}

// OutboxRecord is the audit record part of an event payload.
type OutboxRecord struct {
	ID      int64  `json:"id"`
	Event   string `json:"event"`
	By      string `json:"by,omitempty"`
	Role    string `json:"role,omitempty"`
	Success bool   `json:"success"`
	Message string `json:"message"`
}

// OutboxEvent is one event worth telling, as stored in the outbox and
// sent (JSON) to the generic webhook. Key is its idempotency key: the
// same change never yields two events.
type OutboxEvent struct {
	// Seq is the outbox row id (set when read back).
	Seq       int64           `json:"seq"`
	Key       string          `json:"id"`
	Kind      string          `json:"kind"`
	Time      time.Time       `json:"time"`
	ClusterID string          `json:"cluster_id,omitempty"`
	Cluster   string          `json:"cluster,omitempty"` // ClusterID's name ([cluster] name): notifications name the cluster
	Severity  ticket.Severity `json:"severity,omitempty"`
	Invariant string          `json:"invariant,omitempty"`
	Subject   string          `json:"subject,omitempty"`
	// Text is one human line.
	Text   string        `json:"text"`
	Ticket *OutboxTicket `json:"ticket,omitempty"`
	Action *OutboxAction `json:"action,omitempty"`
	Record *OutboxRecord `json:"record,omitempty"`
	// Silence is set for silence_created and silence_expired (silences.go).
	Silence *OutboxSilence `json:"silence,omitempty"`
}

// enqueue writes ev to the outbox inside tx (the transaction of the change
// it tells about). A second event with the same key is ignored.
func (s *Store) enqueue(ctx context.Context, tx *sql.Tx, ev OutboxEvent) error {
	if ev.ClusterID == "" {
		ev.ClusterID = s.ClusterID()
	}
	if ev.Cluster == "" {
		if ev.ClusterID == s.ClusterID() {
			ev.Cluster = s.ClusterName()
		} else {
			ev.Cluster = clusterNameTx(ctx, tx, ev.ClusterID)
		}
	}
	ev.Text = safetext.Text(ev.Text, 1000)
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", ev.Key, err)
	}
	var tid, pid any
	if ev.Ticket != nil {
		tid = ev.Ticket.ID
	}
	if ev.Action != nil {
		pid = ev.Action.ID
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO outbox
	(key, kind, ticket_id, proposal_id, severity, invariant, subject, payload, created_at, cluster_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, ev.Key, ev.Kind, tid, pid, string(ev.Severity), ev.Invariant, ev.Subject, string(b), fmtTime(ev.Time), ev.ClusterID); err != nil {
		return fmt.Errorf("outbox %s: %w", ev.Key, err)
	}
	return nil
}

// Enqueue writes ev to the outbox in its own transaction, for events that
// are not a change of the database (an audit verification that failed).
// Errors: ErrInvalid without a key or kind.
func (s *Store) Enqueue(ctx context.Context, ev OutboxEvent) error {
	if ev.Key == "" || ev.Kind == "" {
		return fmt.Errorf("enqueue: %w: key and kind are required", ErrInvalid)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	return s.write(ctx, func(tx *sql.Tx) error { return s.enqueue(ctx, tx, ev) })
}

func outboxTicket(t ticket.Ticket) *OutboxTicket {
	ot := &OutboxTicket{ID: t.ID, Status: t.Status, Summary: t.Summary, Evidence: t.Evidence, FirstSeen: t.FirstSeen, RootID: t.RootID}
	if len(ot.Evidence) > 8<<10 {
		ot.Evidence = nil
	}
	if len(t.DiagnosisJSON) > 0 {
		var d struct {
			Summary string `json:"summary"`
		}
		if json.Unmarshal(t.DiagnosisJSON, &d) == nil {
			ot.Diagnosis = safetext.Text(d.Summary, 500)
		}
	}
	return ot
}

// ticketEvent builds the event of kind about t inside tx.
func ticketEvent(kind, key string, t ticket.Ticket, now time.Time, text string) OutboxEvent {
	return OutboxEvent{Key: key, Kind: kind, Time: now, ClusterID: t.ClusterID, Severity: t.Severity,
		Invariant: t.Invariant, Subject: t.Subject, Text: text, Ticket: outboxTicket(t)}
}

// enqueueTicket enqueues kind about ticket id (read inside tx).
func (s *Store) enqueueTicket(ctx context.Context, tx *sql.Tx, kind string, t ticket.Ticket, now time.Time, suffix string) error {
	key := "ticket/" + strconv.FormatInt(t.ID, 10) + "/" + strings.TrimPrefix(kind, "ticket_") + suffix
	var text string
	switch kind {
	case KindTicketOpened:
		text = fmt.Sprintf("ticket %d opened: %s %s (%s): %s", t.ID, t.Invariant, t.Subject, t.Severity, t.Summary)
	case KindTicketEscalated:
		text = fmt.Sprintf("ticket %d escalated to %s: %s %s: %s", t.ID, t.Severity, t.Invariant, t.Subject, t.Summary)
	case KindTicketResolved:
		text = fmt.Sprintf("ticket %d resolved: %s %s", t.ID, t.Invariant, t.Subject)
	}
	return s.enqueue(ctx, tx, ticketEvent(kind, key, t, now, text))
}

// enqueueProposed enqueues the approval request of proposal id (inside tx).
func (s *Store) enqueueProposed(ctx context.Context, tx *sql.Tx, id int64, now time.Time) error {
	p, err := readProposal(ctx, tx, id)
	if err != nil {
		return err
	}
	t, err := scanTicket(tx.QueryRowContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE id = ?`, p.TicketID))
	if err != nil {
		return fmt.Errorf("outbox: ticket %d: %w", p.TicketID, err)
	}
	ev := ticketEvent(KindAwaitingApproval, "proposal/"+strconv.FormatInt(id, 10)+"/awaiting_approval", t, now,
		fmt.Sprintf("action %d awaits approval: %s for ticket %d (%s %s)", p.ID, p.ActionType, t.ID, t.Invariant, t.Subject))
	ev.Action = outboxAction(p)
	if len(t.DiagnosisJSON) > 0 {
		var d struct {
			DryRun *action.DryRunResult `json:"dry_run"`
		}
		if json.Unmarshal(t.DiagnosisJSON, &d) == nil && d.DryRun != nil {
			ev.Action.DryRun = d.DryRun.Requests
		}
	}
	return s.enqueue(ctx, tx, ev)
}

func outboxAction(p action.Proposal) *OutboxAction {
	return &OutboxAction{ID: p.ID, Type: p.ActionType, Params: p.Params, Status: p.Status,
		Rationale: safetext.Text(p.Rationale, 2000), ProposedBy: p.ProposedBy, ExpiresAt: p.ExpiresAt}
}

// enqueueRecord enqueues the event an audit record tells (approval,
// rejection, execution outcome, expiry, refusal; not dry runs), inside tx.
func (s *Store) enqueueRecord(ctx context.Context, tx *sql.Tx, p action.Proposal, rec action.Record, now time.Time) error {
	var kind string
	switch rec.Event {
	case action.EventApproval:
		kind = KindApproved
	case action.EventRejection:
		kind = KindRejected
	case action.EventExecution:
		kind = KindFailed
		if rec.Success {
			kind = KindCompleted
		}
	case action.EventExpiry:
		kind = KindExpired
	case action.EventRefusal:
		kind = KindRefused
	default:
		return nil
	}
	var t ticket.Ticket
	if tt, err := scanTicket(tx.QueryRowContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE id = ?`, p.TicketID)); err == nil {
		t = tt
	}
	by := rec.ApprovedBy
	if rec.Event == action.EventRejection || rec.Event == action.EventExecution {
		by = rec.ExecutedBy
	}
	if rec.Event == action.EventRejection {
		by = p.RejectedBy
	}
	ev := ticketEvent(kind, "record/"+strconv.FormatInt(rec.ID, 10), t, now,
		fmt.Sprintf("action %d (%s, ticket %d): %s", p.ID, p.ActionType, p.TicketID, rec.Message))
	ev.Action = outboxAction(p)
	ev.Record = &OutboxRecord{ID: rec.ID, Event: rec.Event, By: by, Role: rec.ActorRole, Success: rec.Success, Message: safetext.Text(rec.Message, 2000)}
	return s.enqueue(ctx, tx, ev)
}

// Delivery is one event's delivery to one sink.
type Delivery struct {
	Event       OutboxEvent `json:"event"`
	Sink        string      `json:"sink"`
	Status      string      `json:"status"`
	Attempts    int         `json:"attempts"`
	InDoubt     bool        `json:"in_doubt"`
	NextAttempt time.Time   `json:"next_attempt_at"`
	LastError   string      `json:"last_error,omitempty"`
	Ref         string      `json:"ref,omitempty"`
	DeliveredAt *time.Time  `json:"delivered_at,omitempty"`
	// SilencedBy names the silence that muted it ("#N" or "maintenance
	// window N") while Status is silenced.
	SilencedBy string `json:"silenced_by,omitempty"`
}

// Route gives every outbox event not yet routed one pending delivery per
// sink that routes(ev) names, in one transaction, and returns how many
// events it routed. Events enqueued by any process are routed by the
// daemon's deliverer; with several clusters in the database, each daemon
// routes its own cluster's events and the untagged ones (outboxScope).
func (s *Store) Route(ctx context.Context, routes func(OutboxEvent) []string, now time.Time) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *sql.Tx) error {
		n = 0
		c := s.ClusterID()
		evs, err := queryEvents(ctx, tx, `SELECT id, payload FROM outbox WHERE routed = 0 AND `+outboxScope+` ORDER BY id LIMIT 500`, c, c)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			for _, sink := range routes(ev) {
				if _, err := tx.ExecContext(ctx, `INSERT INTO outbox_deliveries (event_id, sink, next_attempt_at, updated_at)
VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, ev.Seq, sink, fmtTime(now), fmtTime(now)); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE outbox SET routed = 1 WHERE id = ?`, ev.Seq); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("route outbox: %w", err)
	}
	return n, nil
}

func queryEvents(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]OutboxEvent, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxEvent
	for rows.Next() {
		var (
			id      int64
			payload string
		)
		if err := rows.Scan(&id, &payload); err != nil {
			return nil, err
		}
		var ev OutboxEvent
		if err := json.Unmarshal([]byte(payload), &ev); err != nil {
			return nil, fmt.Errorf("outbox event %d: %w", id, err)
		}
		ev.Seq = id
		out = append(out, ev)
	}
	return out, rows.Err()
}

const deliveryCols = `o.id, o.payload, d.sink, d.status, d.attempts, d.in_doubt, d.next_attempt_at, d.last_error, d.ref, d.delivered_at, d.silenced_by`

func scanDelivery(sc scanner) (Delivery, error) {
	var (
		d       Delivery
		id      int64
		payload string
		next    timeCol
		at      timeCol
	)
	if err := sc.Scan(&id, &payload, &d.Sink, &d.Status, &d.Attempts, &d.InDoubt, &next, &d.LastError, &d.Ref, &at, &d.SilencedBy); err != nil {
		return Delivery{}, err
	}
	if err := json.Unmarshal([]byte(payload), &d.Event); err != nil {
		return Delivery{}, fmt.Errorf("outbox event %d: %w", id, err)
	}
	d.Event.Seq = id
	if p := next.ptr(); p != nil {
		d.NextAttempt = *p
	}
	d.DeliveredAt = at.ptr()
	return d, nil
}

// ClaimDeliveries moves up to limit pending deliveries due at now to
// sending (attempts+1), durably, and returns them, oldest event first.
// Deliveries of one sink keep event order: a sink's event is not claimed
// while an older event of the same sink is still pending and not yet due
// ... except that order is best effort; idempotency keys make it safe.
// Only this handle's cluster's events and the untagged ones (outboxScope).
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	var out []Delivery
	c := s.ClusterID()
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT `+deliveryCols+` FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id
WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND `+outboxScopeO+` ORDER BY o.id LIMIT ?`, fmtTime(now), c, c, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			out[i].Attempts++
			out[i].Status = DeliverySending
			if _, err := tx.ExecContext(ctx, `UPDATE outbox_deliveries SET status = 'sending', attempts = attempts + 1, updated_at = ?
WHERE event_id = ? AND sink = ?`, fmtTime(now), out[i].Event.Seq, out[i].Sink); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return out, nil
}

// RecoverDeliveries moves deliveries left sending (the process stopped
// during a send) back to pending, marked in doubt so that a sink can check
// whether the send happened before sending again. Call it at start.
// Only this handle's cluster's events and the untagged ones (outboxScope):
// another cluster's daemon may be sending its own.
func (s *Store) RecoverDeliveries(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		c := s.ClusterID()
		res, err := tx.ExecContext(ctx, `UPDATE outbox_deliveries SET status = 'pending', in_doubt = 1, next_attempt_at = ?, updated_at = ?
WHERE status = 'sending' AND event_id IN (SELECT o.id FROM outbox o WHERE `+outboxScopeO+`)`, fmtTime(now), fmtTime(now), c, c)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// DeliveryDone records the outcome of one attempt: delivered (err nil,
// with the sink's ref), dead (dead true: out of attempts or a permanent
// error) or pending again at next.
func (s *Store) DeliveryDone(ctx context.Context, eventID int64, sink, ref string, sendErr error, dead bool, next, now time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var err error
		switch {
		case sendErr == nil:
			_, err = tx.ExecContext(ctx, `UPDATE outbox_deliveries SET status = 'delivered', ref = ?, last_error = '', in_doubt = 0,
	delivered_at = ?, updated_at = ? WHERE event_id = ? AND sink = ?`, ref, fmtTime(now), fmtTime(now), eventID, sink)
		case dead:
			_, err = tx.ExecContext(ctx, `UPDATE outbox_deliveries SET status = 'dead', last_error = ?, updated_at = ?
WHERE event_id = ? AND sink = ?`, safetext.Text(sendErr.Error(), 1000), fmtTime(now), eventID, sink)
		default:
			_, err = tx.ExecContext(ctx, `UPDATE outbox_deliveries SET status = 'pending', last_error = ?, next_attempt_at = ?, updated_at = ?
WHERE event_id = ? AND sink = ?`, safetext.Text(sendErr.Error(), 1000), fmtTime(next), fmtTime(now), eventID, sink)
		}
		return err
	})
}

// DeliveryFilter selects deliveries for Deliveries.
type DeliveryFilter struct {
	// Statuses keeps these statuses; empty means all.
	Statuses []string
	// Limit caps the rows (newest event first); 0 means 100.
	Limit int
}

// Deliveries lists deliveries, newest event first.
func (s *Store) Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	q := `SELECT ` + deliveryCols + ` FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id`
	var args []any
	if len(f.Statuses) > 0 {
		q += ` WHERE d.status IN (` + placeholders(len(f.Statuses)) + `)`
		for _, st := range f.Statuses {
			args = append(args, st)
		}
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q += ` ORDER BY o.id DESC, d.sink LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeliveryRef returns the ref a sink recorded for the event with key
// ("" when not delivered there).
func (s *Store) DeliveryRef(ctx context.Context, key, sink string) (string, error) {
	var ref string
	err := s.db.QueryRowContext(ctx, `SELECT d.ref FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id
WHERE o.key = ? AND d.sink = ? AND d.status = 'delivered'`, key, sink).Scan(&ref)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return ref, err
}

// OutboxEvents returns outbox events, oldest first, with id > after (for
// tests and `operator notifications list --events`).
func (s *Store) OutboxEvents(ctx context.Context, after int64) ([]OutboxEvent, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return queryEvents(ctx, tx, `SELECT id, payload FROM outbox WHERE id > ? ORDER BY id`, after)
}

// OutboxStats is the state of the outbox for /metrics.
type OutboxStats struct {
	// Backlog counts deliveries not yet delivered nor dead, by sink
	// (events not yet routed count under sink "").
	Backlog map[string]int
	// Dead counts dead deliveries by sink.
	Dead map[string]int
	// OldestPending is the creation time of the oldest undelivered event
	// (zero when none).
	OldestPending time.Time
}

// OutboxState reads OutboxStats.
func (s *Store) OutboxState(ctx context.Context) (OutboxStats, error) {
	st := OutboxStats{Backlog: map[string]int{}, Dead: map[string]int{}}
	rows, err := s.db.QueryContext(ctx, `SELECT d.sink, d.status, count(*), min(o.created_at) FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id
WHERE d.status <> 'delivered' GROUP BY d.sink, d.status
UNION ALL SELECT '', 'pending', count(*), min(created_at) FROM outbox WHERE routed = 0`)
	if err != nil {
		return st, fmt.Errorf("outbox state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			sink, status string
			n            int
			oldest       timeCol
		)
		if err := rows.Scan(&sink, &status, &n, &oldest); err != nil {
			return st, err
		}
		if status == DeliveryDead {
			st.Dead[sink] += n
			continue
		}
		if status == DeliverySilenced {
			continue // muted on purpose: not a backlog
		}
		if n == 0 {
			continue
		}
		st.Backlog[sink] += n
		if p := oldest.ptr(); p != nil && (st.OldestPending.IsZero() || p.Before(st.OldestPending)) {
			st.OldestPending = *p
		}
	}
	return st, rows.Err()
}

// TicketCount is a number of open tickets of one severity and invariant.
type TicketCount struct {
	Severity  ticket.Severity
	Invariant string
	N         int
}

// OpenTicketCounts counts non-resolved tickets by severity and invariant.
func (s *Store) OpenTicketCounts(ctx context.Context) ([]TicketCount, error) {
	c := s.ClusterID() // this daemon's cluster's (every cluster's when not bound)
	rows, err := s.db.QueryContext(ctx, `SELECT severity, invariant, count(*) FROM tickets WHERE status <> 'resolved' AND (cluster_id = ? OR ? = '')
GROUP BY severity, invariant`, c, c)
	if err != nil {
		return nil, fmt.Errorf("count tickets: %w", err)
	}
	defer rows.Close()
	var out []TicketCount
	for rows.Next() {
		var c TicketCount
		if err := rows.Scan(&c.Severity, &c.Invariant, &c.N); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// AwaitingApproval returns how many proposals await a decision (proposed
// or dry_run, not past their expiry at now) and when the oldest of them was
// proposed (zero when none).
func (s *Store) AwaitingApproval(ctx context.Context, now time.Time) (n int, oldest time.Time, err error) {
	var o timeCol
	c := s.ClusterID() // this daemon's cluster's (every cluster's when not bound)
	err = s.db.QueryRowContext(ctx, `SELECT count(*), min(proposed_at) FROM action_proposals
WHERE status IN ('proposed', 'dry_run') AND expires_at >= ? AND (cluster_id = ? OR ? = '')`, fmtTime(now), c, c).Scan(&n, &o)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("awaiting approval: %w", err)
	}
	if p := o.ptr(); p != nil {
		oldest = *p
	}
	return n, oldest, nil
}

// Ping checks that the database answers a query (for /readyz).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// OutboxEventByKey returns the event with idempotency key key, or
// ErrNotFound.
func (s *Store) OutboxEventByKey(ctx context.Context, key string) (OutboxEvent, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return OutboxEvent{}, err
	}
	defer tx.Rollback()
	evs, err := queryEvents(ctx, tx, `SELECT id, payload FROM outbox WHERE key = ?`, key)
	if err != nil {
		return OutboxEvent{}, err
	}
	if len(evs) == 0 {
		return OutboxEvent{}, fmt.Errorf("outbox event %s: %w", key, ErrNotFound)
	}
	return evs[0], nil
}

// outboxScope restricts outbox rows to this handle's cluster and the
// untagged ones, or to none when the handle is not bound (args: cluster
// id twice). outboxScopeO is the same for the alias o.
const (
	outboxScope  = `(cluster_id = ? OR cluster_id = '' OR ? = '')`
	outboxScopeO = `(o.cluster_id = ? OR o.cluster_id = '' OR ? = '')`
)
