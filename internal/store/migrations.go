package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migration is one numbered schema change. Migrations are append-only:
// never edit a released one, add the next number instead.
type migration struct {
	version int
	name    string
	sql     string
	// rebuild marks a migration that rebuilds tables other tables refer
	// to: it runs on one connection with foreign_keys=OFF (the SQLite
	// "12-step" table rebuild) and checks PRAGMA foreign_key_check before
	// committing.
	rebuild bool
}

// migrations, in order. Version numbers start at 1 and have no gaps.
var migrations = []migration{
	{1, "tickets, action proposals, append-only action records", schemaV1, false},
	{2, "action record events: approvals and rejections join the audit trail", schemaV2, false},
	{3, "approval integrity: cluster identity, bound approvals, refused status, authenticated records", schemaV3, true},
	{4, "monitor memory: persisted alerts and histories, incident roots, diagnosis history", schemaV4, false},
	{5, "notification outbox and deliveries, alerts received from Alertmanager", schemaV5, false},
	{6, "scheduled reverts of temporary changes (action_followups)", schemaV6, false},
	{7, "leader terms: fencing of the elected leader's writes (fencing.go)", schemaV7, false},
	{8, "silences and maintenance windows: append-only, signed; silenced deliveries (silences.go)", schemaV8, false},
	{9, "several clusters: unique cluster names; tickets, monitor memory and outbox scoped by cluster (clusters.go)", schemaV9, false},
	{10, "retention: index tickets.previous_id so pruning finds a ticket's successors (retention.go)", schemaV10, false},
	{11, "scheduled reverts carry the leader term of their claim; requeued by term (followups.go)", schemaV11, false},
}

// SchemaVersion is the schema version this binary migrates databases to:
// the number of the last migration.
const SchemaVersion = 11

// schemaV1 follows the seed schema (the original design) plus
// what the ticket and action lifecycles need. Times are TEXT in the fixed
// UTC layout of timeLayout; JSON columns hold JSON text.
const schemaV1 = `
CREATE TABLE tickets (
	id                   INTEGER PRIMARY KEY AUTOINCREMENT,
	key                  TEXT    NOT NULL,                 -- dedup key: invariant/subject
	invariant            TEXT    NOT NULL,
	subject              TEXT    NOT NULL,
	severity             TEXT    NOT NULL,
	status               TEXT    NOT NULL DEFAULT 'open'
	                     CHECK (status IN ('open', 'diagnosed', 'resolved')),
	summary              TEXT    NOT NULL DEFAULT '',
	evidence             TEXT,                             -- latest evidence, JSON
	first_evidence       TEXT,                             -- evidence that opened it, JSON
	first_seen           TEXT    NOT NULL,
	last_seen            TEXT    NOT NULL,
	occurrences          INTEGER NOT NULL DEFAULT 1,
	cleared_at           TEXT,                             -- first seen holding again
	resolved_at          TEXT,
	previous_id          INTEGER REFERENCES tickets(id),   -- resolved ticket with the same key
	diagnosis_markdown   TEXT    NOT NULL DEFAULT '',
	diagnosis_json       TEXT,
	diagnosis_backend    TEXT    NOT NULL DEFAULT '',
	diagnosed_at         TEXT,
	input_tokens         INTEGER NOT NULL DEFAULT 0,
	output_tokens        INTEGER NOT NULL DEFAULT 0,
	diagnosis_attempts   INTEGER NOT NULL DEFAULT 0,       -- failures since the last success
	next_diagnosis_at    TEXT,                             -- backoff
	last_diagnosis_error TEXT    NOT NULL DEFAULT '',
	updated_at           TEXT    NOT NULL,
	CHECK (status <> 'resolved' OR resolved_at IS NOT NULL)
);
-- At most one non-resolved ticket per key.
CREATE UNIQUE INDEX tickets_active_key ON tickets(key) WHERE status <> 'resolved';
CREATE INDEX tickets_key_id ON tickets(key, id);
CREATE INDEX tickets_status_id ON tickets(status, id);

CREATE TABLE action_proposals (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	ticket_id        INTEGER NOT NULL REFERENCES tickets(id),
	action_type      TEXT    NOT NULL,
	params           TEXT    NOT NULL DEFAULT '{}',        -- JSON object
	rationale        TEXT    NOT NULL DEFAULT '',
	risks            TEXT    NOT NULL DEFAULT '[]',        -- JSON array of strings
	urgency          TEXT    NOT NULL DEFAULT '',
	status           TEXT    NOT NULL DEFAULT 'proposed'
	                 CHECK (status IN ('proposed', 'dry_run', 'approved', 'rejected',
	                                   'executing', 'completed', 'failed', 'expired')),
	proposed_by      TEXT    NOT NULL DEFAULT '',
	proposed_at      TEXT    NOT NULL,
	expires_at       TEXT    NOT NULL,
	approved_by      TEXT,
	approved_at      TEXT,
	rejected_by      TEXT,
	rejected_at      TEXT,
	rejection_reason TEXT,
	executed_by      TEXT,
	executed_at      TEXT,
	finished_at      TEXT,
	result           TEXT,
	updated_at       TEXT    NOT NULL
);
CREATE INDEX action_proposals_status_id ON action_proposals(status, id);
CREATE INDEX action_proposals_ticket_id ON action_proposals(ticket_id, id);

-- Append-only audit trail, hash-chained (see RecordHash).
CREATE TABLE action_records (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	proposal_id  INTEGER NOT NULL REFERENCES action_proposals(id),
	ticket_id    INTEGER NOT NULL,
	action_type  TEXT    NOT NULL,
	params       TEXT,                                     -- JSON
	dry_run      INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
	success      INTEGER NOT NULL CHECK (success IN (0, 1)),
	message      TEXT    NOT NULL,
	approved_by  TEXT    NOT NULL,
	executed_by  TEXT    NOT NULL,
	started_at   TEXT    NOT NULL,
	finished_at  TEXT    NOT NULL,
	requests     TEXT,                                     -- JSON []action.Request
	state_before TEXT,                                     -- JSON
	state_after  TEXT,                                     -- JSON
	prev_hash    TEXT    NOT NULL,                         -- '' for the first record
	hash         TEXT    NOT NULL UNIQUE
);
CREATE INDEX action_records_proposal_id ON action_records(proposal_id, id);
CREATE INDEX action_records_ticket_id ON action_records(ticket_id, id);
CREATE INDEX action_records_executions ON action_records(dry_run, started_at);

CREATE TRIGGER action_records_no_update BEFORE UPDATE ON action_records
BEGIN
	SELECT RAISE(ABORT, 'action_records is append-only: UPDATE refused');
END;
CREATE TRIGGER action_records_no_delete BEFORE DELETE ON action_records
BEGIN
	SELECT RAISE(ABORT, 'action_records is append-only: DELETE refused');
END;
`

