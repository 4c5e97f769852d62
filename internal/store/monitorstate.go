package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/ticket"
)

// schemaV4 is the monitor's memory (issue 11 §1, §3):
//
//   - monitor_alerts: the monitor's active alerts (`for` timers): one row
//     per invariant/subject key with the time it became active, so that a
//     restart in the middle of a `for` window neither fires early nor
//     starts the window again.
//   - monitor_state: one JSON document per named history (an invariant's
//     own history such as store_offline_stuck's, the per-store
//     observations, PD's operators), bounded by its owner.
//   - tickets.root_id: the root ticket of the incident a ticket belongs to
//     (a store_down ticket for the region_down_peer ticket it causes).
//   - diagnoses: earlier diagnoses of a ticket, archived when a new one is
//     requested (RequestRediagnosis), with the reason.
const schemaV4 = `
CREATE TABLE monitor_alerts (
	key        TEXT    PRIMARY KEY,          -- invariant/subject
	invariant  TEXT    NOT NULL,
	active_at  TEXT    NOT NULL,             -- first seen violated
	firing     INTEGER NOT NULL DEFAULT 0,
	updated_at TEXT    NOT NULL
);

CREATE TABLE monitor_state (
	name       TEXT PRIMARY KEY,             -- e.g. "invariant/store_offline_stuck", "history"
	state      TEXT NOT NULL,                -- JSON
	updated_at TEXT NOT NULL
);

ALTER TABLE tickets ADD COLUMN root_id INTEGER REFERENCES tickets(id);
CREATE INDEX tickets_root_id ON tickets(root_id) WHERE root_id IS NOT NULL;

CREATE TABLE diagnoses (
	id                 INTEGER PRIMARY KEY AUTOINCREMENT,
	ticket_id          INTEGER NOT NULL REFERENCES tickets(id),
	diagnosis_markdown TEXT    NOT NULL DEFAULT '',
	diagnosis_json     TEXT,
	diagnosis_backend  TEXT    NOT NULL DEFAULT '',
	diagnosed_at       TEXT,
	archived_at        TEXT    NOT NULL,
	reason             TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX diagnoses_ticket_id ON diagnoses(ticket_id, id);
`

// MonitorAlert is one persisted active alert of the monitor (a `for`
// timer): Key is invariant/subject, ActiveAt when it was first seen
// violated, Firing whether it has fired.
type MonitorAlert struct {
	Key       string
	Invariant string
	ActiveAt  time.Time
	Firing    bool
}

// MonitorState is what the monitor persists after every cycle: its active
// alerts and named JSON histories (each bounded by its owner).
type MonitorState struct {
	Alerts []MonitorAlert
	// Histories maps a name ("invariant/store_offline_stuck", "history")
	// to a JSON document.
	Histories map[string]json.RawMessage
}

// maxHistoryBytes bounds one history document; larger ones are refused
// (their owner must bound them).
const maxHistoryBytes = 4 << 20

