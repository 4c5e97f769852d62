package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// pgMigration is one numbered schema change of the PostgreSQL backend.
// The numbers are SQLite's (migrations): the PostgreSQL schema at version
// N has the tables, columns, constraints, indexes and append-only
// triggers SQLite's has at version N. The first entry is a baseline that
// creates that schema on an empty database; each later entry mirrors the
// SQLite migration of the same number. Append-only, like migrations.
type pgMigration struct {
	version int
	name    string
	sql     string
}

// pgMigrations, in order. When a SQLite migration N is added, add its
// PostgreSQL twin N here (TestPostgresSchemaMatchesSQLite compares them).
var pgMigrations = []pgMigration{
	{9, "baseline: the schema of SQLite version 9", pgBaselineV9},
	{10, "retention: index tickets.previous_id (retention.go)", schemaV10},
	{11, "scheduled reverts carry the leader term of their claim (followups.go)", schemaV11},
}

// pgText is the type of every text column: byte-order comparisons and
// sorting, as SQLite's default BINARY collation, whatever the database's
// default collation is (times are compared as fixed-width text).
const pgText = `TEXT COLLATE "C"`

// pgBaselineV9 is SQLite's schema at version 9 (migrations 1-9) for
// PostgreSQL. INTEGER becomes BIGINT (database/sql then scans int64 as
// from SQLite); INTEGER PRIMARY KEY AUTOINCREMENT becomes a BIGINT
// primary key filled by operator_assign_id (see id_sequence); GLOB
// becomes a regular expression. CTEXT stands for pgText.
const pgBaselineV9 = `
-- sqlite_sequence's twin: the highest id ever issued per table,
-- transactional (a rolled-back insert issues nothing).
CREATE TABLE id_sequence (
	name CTEXT  PRIMARY KEY,
	seq  BIGINT NOT NULL
);

-- AUTOINCREMENT: a row inserted without an id gets one past both the
-- highest id ever issued and the largest id in the table; an explicit id
-- raises the high-water mark.
CREATE FUNCTION operator_assign_id() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
	top BIGINT;
BEGIN
	IF NEW.id IS NULL THEN
		EXECUTE format('SELECT coalesce(max(id), 0) FROM %I', TG_TABLE_NAME) INTO top;
		INSERT INTO id_sequence AS s (name, seq) VALUES (TG_TABLE_NAME, top + 1)
		ON CONFLICT (name) DO UPDATE SET seq = GREATEST(s.seq, top) + 1
		RETURNING seq INTO NEW.id;
	ELSE
		INSERT INTO id_sequence AS s (name, seq) VALUES (TG_TABLE_NAME, NEW.id)
		ON CONFLICT (name) DO UPDATE SET seq = GREATEST(s.seq, EXCLUDED.seq);
	END IF;
	RETURN NEW;
END
$body$;

-- Append-only tables refuse UPDATE, DELETE and TRUNCATE.
CREATE FUNCTION operator_append_only() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
	RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$body$;

CREATE TABLE tickets (
	id                   BIGINT PRIMARY KEY,
	key                  CTEXT  NOT NULL,
	invariant            CTEXT  NOT NULL,
	subject              CTEXT  NOT NULL,
	severity             CTEXT  NOT NULL,
	status               CTEXT  NOT NULL DEFAULT 'open'
	                     CHECK (status IN ('open', 'diagnosed', 'resolved')),
	summary              CTEXT  NOT NULL DEFAULT '',
	evidence             CTEXT,
	first_evidence       CTEXT,
	first_seen           CTEXT  NOT NULL,
	last_seen            CTEXT  NOT NULL,
	occurrences          BIGINT NOT NULL DEFAULT 1,
	cleared_at           CTEXT,
	resolved_at          CTEXT,
	previous_id          BIGINT REFERENCES tickets(id),
	diagnosis_markdown   CTEXT  NOT NULL DEFAULT '',
	diagnosis_json       CTEXT,
	diagnosis_backend    CTEXT  NOT NULL DEFAULT '',
	diagnosed_at         CTEXT,
	input_tokens         BIGINT NOT NULL DEFAULT 0,
	output_tokens        BIGINT NOT NULL DEFAULT 0,
	diagnosis_attempts   BIGINT NOT NULL DEFAULT 0,
	next_diagnosis_at    CTEXT,
	last_diagnosis_error CTEXT  NOT NULL DEFAULT '',
	updated_at           CTEXT  NOT NULL,
	cluster_id           CTEXT  NOT NULL DEFAULT '',
	root_id              BIGINT REFERENCES tickets(id),
	CHECK (status <> 'resolved' OR resolved_at IS NOT NULL)
);
CREATE INDEX tickets_key_id ON tickets(key, id);
CREATE INDEX tickets_status_id ON tickets(status, id);
CREATE INDEX tickets_root_id ON tickets(root_id) WHERE root_id IS NOT NULL;
CREATE UNIQUE INDEX tickets_active_key ON tickets(cluster_id, key) WHERE status <> 'resolved';
CREATE INDEX tickets_cluster_status_id ON tickets(cluster_id, status, id);

CREATE TABLE clusters (
	id         CTEXT PRIMARY KEY,
	name       CTEXT NOT NULL DEFAULT '',
	first_seen CTEXT NOT NULL
);
CREATE UNIQUE INDEX clusters_name ON clusters(name);

CREATE TABLE action_proposals (
	id                  BIGINT PRIMARY KEY,
	ticket_id           BIGINT NOT NULL REFERENCES tickets(id),
	action_type         CTEXT  NOT NULL,
	params              CTEXT  NOT NULL DEFAULT '{}',
	rationale           CTEXT  NOT NULL DEFAULT '',
	risks               CTEXT  NOT NULL DEFAULT '[]',
	urgency             CTEXT  NOT NULL DEFAULT '',
	status              CTEXT  NOT NULL DEFAULT 'proposed'
	                    CHECK (status IN ('proposed', 'dry_run', 'approved', 'rejected',
	                                      'executing', 'completed', 'failed', 'expired', 'refused')),
	proposed_by         CTEXT  NOT NULL DEFAULT '',
	proposed_at         CTEXT  NOT NULL,
	expires_at          CTEXT  NOT NULL,
	approved_by         CTEXT,
	approved_at         CTEXT,
	rejected_by         CTEXT,
	rejected_at         CTEXT,
	rejection_reason    CTEXT,
	executed_by         CTEXT,
	executed_at         CTEXT,
	finished_at         CTEXT,
	result              CTEXT,
	updated_at          CTEXT  NOT NULL,
	cluster_id          CTEXT  NOT NULL DEFAULT '',
	approval_expires_at CTEXT,
	claim_term          BIGINT,
	finish_term         BIGINT
);
CREATE INDEX action_proposals_status_id ON action_proposals(status, id);
CREATE INDEX action_proposals_ticket_id ON action_proposals(ticket_id, id);
CREATE INDEX action_proposals_cluster_status_id ON action_proposals(cluster_id, status, id);

CREATE TABLE action_records (
	id              BIGINT PRIMARY KEY,
	proposal_id     BIGINT NOT NULL REFERENCES action_proposals(id),
	ticket_id       BIGINT NOT NULL,
	action_type     CTEXT  NOT NULL,
	params          CTEXT,
	dry_run         BIGINT NOT NULL CHECK (dry_run IN (0, 1)),
	success         BIGINT NOT NULL CHECK (success IN (0, 1)),
	message         CTEXT  NOT NULL,
	approved_by     CTEXT  NOT NULL,
	executed_by     CTEXT  NOT NULL,
	started_at      CTEXT  NOT NULL,
	finished_at     CTEXT  NOT NULL,
	requests        CTEXT,
	state_before    CTEXT,
	state_after     CTEXT,
	prev_hash       CTEXT  NOT NULL,
	hash            CTEXT  NOT NULL UNIQUE,
	event           CTEXT  NOT NULL DEFAULT 'execution'
	                CHECK (length(event) BETWEEN 1 AND 32 AND event !~ '[^a-z_]'),
	hash_version    BIGINT NOT NULL DEFAULT 1,
	cluster_id      CTEXT  NOT NULL DEFAULT '',
	actor_role      CTEXT  NOT NULL DEFAULT '',
	on_behalf_of    CTEXT  NOT NULL DEFAULT '',
	action_digest   CTEXT  NOT NULL DEFAULT '',
	evidence_digest CTEXT  NOT NULL DEFAULT '',
	expires_at      CTEXT,
	mac             CTEXT  NOT NULL DEFAULT ''
);
CREATE INDEX action_records_proposal_id ON action_records(proposal_id, id);
CREATE INDEX action_records_ticket_id ON action_records(ticket_id, id);
CREATE INDEX action_records_executions ON action_records(dry_run, started_at);
CREATE INDEX action_records_events ON action_records(event, started_at);
CREATE INDEX action_records_cluster_id ON action_records(cluster_id, id);

CREATE TABLE diagnoses (
	id                 BIGINT PRIMARY KEY,
	ticket_id          BIGINT NOT NULL REFERENCES tickets(id),
	diagnosis_markdown CTEXT  NOT NULL DEFAULT '',
	diagnosis_json     CTEXT,
	diagnosis_backend  CTEXT  NOT NULL DEFAULT '',
	diagnosed_at       CTEXT,
	archived_at        CTEXT  NOT NULL,
	reason             CTEXT  NOT NULL DEFAULT ''
);
CREATE INDEX diagnoses_ticket_id ON diagnoses(ticket_id, id);

CREATE TABLE outbox (
	id          BIGINT PRIMARY KEY,
	key         CTEXT  NOT NULL UNIQUE,
	kind        CTEXT  NOT NULL,
	ticket_id   BIGINT,
	proposal_id BIGINT,
	severity    CTEXT  NOT NULL DEFAULT '',
	invariant   CTEXT  NOT NULL DEFAULT '',
	subject     CTEXT  NOT NULL DEFAULT '',
	payload     CTEXT  NOT NULL,
	routed      BIGINT NOT NULL DEFAULT 0 CHECK (routed IN (0, 1)),
	created_at  CTEXT  NOT NULL,
	cluster_id  CTEXT  NOT NULL DEFAULT ''
);
CREATE INDEX outbox_unrouted ON outbox(routed, id);
CREATE INDEX outbox_proposal ON outbox(proposal_id, id);
CREATE INDEX outbox_cluster_routed ON outbox(cluster_id, routed, id);

CREATE TABLE outbox_deliveries (
	event_id        BIGINT NOT NULL REFERENCES outbox(id),
	sink            CTEXT  NOT NULL,
	status          CTEXT  NOT NULL DEFAULT 'pending'
	                CHECK (status IN ('pending', 'sending', 'delivered', 'dead', 'silenced')),
	attempts        BIGINT NOT NULL DEFAULT 0,
	in_doubt        BIGINT NOT NULL DEFAULT 0,
	next_attempt_at CTEXT  NOT NULL,
	last_error      CTEXT  NOT NULL DEFAULT '',
	ref             CTEXT  NOT NULL DEFAULT '',
	delivered_at    CTEXT,
	updated_at      CTEXT  NOT NULL,
	silenced_by     CTEXT  NOT NULL DEFAULT '',
	PRIMARY KEY (event_id, sink)
);
CREATE INDEX outbox_deliveries_due ON outbox_deliveries(status, next_attempt_at);

CREATE TABLE alerts (
	fingerprint CTEXT  PRIMARY KEY,
	alertname   CTEXT  NOT NULL,
	group_key   CTEXT  NOT NULL DEFAULT '',
	status      CTEXT  NOT NULL CHECK (status IN ('firing', 'resolved')),
	ticket_id   BIGINT REFERENCES tickets(id),
	invariant   CTEXT  NOT NULL,
	subject     CTEXT  NOT NULL,
	labels      CTEXT  NOT NULL DEFAULT '{}',
	starts_at   CTEXT  NOT NULL,
	ends_at     CTEXT,
	received    BIGINT NOT NULL DEFAULT 1,
	updated_at  CTEXT  NOT NULL
);
CREATE INDEX alerts_group ON alerts(group_key);
CREATE INDEX alerts_ticket ON alerts(ticket_id);

CREATE TABLE action_followups (
	id                 BIGINT PRIMARY KEY,
	proposal_id        BIGINT NOT NULL REFERENCES action_proposals(id),
	ticket_id          BIGINT NOT NULL,
	cluster_id         CTEXT  NOT NULL DEFAULT '',
	action_type        CTEXT  NOT NULL,
	params             CTEXT  NOT NULL DEFAULT '{}',
	expect             CTEXT  NOT NULL,
	restore            CTEXT  NOT NULL,
	due_at             CTEXT  NOT NULL,
	status             CTEXT  NOT NULL DEFAULT 'scheduled'
	                   CHECK (status IN ('scheduled', 'running', 'done', 'proposed', 'cancelled', 'failed')),
	claimed_by         CTEXT  NOT NULL DEFAULT '',
	result             CTEXT  NOT NULL DEFAULT '',
	revert_proposal_id BIGINT REFERENCES action_proposals(id),
	created_at         CTEXT  NOT NULL,
	updated_at         CTEXT  NOT NULL
);
CREATE INDEX action_followups_due ON action_followups(status, due_at);
CREATE INDEX action_followups_proposal ON action_followups(proposal_id, id);

CREATE TABLE leader_terms (
	cluster_id CTEXT  PRIMARY KEY,
	term       BIGINT NOT NULL CHECK (term > 0),
	updated_at CTEXT  NOT NULL
);

CREATE TABLE silences (
	id           BIGINT PRIMARY KEY,
	cluster_id   CTEXT  NOT NULL DEFAULT '',
	subject      CTEXT  NOT NULL DEFAULT '',
	invariant    CTEXT  NOT NULL DEFAULT '',
	starts_at    CTEXT  NOT NULL,
	ends_at      CTEXT  NOT NULL,
	reason       CTEXT  NOT NULL CHECK (reason <> ''),
	created_by   CTEXT  NOT NULL CHECK (created_by <> ''),
	created_role CTEXT  NOT NULL,
	created_via  CTEXT  NOT NULL DEFAULT '',
	created_at   CTEXT  NOT NULL,
	hash         CTEXT  NOT NULL UNIQUE,
	signature    CTEXT  NOT NULL DEFAULT '',
	CHECK (ends_at > starts_at)
);
CREATE INDEX silences_ends ON silences(ends_at);

CREATE TABLE silence_expiries (
	silence_id   BIGINT PRIMARY KEY REFERENCES silences(id),
	expired_by   CTEXT  NOT NULL CHECK (expired_by <> ''),
	expired_role CTEXT  NOT NULL,
	expired_via  CTEXT  NOT NULL DEFAULT '',
	reason       CTEXT  NOT NULL CHECK (reason <> ''),
	expired_at   CTEXT  NOT NULL,
	hash         CTEXT  NOT NULL UNIQUE,
	signature    CTEXT  NOT NULL DEFAULT ''
);

CREATE TABLE monitor_alerts (
	cluster_id CTEXT  NOT NULL DEFAULT '',
	key        CTEXT  NOT NULL,
	invariant  CTEXT  NOT NULL,
	active_at  CTEXT  NOT NULL,
	firing     BIGINT NOT NULL DEFAULT 0,
	updated_at CTEXT  NOT NULL,
	PRIMARY KEY (cluster_id, key)
);

CREATE TABLE monitor_state (
	cluster_id CTEXT NOT NULL DEFAULT '',
	name       CTEXT NOT NULL,
	state      CTEXT NOT NULL,
	updated_at CTEXT NOT NULL,
	PRIMARY KEY (cluster_id, name)
);

CREATE TRIGGER tickets_assign_id BEFORE INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION operator_assign_id();
CREATE TRIGGER action_proposals_assign_id BEFORE INSERT ON action_proposals FOR EACH ROW EXECUTE FUNCTION operator_assign_id();
CREATE TRIGGER action_records_assign_id BEFORE INSERT ON action_records FOR EACH ROW EXECUTE FUNCTION operator_assign_id();
CREATE TRIGGER diagnoses_assign_id BEFORE INSERT ON diagnoses FOR EACH ROW EXECUTE FUNCTION operator_assign_id();
CREATE TRIGGER outbox_assign_id BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION operator_assign_id();
CREATE TRIGGER action_followups_assign_id BEFORE INSERT ON action_followups FOR EACH ROW EXECUTE FUNCTION operator_assign_id();
CREATE TRIGGER silences_assign_id BEFORE INSERT ON silences FOR EACH ROW EXECUTE FUNCTION operator_assign_id();

CREATE TRIGGER action_records_no_update BEFORE UPDATE ON action_records FOR EACH ROW EXECUTE FUNCTION operator_append_only();
CREATE TRIGGER action_records_no_delete BEFORE DELETE ON action_records FOR EACH ROW EXECUTE FUNCTION operator_append_only();
CREATE TRIGGER action_records_no_truncate BEFORE TRUNCATE ON action_records FOR EACH STATEMENT EXECUTE FUNCTION operator_append_only();
CREATE TRIGGER silences_no_update BEFORE UPDATE ON silences FOR EACH ROW EXECUTE FUNCTION operator_append_only();
CREATE TRIGGER silences_no_delete BEFORE DELETE ON silences FOR EACH ROW EXECUTE FUNCTION operator_append_only();
CREATE TRIGGER silences_no_truncate BEFORE TRUNCATE ON silences FOR EACH STATEMENT EXECUTE FUNCTION operator_append_only();
CREATE TRIGGER silence_expiries_no_update BEFORE UPDATE ON silence_expiries FOR EACH ROW EXECUTE FUNCTION operator_append_only();
CREATE TRIGGER silence_expiries_no_delete BEFORE DELETE ON silence_expiries FOR EACH ROW EXECUTE FUNCTION operator_append_only();
CREATE TRIGGER silence_expiries_no_truncate BEFORE TRUNCATE ON silence_expiries FOR EACH STATEMENT EXECUTE FUNCTION operator_append_only();
`