// schemaV2 adds action_records.event (see action.Record.Event). Existing
// rows get "dry_run" or "execution" from their dry_run column; filling
// them needs an UPDATE, so the append-only trigger is dropped and
// recreated inside this migration's transaction. Their hashes stay valid:
// RecordHash covers the event only for approvals and rejections.
const schemaV2 = `
ALTER TABLE action_records ADD COLUMN event TEXT NOT NULL DEFAULT 'execution'
	CHECK (event IN ('execution', 'dry_run', 'approval', 'rejection'));
DROP TRIGGER action_records_no_update;
UPDATE action_records SET event = 'dry_run' WHERE dry_run = 1;
CREATE TRIGGER action_records_no_update BEFORE UPDATE ON action_records
BEGIN
	SELECT RAISE(ABORT, 'action_records is append-only: UPDATE refused');
END;
CREATE INDEX action_records_events ON action_records(event, started_at);
`

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)`

// migrate applies pending migrations, each in its own write transaction.
// The current version is read inside that transaction, so concurrent
// Opens of one file apply each migration exactly once.
func (s *Store) migrate(ctx context.Context) error {
	for _, m := range migrations {
		applied := false
		run := s.write
		if m.rebuild {
			run = s.writeNoFK
		}
		err := run(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, createSchemaMigrations); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var cur int
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if cur > SchemaVersion {
				return fmt.Errorf("%w: file is at version %d, this binary knows up to %d", ErrSchemaTooNew, cur, SchemaVersion)
			}
			if cur >= m.version {
				return nil
			}
			if cur != m.version-1 {
				return fmt.Errorf("schema version %d cannot be migrated to %d", cur, m.version)
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			if m.rebuild {
				if err := foreignKeyCheck(ctx, tx); err != nil {
					return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name) VALUES (?, ?)`, m.version, m.name); err != nil {
				return fmt.Errorf("record migration %d: %w", m.version, err)
			}
			applied = true
			return nil
		})
		if err != nil {
			return err
		}
		if applied {
			s.log.Info("applied migration", "version", m.version, "name", m.name)
		}
	}
	return nil
}

// Version returns the schema version recorded in the file.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// writeNoFK is write on one dedicated connection with foreign key
// enforcement off for the transaction (PRAGMA foreign_keys is a no-op
// inside a transaction, so it is switched before BEGIN and back after).
func (s *Store) writeNoFK(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wsem }()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return fmt.Errorf("foreign_keys off: %w", err)
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`) }()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// foreignKeyCheck fails when PRAGMA foreign_key_check reports a row.
func foreignKeyCheck(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return fmt.Errorf("foreign_key_check: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		return fmt.Errorf("foreign_key_check: a row refers to a missing parent after the rebuild")
	}
	return rows.Err()
}