// LoadMonitorState returns the persisted monitor state of this handle's
// cluster (BindCluster; empty on a fresh database or a new cluster).
func (s *Store) LoadMonitorState(ctx context.Context) (MonitorState, error) {
	st := MonitorState{Histories: map[string]json.RawMessage{}}
	cluster := s.ClusterID()
	rows, err := s.db.QueryContext(ctx, `SELECT key, invariant, active_at, firing FROM monitor_alerts WHERE cluster_id = ? ORDER BY key`, cluster)
	if err != nil {
		return st, fmt.Errorf("load monitor alerts: %w", err)
	}
	for rows.Next() {
		var (
			a  MonitorAlert
			at timeCol
		)
		if err := rows.Scan(&a.Key, &a.Invariant, &at, &a.Firing); err != nil {
			rows.Close()
			return st, fmt.Errorf("load monitor alerts: %w", err)
		}
		a.ActiveAt = at.t
		st.Alerts = append(st.Alerts, a)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return st, fmt.Errorf("load monitor alerts: %w", err)
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, `SELECT name, state FROM monitor_state WHERE cluster_id = ? ORDER BY name`, cluster)
	if err != nil {
		return st, fmt.Errorf("load monitor state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, doc string
		if err := rows.Scan(&name, &doc); err != nil {
			return st, fmt.Errorf("load monitor state: %w", err)
		}
		st.Histories[name] = json.RawMessage(doc)
	}
	return st, rows.Err()
}

// SaveMonitorState replaces the persisted alerts of this handle's cluster
// with st.Alerts and
// upserts every history in st.Histories (histories not named are kept),
// in one transaction. Errors: ErrInvalid for an alert without key or
// invariant, or a history that is not valid JSON or larger than 4 MiB.
func (s *Store) SaveMonitorState(ctx context.Context, st MonitorState, now time.Time) error {
	for _, a := range st.Alerts {
		if a.Key == "" || a.Invariant == "" {
			return fmt.Errorf("save monitor state: %w: alert without key or invariant", ErrInvalid)
		}
	}
	for name, doc := range st.Histories {
		if name == "" || !json.Valid(doc) || len(doc) > maxHistoryBytes {
			return fmt.Errorf("save monitor state: %w: history %q is empty, not JSON or over 4 MiB", ErrInvalid, name)
		}
	}
	ts, cluster := fmtTime(now), s.ClusterID()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM monitor_alerts WHERE cluster_id = ?`, cluster); err != nil {
			return err
		}
		for _, a := range st.Alerts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO monitor_alerts(cluster_id, key, invariant, active_at, firing, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
				cluster, a.Key, a.Invariant, fmtTime(a.ActiveAt), a.Firing, ts); err != nil {
				return err
			}
		}
		for name, doc := range st.Histories {
			if _, err := tx.ExecContext(ctx, `INSERT INTO monitor_state(cluster_id, name, state, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT(cluster_id, name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`, cluster, name, string(doc), ts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save monitor state: %w", err)
	}
	return nil
}

// OpenTicketKeys returns the dedup keys of every non-resolved ticket of
// this handle's cluster with its id. It reads the tickets_status_id index (cost proportional to the
// open tickets, not to history).
func (s *Store) OpenTicketKeys(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, id FROM tickets WHERE status IN ('open', 'diagnosed') AND cluster_id = ?`, s.ClusterID())
	if err != nil {
		return nil, fmt.Errorf("open ticket keys: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			k  string
			id int64
		)
		if err := rows.Scan(&k, &id); err != nil {
			return nil, fmt.Errorf("open ticket keys: %w", err)
		}
		out[k] = id
	}
	return out, rows.Err()
}

// LinkTicket sets ticket childID's root_id to rootID: the child is a
// symptom of the root's incident. A root that is itself linked is followed
// to its own root (one level), and a ticket is never its own root.
// Linking an already linked ticket to the same root is a no-op; a ticket
// keeps its first root. Errors: ErrNotFound for an unknown ticket,
// ErrInvalid for childID == rootID.
func (s *Store) LinkTicket(ctx context.Context, childID, rootID int64, now time.Time) error {
	if childID == rootID {
		return fmt.Errorf("link ticket %d: %w: a ticket cannot be its own root", childID, ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var rootOfRoot sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT root_id FROM tickets WHERE id = ?`, rootID).Scan(&rootOfRoot); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("root ticket %d: %w", rootID, ErrNotFound)
			}
			return err
		}
		if rootOfRoot.Valid && rootOfRoot.Int64 != childID {
			rootID = rootOfRoot.Int64
		}
		res, err := tx.ExecContext(ctx, `UPDATE tickets SET root_id = ?, updated_at = ? WHERE id = ? AND root_id IS NULL AND id <> ?`,
			rootID, fmtTime(now), childID, rootID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM tickets WHERE id = ?`, childID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("ticket %d: %w", childID, ErrNotFound)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("link ticket %d to %d: %w", childID, rootID, err)
	}
	return nil
}

// TicketRoot returns the root_id of ticket id (0 when it is not linked).
func (s *Store) TicketRoot(ctx context.Context, id int64) (int64, error) {
	var root sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT root_id FROM tickets WHERE id = ?`, id).Scan(&root); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("ticket %d: %w", id, ErrNotFound)
		}
		return 0, fmt.Errorf("ticket %d root: %w", id, err)
	}
	return root.Int64, nil
}

// LinkedTickets returns the ticket ids whose root is rootID, ascending
// (index tickets_root_id).
func (s *Store) LinkedTickets(ctx context.Context, rootID int64) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM tickets WHERE root_id = ? ORDER BY id`, rootID)
	if err != nil {
		return nil, fmt.Errorf("linked tickets of %d: %w", rootID, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// TicketRoots returns root_id for each of ids that has one (one query).
func (s *Store) TicketRoots(ctx context.Context, ids []int64) (map[int64]int64, error) {
	out := map[int64]int64{}
	if len(ids) == 0 {
		return out, nil
	}
	raw, _ := json.Marshal(ids)
	rows, err := s.db.QueryContext(ctx, `SELECT id, root_id FROM tickets WHERE root_id IS NOT NULL AND id IN (SELECT CAST(value AS INTEGER) FROM `+s.jsonEach()+`)`, string(raw))
	if err != nil {
		return nil, fmt.Errorf("ticket roots: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, root int64
		if err := rows.Scan(&id, &root); err != nil {
			return nil, err
		}
		out[id] = root
	}
	return out, rows.Err()
}

// severityRank orders severities, lowest first.
func severityRank(s ticket.Severity) int {
	switch s {
	case ticket.Warning:
		return 1
	case ticket.Critical:
		return 2
	case ticket.Emergency:
		return 3
	}
	return 0
}

// maxReasonLen bounds a re-diagnosis reason.
const maxReasonLen = 500

// cleanReason strips control characters and bounds the text.
func cleanReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxReasonLen {
		s = s[:maxReasonLen]
	}
	return s
}

// EscalateTicket raises ticket id's severity to sev when sev is higher
// (never lowers it) and, when it was raised and the ticket is diagnosed,
// requests a new diagnosis (RequestRediagnosis) with reason. It reports
// whether the severity was raised. Used by the monitor when an incident
// gets worse (a Disconnected store becomes Down): the incident stays open
// instead of resolving. Errors: ErrNotFound; ErrInvalid for an unknown
// severity.
func (s *Store) EscalateTicket(ctx context.Context, id int64, sev ticket.Severity, reason string, now time.Time) (bool, error) {
	if !validSeverity(sev) {
		return false, fmt.Errorf("escalate ticket %d: %w: severity %q", id, ErrInvalid, sev)
	}
	raised := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		var cur, status string
		if err := tx.QueryRowContext(ctx, `SELECT severity, status FROM tickets WHERE id = ?`, id).Scan(&cur, &status); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("ticket %d: %w", id, ErrNotFound)
			}
			return err
		}
		if status == string(ticket.Resolved) || severityRank(sev) <= severityRank(ticket.Severity(cur)) {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tickets SET severity = ?, cleared_at = NULL, updated_at = ? WHERE id = ?`,
			string(sev), fmtTime(now), id); err != nil {
			return err
		}
		raised = true
		if t, err := scanTicket(tx.QueryRowContext(ctx, `SELECT `+ticketCols+` FROM tickets WHERE id = ?`, id)); err == nil {
			if err := s.enqueueTicket(ctx, tx, KindTicketEscalated, t, now, "/"+string(sev)); err != nil {
				return err
			}
		}
		if status == string(ticket.Diagnosed) {
			return rediagnoseTx(ctx, tx, id, "escalated to "+string(sev)+": "+reason, now)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("escalate ticket %d: %w", id, err)
	}
	return raised, nil
}

// RequestRediagnosis archives the current diagnosis of diagnosed ticket id
// into the diagnoses history with reason (bounded, control characters
// stripped) and moves the ticket back to open so the runner diagnoses it
// again; the ticket's diagnosis fields stay until the new diagnosis
// replaces them. Errors: ErrNotFound; *ticket.ErrTransition when the
// ticket is not diagnosed (an open ticket is already waiting for a
// diagnosis; a resolved one is final); ErrInvalid for an empty reason.
func (s *Store) RequestRediagnosis(ctx context.Context, id int64, reason string, now time.Time) error {
	if cleanReason(reason) == "" {
		return fmt.Errorf("rediagnose ticket %d: %w: a reason is required", id, ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error { return rediagnoseTx(ctx, tx, id, reason, now) })
	if err != nil {
		return fmt.Errorf("rediagnose ticket %d: %w", id, err)
	}
	return nil
}

func rediagnoseTx(ctx context.Context, tx *sql.Tx, id int64, reason string, now time.Time) error {
	ts := fmtTime(now)
	res, err := tx.ExecContext(ctx, `INSERT INTO diagnoses(ticket_id, diagnosis_markdown, diagnosis_json, diagnosis_backend, diagnosed_at, archived_at, reason)
SELECT id, diagnosis_markdown, diagnosis_json, diagnosis_backend, diagnosed_at, ?, ? FROM tickets WHERE id = ? AND status = 'diagnosed'`,
		ts, cleanReason(reason), id)
	if err != nil {
		return fmt.Errorf("archive diagnosis: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var cur string
		if err := tx.QueryRowContext(ctx, `SELECT status FROM tickets WHERE id = ?`, id).Scan(&cur); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("ticket %d: %w", id, ErrNotFound)
			}
			return err
		}
		return &ticket.ErrTransition{ID: id, From: ticket.Status(cur), To: ticket.Open}
	}
	_, err = casTicket(ctx, tx, id, ticket.Open, now, `diagnosis_attempts = 0, next_diagnosis_at = NULL, last_diagnosis_error = ''`)
	return err
}

// PastDiagnosis is one archived diagnosis of a ticket.
type PastDiagnosis struct {
	ID          int64           `json:"id"`
	TicketID    int64           `json:"ticket_id"`
	Markdown    string          `json:"diagnosis_markdown"`
	JSON        json.RawMessage `json:"diagnosis,omitempty"`
	Backend     string          `json:"diagnosis_backend"`
	DiagnosedAt *time.Time      `json:"diagnosed_at,omitempty"`
	ArchivedAt  time.Time       `json:"archived_at"`
	// Reason is why a new diagnosis was requested.
	Reason string `json:"reason"`
}

// Diagnoses returns ticket id's archived diagnoses, oldest first.
func (s *Store) Diagnoses(ctx context.Context, id int64) ([]PastDiagnosis, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, ticket_id, diagnosis_markdown, diagnosis_json, diagnosis_backend, diagnosed_at, archived_at, reason
FROM diagnoses WHERE ticket_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("diagnoses of ticket %d: %w", id, err)
	}
	defer rows.Close()
	var out []PastDiagnosis
	for rows.Next() {
		var (
			d        PastDiagnosis
			j        sql.NullString
			diagAt   timeCol
			archived timeCol
		)
		if err := rows.Scan(&d.ID, &d.TicketID, &d.Markdown, &j, &d.Backend, &diagAt, &archived, &d.Reason); err != nil {
			return nil, fmt.Errorf("diagnoses of ticket %d: %w", id, err)
		}
		d.JSON, d.DiagnosedAt, d.ArchivedAt = jsonCol(j), diagAt.ptr(), archived.t
		out = append(out, d)
	}
	return out, rows.Err()
}