// AppendOnlyTables are the tables whose rows are never changed or
// removed once written: the audit trail and the silences. Their triggers
// refuse UPDATE, DELETE and TRUNCATE on both databases; on PostgreSQL the
// runtime role is also denied those privileges (PostgresRuntimeGrants).
var AppendOnlyTables = []string{"action_records", "silences", "silence_expiries"}

const pgCreateSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT PRIMARY KEY,
	name       TEXT COLLATE "C" NOT NULL,
	applied_at TEXT COLLATE "C" NOT NULL DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
)`

// PostgresRuntimeGrants returns the SQL the owner role (the one that ran
// the migrations: the daemon's first start, or operator migrate) runs to
// let role, an existing login role, run the daemon and the CLI without
// being able to change the audit trail: SELECT, INSERT, UPDATE and DELETE
// on every table of the schema except UPDATE, DELETE and TRUNCATE on
// AppendOnlyTables. Run it again after an upgrade that adds tables. role
// is quoted as an identifier.
//
// Such a role cannot run migrations (no CREATE): an Open of a database
// whose schema is older than this binary fails until the owner opened it.
func PostgresRuntimeGrants(role string) string {
	r := quoteIdent(role)
	var b strings.Builder
	fmt.Fprintf(&b, "GRANT USAGE ON SCHEMA public TO %s;\n", r)
	fmt.Fprintf(&b, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s;\n", r)
	fmt.Fprintf(&b, "REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM %s;\n", strings.Join(AppendOnlyTables, ", "), r)
	return b.String()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// pgVersion returns the version in schema_migrations, 0 when the table
// does not exist yet (without DDL: the runtime role may not create).
func pgVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRowContext(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migratePostgres applies pending pgMigrations, each in its own write
// transaction (under the write lock, so concurrent Opens by several
// replicas apply each exactly once).
func (s *Store) migratePostgres(ctx context.Context) error {
	cur, err := pgVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if cur > SchemaVersion {
		return fmt.Errorf("%w: database is at version %d, this binary knows up to %d", ErrSchemaTooNew, cur, SchemaVersion)
	}
	if cur == SchemaVersion {
		return nil
	}
	for i, m := range pgMigrations {
		applied := false
		err := s.write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, pgCreateSchemaMigrations); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			cur, err := pgVersion(ctx, tx)
			if err != nil {
				return err
			}
			if cur > SchemaVersion {
				return fmt.Errorf("%w: database is at version %d, this binary knows up to %d", ErrSchemaTooNew, cur, SchemaVersion)
			}
			if cur >= m.version {
				return nil
			}
			if i == 0 && cur != 0 || i > 0 && cur != m.version-1 {
				return fmt.Errorf("schema version %d cannot be migrated to %d", cur, m.version)
			}
			if _, err := tx.ExecContext(ctx, strings.ReplaceAll(m.sql, "CTEXT", pgText)); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
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
