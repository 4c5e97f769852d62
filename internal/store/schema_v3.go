package store

// schemaV3 is the approval-integrity schema:
//
//   - clusters: the PD cluster(s) this database belongs to (PD's cluster
//     id from GET /pd/api/v1/cluster); tickets, proposals and records carry
//     the cluster id they were made for.
//   - action_proposals: status 'refused' (the executor's claim-time check
//     refused an approval: no valid approval record, wrong cluster, policy)
//     and the approval's own expiry (approval_expires_at).
//   - action_records: hash_version (1: the original encoding, which left
//     the event out for executions and dry runs; 2: every field), the
//     binding of an approval (actor_role, on_behalf_of, action_digest,
//     evidence_digest, expires_at, cluster_id) and mac, an HMAC-SHA256 of
//     the record hash under a key kept outside the database. The event
//     CHECK is widened to any short lowercase word; the store validates
//     the list (action.ValidEvent).
//
// Both tables are rebuilt (SQLite cannot change a CHECK in place); rows
// are copied verbatim, so every existing hash still verifies.
const schemaV3 = `
CREATE TABLE clusters (
	id         TEXT PRIMARY KEY,                  -- PD cluster id, decimal
	name       TEXT NOT NULL DEFAULT '',          -- configured name
	first_seen TEXT NOT NULL
);

ALTER TABLE tickets ADD COLUMN cluster_id TEXT NOT NULL DEFAULT '';

CREATE TABLE action_proposals_v3 (
	id                  INTEGER PRIMARY KEY AUTOINCREMENT,
	ticket_id           INTEGER NOT NULL REFERENCES tickets(id),
	action_type         TEXT    NOT NULL,
	params              TEXT    NOT NULL DEFAULT '{}',
	rationale           TEXT    NOT NULL DEFAULT '',
	risks               TEXT    NOT NULL DEFAULT '[]',
	urgency             TEXT    NOT NULL DEFAULT '',
	status              TEXT    NOT NULL DEFAULT 'proposed'
	                    CHECK (status IN ('proposed', 'dry_run', 'approved', 'rejected',
	                                      'executing', 'completed', 'failed', 'expired', 'refused')),
	proposed_by         TEXT    NOT NULL DEFAULT '',
	proposed_at         TEXT    NOT NULL,
	expires_at          TEXT    NOT NULL,
	approved_by         TEXT,
	approved_at         TEXT,
	rejected_by         TEXT,
	rejected_at         TEXT,
	rejection_reason    TEXT,
	executed_by         TEXT,
	executed_at         TEXT,
	finished_at         TEXT,
	result              TEXT,
	updated_at          TEXT    NOT NULL,
	cluster_id          TEXT    NOT NULL DEFAULT '',
	approval_expires_at TEXT
);
INSERT INTO action_proposals_v3 (id, ticket_id, action_type, params, rationale, risks, urgency, status,
	proposed_by, proposed_at, expires_at, approved_by, approved_at, rejected_by, rejected_at,
	rejection_reason, executed_by, executed_at, finished_at, result, updated_at)
SELECT id, ticket_id, action_type, params, rationale, risks, urgency, status,
	proposed_by, proposed_at, expires_at, approved_by, approved_at, rejected_by, rejected_at,
	rejection_reason, executed_by, executed_at, finished_at, result, updated_at
FROM action_proposals;

CREATE TABLE action_records_v3 (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	proposal_id     INTEGER NOT NULL REFERENCES action_proposals(id),
	ticket_id       INTEGER NOT NULL,
	action_type     TEXT    NOT NULL,
	params          TEXT,
	dry_run         INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
	success         INTEGER NOT NULL CHECK (success IN (0, 1)),
	message         TEXT    NOT NULL,
	approved_by     TEXT    NOT NULL,
	executed_by     TEXT    NOT NULL,
	started_at      TEXT    NOT NULL,
	finished_at     TEXT    NOT NULL,
	requests        TEXT,
	state_before    TEXT,
	state_after     TEXT,
	prev_hash       TEXT    NOT NULL,
	hash            TEXT    NOT NULL UNIQUE,
	event           TEXT    NOT NULL DEFAULT 'execution'
	                CHECK (length(event) BETWEEN 1 AND 32 AND event NOT GLOB '*[^a-z_]*'),
	hash_version    INTEGER NOT NULL DEFAULT 1,
	cluster_id      TEXT    NOT NULL DEFAULT '',
	actor_role      TEXT    NOT NULL DEFAULT '',
	on_behalf_of    TEXT    NOT NULL DEFAULT '',
	action_digest   TEXT    NOT NULL DEFAULT '',
	evidence_digest TEXT    NOT NULL DEFAULT '',
	expires_at      TEXT,
	mac             TEXT    NOT NULL DEFAULT ''
);
INSERT INTO action_records_v3 (id, proposal_id, ticket_id, action_type, params, dry_run, success,
	message, approved_by, executed_by, started_at, finished_at, requests, state_before, state_after,
	prev_hash, hash, event)
SELECT id, proposal_id, ticket_id, action_type, params, dry_run, success,
	message, approved_by, executed_by, started_at, finished_at, requests, state_before, state_after,
	prev_hash, hash, event
FROM action_records;

-- Keep the highest record id ever issued: a deleted tail must stay visible.
CREATE TEMP TABLE v3_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'action_records';
DROP TABLE action_records;
DROP TABLE action_proposals;
ALTER TABLE action_proposals_v3 RENAME TO action_proposals;
ALTER TABLE action_records_v3 RENAME TO action_records;

UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT max(seq) FROM temp.v3_seq), 0))
WHERE name = 'action_records';
DROP TABLE temp.v3_seq;

CREATE INDEX action_proposals_status_id ON action_proposals(status, id);
CREATE INDEX action_proposals_ticket_id ON action_proposals(ticket_id, id);
CREATE INDEX action_records_proposal_id ON action_records(proposal_id, id);
CREATE INDEX action_records_ticket_id ON action_records(ticket_id, id);
CREATE INDEX action_records_executions ON action_records(dry_run, started_at);
CREATE INDEX action_records_events ON action_records(event, started_at);

CREATE TRIGGER action_records_no_update BEFORE UPDATE ON action_records
BEGIN
	SELECT RAISE(ABORT, 'action_records is append-only: UPDATE refused');
END;
CREATE TRIGGER action_records_no_delete BEFORE DELETE ON action_records
BEGIN
	SELECT RAISE(ABORT, 'action_records is append-only: DELETE refused');
END;
`
