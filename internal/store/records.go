package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auditkey"
)

// recordCols is the column list scanRecord reads, in order.
const recordCols = `id, proposal_id, ticket_id, action_type, params, dry_run, success, message,
	approved_by, executed_by, started_at, finished_at, requests, state_before,
	state_after, prev_hash, hash, event, hash_version, cluster_id, actor_role,
	on_behalf_of, action_digest, evidence_digest, expires_at, mac`

func scanRecord(sc scanner) (action.Record, error) {
	var (
		r                               action.Record
		params, requests, before, after sql.NullString
		startedAt, finishedAt, expires  timeCol
		dryRun, success                 int64
	)
	err := sc.Scan(&r.ID, &r.ProposalID, &r.TicketID, &r.ActionType, &params, &dryRun, &success,
		&r.Message, &r.ApprovedBy, &r.ExecutedBy, &startedAt, &finishedAt, &requests, &before,
		&after, &r.PrevHash, &r.Hash, &r.Event, &r.HashVersion, &r.ClusterID, &r.ActorRole,
		&r.OnBehalfOf, &r.ActionDigest, &r.EvidenceDigest, &expires, &r.Signature)
	if err != nil {
		return action.Record{}, err
	}
	r.Params, r.Requests = jsonCol(params), jsonCol(requests)
	r.StateBefore, r.StateAfter = jsonCol(before), jsonCol(after)
	r.DryRun, r.Success = dryRun != 0, success != 0
	r.StartedAt, r.FinishedAt = startedAt.t, finishedAt.t
	r.ExpiresAt = expires.ptr()
	return r, nil
}

// RecordHash returns the hex SHA-256 that chains rec to its predecessor,
// in the encoding rec.HashVersion names (action.HashV2 when 0).
//
// Version 2 (every record written since schema version 3):
//
//	hash = lowercase hex of SHA-256(
//	    "operator.action_record.v2\n" ||
//	    field("prev_hash", …) || field("id", …) || field("proposal_id", …) ||
//	    field("ticket_id", …) || field("cluster_id", …) || field("event", …) ||
//	    field("action_type", …) || field("params", …) || field("dry_run", …) ||
//	    field("success", …) || field("message", …) || field("approved_by", …) ||
//	    field("actor_role", …) || field("on_behalf_of", …) ||
//	    field("executed_by", …) || field("started_at", …) ||
//	    field("finished_at", …) || field("expires_at", …) ||
//	    field("action_digest", …) || field("evidence_digest", …) ||
//	    field("requests", …) || field("state_before", …) ||
//	    field("state_after", …))
//
// Version 1 (records written before schema version 3):
//
//	hash = lowercase hex of SHA-256(
//	    "operator.action_record.v1\n" ||
//	    field("prev_hash", …) || field("id", …) || field("proposal_id", …) ||
//	    field("ticket_id", …) || field("action_type", …) || field("params", …) ||
//	    field("dry_run", …) || field("success", …) || field("message", …) ||
//	    field("approved_by", …) || field("executed_by", …) ||
//	    field("started_at", …) || field("finished_at", …) ||
//	    field("requests", …) || field("state_before", …) ||
//	    field("state_after", …) [|| field("event", …) for approvals and rejections])
//
//	field(name, value) = name || "=" || decimal byte length of value || ":" || value || "\n"
//
// Values: integers in base 10; booleans "true" or "false"; times in UTC as
// "2006-01-02T15:04:05.000000000Z" ("" for the zero time or none); JSON
// fields as their stored bytes, verbatim ("" for none); strings as their
// UTF-8 bytes. The length prefix makes the encoding unambiguous. The
// version prefix means a record cannot be relabelled to another version
// without its hash changing. The signature (mac column) is over the hash
// and is not itself hashed.
func RecordHash(rec action.Record) string {
	if rec.HashVersion == action.HashV1 {
		return recordHashV1(rec)
	}
	h := sha256.New()
	h.Write([]byte("operator.action_record.v2\n"))
	field := func(name, v string) { writeField(h, name, v) }
	field("prev_hash", rec.PrevHash)
	field("id", strconv.FormatInt(rec.ID, 10))
	field("proposal_id", strconv.FormatInt(rec.ProposalID, 10))
	field("ticket_id", strconv.FormatInt(rec.TicketID, 10))
	field("cluster_id", rec.ClusterID)
	field("event", rec.Event)
	field("action_type", rec.ActionType)
	field("params", string(rec.Params))
	field("dry_run", strconv.FormatBool(rec.DryRun))
	field("success", strconv.FormatBool(rec.Success))
	field("message", rec.Message)
	field("approved_by", rec.ApprovedBy)
	field("actor_role", rec.ActorRole)
	field("on_behalf_of", rec.OnBehalfOf)
	field("executed_by", rec.ExecutedBy)
	field("started_at", hashTime(rec.StartedAt))
	field("finished_at", hashTime(rec.FinishedAt))
	var exp time.Time
	if rec.ExpiresAt != nil {
		exp = *rec.ExpiresAt
	}
	field("expires_at", hashTime(exp))
	field("action_digest", rec.ActionDigest)
	field("evidence_digest", rec.EvidenceDigest)
	field("requests", string(rec.Requests))
	field("state_before", string(rec.StateBefore))
	field("state_after", string(rec.StateAfter))
	return hex.EncodeToString(h.Sum(nil))
}

// recordHashV1 is the version 1 encoding (see RecordHash).
func recordHashV1(rec action.Record) string {
	h := sha256.New()
	h.Write([]byte("operator.action_record.v1\n"))
	field := func(name, v string) { writeField(h, name, v) }
	field("prev_hash", rec.PrevHash)
	field("id", strconv.FormatInt(rec.ID, 10))
	field("proposal_id", strconv.FormatInt(rec.ProposalID, 10))
	field("ticket_id", strconv.FormatInt(rec.TicketID, 10))
	field("action_type", rec.ActionType)
	field("params", string(rec.Params))
	field("dry_run", strconv.FormatBool(rec.DryRun))
	field("success", strconv.FormatBool(rec.Success))
	field("message", rec.Message)
	field("approved_by", rec.ApprovedBy)
	field("executed_by", rec.ExecutedBy)
	field("started_at", hashTime(rec.StartedAt))
	field("finished_at", hashTime(rec.FinishedAt))
	field("requests", string(rec.Requests))
	field("state_before", string(rec.StateBefore))
	field("state_after", string(rec.StateAfter))
	if rec.Event == action.EventApproval || rec.Event == action.EventRejection {
		field("event", rec.Event)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeField(h hash.Hash, name, v string) {
	var buf [24]byte
	h.Write([]byte(name))
	h.Write([]byte{'='})
	h.Write(strconv.AppendInt(buf[:0], int64(len(v)), 10))
	h.Write([]byte{':'})
	h.Write([]byte(v))
	h.Write([]byte{'\n'})
}

func hashTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmtTime(t)
}

// AppendRecord appends rec to the audit trail on its own (the status
// changes that usually accompany a record use Finish or RecordDryRun,
// which append in the same transaction). rec.ProposalID must name an
// existing proposal; the other fields are completed from it as in Finish
// (StartedAt defaults to the proposal's ExecutedAt, else to FinishedAt;
// FinishedAt has no default here and must be set). ID, PrevHash and Hash
// are computed inside one write transaction and the stored record is
// returned.
//
// An empty Event becomes action.EventDryRun when DryRun is set, else
// action.EventExecution.
//
// Errors: ErrNotFound for an unknown proposal; ErrInvalid for malformed
// JSON, a zero FinishedAt, an unknown Event, or an Event that contradicts
// DryRun (DryRun must be true exactly for action.EventDryRun).
func (s *Store) AppendRecord(ctx context.Context, rec action.Record) (action.Record, error) {
	if rec.FinishedAt.IsZero() {
		return action.Record{}, fmt.Errorf("append record: %w: FinishedAt is required", ErrInvalid)
	}
	var out action.Record
	err := s.write(ctx, func(tx *sql.Tx) error {
		p, err := readProposal(ctx, tx, rec.ProposalID)
		if err != nil {
			return err
		}
		out, err = s.appendRecord(ctx, tx, p, rec, rec.FinishedAt)
		return err
	})
	if err != nil {
		return action.Record{}, fmt.Errorf("append record for action %d: %w", rec.ProposalID, err)
	}
	return out, nil
}

// appendRecord completes rec from proposal p, links it to the newest
// record, signs it with the store's audit key (when set) and inserts it,
// inside tx. Records are always written in hash version 2, tagged with
// the store's cluster id unless rec names one. Call afterAppend with the
// result once tx has committed.
func (s *Store) appendRecord(ctx context.Context, tx *sql.Tx, p action.Proposal, rec action.Record, now time.Time) (action.Record, error) {
	if rec.ProposalID != 0 && rec.ProposalID != p.ID {
		return action.Record{}, fmt.Errorf("%w: record names action %d, not %d", ErrInvalid, rec.ProposalID, p.ID)
	}
	rec.ProposalID = p.ID
	if rec.TicketID == 0 {
		rec.TicketID = p.TicketID
	}
	if rec.ActionType == "" {
		rec.ActionType = p.ActionType
	}
	if len(rec.Params) == 0 {
		rec.Params = p.Params
	}
	if rec.ApprovedBy == "" {
		rec.ApprovedBy = p.ApprovedBy
	}
	if rec.ExecutedBy == "" {
		rec.ExecutedBy = p.ExecutedBy
	}
	switch {
	case rec.Event == "" && rec.DryRun:
		rec.Event = action.EventDryRun
	case rec.Event == "":
		rec.Event = action.EventExecution
	case !action.ValidEvent(rec.Event):
		return action.Record{}, fmt.Errorf("%w: unknown record event %q", ErrInvalid, rec.Event)
	}
	if rec.DryRun != (rec.Event == action.EventDryRun) {
		return action.Record{}, fmt.Errorf("%w: record event %q with dry_run=%t", ErrInvalid, rec.Event, rec.DryRun)
	}
	if rec.FinishedAt.IsZero() {
		rec.FinishedAt = now
	}
	if rec.StartedAt.IsZero() {
		if p.ExecutedAt != nil && rec.Event == action.EventExecution {
			rec.StartedAt = *p.ExecutedAt
		} else {
			rec.StartedAt = rec.FinishedAt
		}
	}
	// Normalise times to what is stored, so the returned record hashes
	// the same as the one Verify reads back.
	rec.StartedAt, rec.FinishedAt = rec.StartedAt.UTC(), rec.FinishedAt.UTC()
	args := make([]any, 0, 4)
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"params", rec.Params}, {"requests", rec.Requests}, {"state_before", rec.StateBefore}, {"state_after", rec.StateAfter}} {
		a, err := jsonArg("record "+f.name, f.raw)
		if err != nil {
			return action.Record{}, err
		}
		args = append(args, a)
	}

	// The next id is one past both the newest row and the highest id ever
	// issued (sqlite_sequence), so a deleted tail shows up as a gap.
	var (
		lastID   int64
		lastHash string
		seq      sql.NullInt64
	)
	err := tx.QueryRowContext(ctx, `SELECT id, hash FROM action_records ORDER BY id DESC LIMIT 1`).Scan(&lastID, &lastHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return action.Record{}, fmt.Errorf("read chain head: %w", err)
	}
	err = tx.QueryRowContext(ctx, `SELECT seq FROM `+s.seqTable()+` WHERE name = 'action_records'`).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return action.Record{}, fmt.Errorf("read record sequence: %w", err)
	}
	rec.ID = max(lastID, seq.Int64) + 1
	rec.PrevHash = lastHash
	rec.HashVersion = action.HashV2
	if rec.ClusterID == "" {
		rec.ClusterID = p.ClusterID
	}
	if rec.ClusterID == "" {
		rec.ClusterID = s.ClusterID()
	}
	if rec.ExpiresAt != nil {
		t := rec.ExpiresAt.UTC()
		rec.ExpiresAt = &t
	}
	rec.Hash = RecordHash(rec)
	rec.Signature = ""
	if s.signer != nil {
		rec.Signature = s.signer.Sign(rec.Hash)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO action_records (`+recordCols+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		rec.ID, rec.ProposalID, rec.TicketID, rec.ActionType, args[0], rec.DryRun, rec.Success,
		rec.Message, rec.ApprovedBy, rec.ExecutedBy, fmtTime(rec.StartedAt), fmtTime(rec.FinishedAt),
		args[1], args[2], args[3], rec.PrevHash, rec.Hash, rec.Event, rec.HashVersion, rec.ClusterID,
		rec.ActorRole, rec.OnBehalfOf, rec.ActionDigest, rec.EvidenceDigest, nullTime(rec.ExpiresAt), rec.Signature)
	if err != nil {
		return action.Record{}, fmt.Errorf("insert record: %w", err)
	}
	// write() hands it to afterAppend once the transaction commits.
	s.pending = append(s.pending, rec)
	if err := s.enqueueRecord(ctx, tx, p, rec, now); err != nil {
		return action.Record{}, err
	}
	return rec, nil
}

// RecordFilter selects records for Records.
type RecordFilter struct {
	// ProposalID keeps the records of one proposal; 0 means all.
	ProposalID int64
	// TicketID keeps the records of one ticket; 0 means all.
	TicketID int64
	// Limit caps the number returned; 0 means no limit.
	Limit int
	// Cluster keeps the records of one PD cluster (its id); "" means
	// every cluster.
	Cluster string
}

// Records returns the audit records matching f, newest (highest id) first.
func (s *Store) Records(ctx context.Context, f RecordFilter) ([]action.Record, error) {
	q := `SELECT ` + recordCols + ` FROM action_records WHERE 1 = 1`
	var args []any
	if f.ProposalID != 0 {
		q += ` AND proposal_id = ?`
		args = append(args, f.ProposalID)
	}
	if f.TicketID != 0 {
		q += ` AND ticket_id = ?`
		args = append(args, f.TicketID)
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
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	defer rows.Close()
	var out []action.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list records: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	return out, nil
}

// ExecutionsSince counts the execution audit records (event "execution":
// not dry runs, approvals or rejections) whose StartedAt is at or after
// since (for a per-hour execution cap).
func (s *Store) ExecutionsSince(ctx context.Context, since time.Time) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM action_records WHERE event = 'execution' AND started_at >= ?`,
		fmtTime(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count executions: %w", err)
	}
	return n, nil
}

// BreakKind classifies the first defect Verify finds in the chain.
type BreakKind string

// Kinds of chain defects.
const (
	// BreakEdited: the record's stored hash does not match its content
	// (a field was changed after it was written).
	BreakEdited BreakKind = "edited"
	// BreakMissing: a record is missing: an id gap, a first record that
	// links to a predecessor, or a tail shorter than the ids issued.
	BreakMissing BreakKind = "missing"
	// BreakLink: the record's prev_hash is not the previous record's hash
	// although the ids are consecutive (records reordered or replaced).
	BreakLink BreakKind = "link"
	// BreakForged: the record's signature does not verify with the audit
	// public key (written by someone without the daemon's key), or a
	// record claims the old hash version after newer records.
	BreakForged BreakKind = "forged"
	// BreakUnapproved: a proposal is approved, executing or finished by an
	// execution, but the chain holds no approval for it, or its params
	// are not the ones approved (its row was edited outside the daemon).
	BreakUnapproved BreakKind = "unapproved"
	// BreakTrimmed: the checkpoint kept outside the database names a
	// record the database no longer has (a wiped chain, a deleted tail, a
	// reset sequence), or a head whose hash differs (a rewritten chain).
	BreakTrimmed BreakKind = "trimmed"
)

// Break describes the first defect in the chain.
type Break struct {
	// ID is the record at which the defect was found (for a deleted tail,
	// the first missing id).
	ID     int64     `json:"id"`
	Kind   BreakKind `json:"kind"`
	Detail string    `json:"detail"`
}

// VerifyReport is the result of walking the audit chain.
type VerifyReport struct {
	// Records is the number of records walked (all of them when OK).
	Records int `json:"records"`
	// OK is true when no defect was found.
	OK bool `json:"ok"`
	// HeadID and HeadHash identify the newest record checked.
	HeadID   int64  `json:"head_id"`
	HeadHash string `json:"head_hash"`
	// Signed is how many records carried a signature that verified.
	Signed int `json:"signed"`
	// SignaturesChecked tells whether a public key was available; without
	// one, signatures are not checked (Warnings says so).
	SignaturesChecked bool `json:"signatures_checked"`
	// CheckpointID and CheckpointHash are the newest head of all
	// checkpoint files (0 and "" without one).
	CheckpointID   int64  `json:"checkpoint_id,omitempty"`
	CheckpointHash string `json:"checkpoint_hash,omitempty"`
	// Checkpoints is the newest head of each checkpoint file checked
	// (audit.checkpoint, audit.checkpoint.<replica>), in file name order.
	Checkpoints []CheckpointHead `json:"checkpoints,omitempty"`
	// Warnings are findings that do not break the chain (no key, no
	// checkpoint, unverifiable checkpoint lines).
	Warnings []string `json:"warnings,omitempty"`
	// Broken is the first defect, nil when OK.
	Broken *Break `json:"broken,omitempty"`
	// Silences is how many silences were checked (hash, signature, no
	// deleted row; silences.go).
	Silences int `json:"silences,omitempty"`
}

// CheckpointHead is the newest head (record id and hash) of one
// checkpoint file in the key directory.
type CheckpointHead struct {
	File string `json:"file"`
	ID   int64  `json:"id"`
	Hash string `json:"hash"`
}

// VerifyOptions adds what lives outside the database to Verify.
type VerifyOptions struct {
	// PublicKey verifies record signatures; nil skips that check (with a
	// warning).
	PublicKey *auditkey.PublicKey
	// KeyDir is the directory of the checkpoint files (audit.checkpoint
	// and audit.checkpoint.<replica>, all read); "" skips the checkpoint
	// comparison (with a warning).
	KeyDir string
}

// Verify walks the audit chain without the outside checks; see
// VerifyWith.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	return s.VerifyWith(ctx, VerifyOptions{})
}

// VerifyWith walks the audit chain in id order and reports the first
// defect: content that does not match its hash (BreakEdited: the hash
// covers every field in version 2, and a version 1 record's event must
// agree with its dry_run flag), a missing row (BreakMissing: id gap,
// dangling first prev_hash, or a deleted tail seen through
// sqlite_sequence), a prev_hash that does not match the previous record
// (BreakLink), a signature that does not verify or a version 1 record
// after version 2 ones (BreakForged), and, against the checkpoint file, a
// chain shorter than a head recorded outside the database or a head whose
// hash changed (BreakTrimmed: a wipe, trimmed tail or reset sequence). A
// defect is reported in the VerifyReport, not as an error; err is only for
// failing to read.
func (s *Store) VerifyWith(ctx context.Context, o VerifyOptions) (VerifyReport, error) {
	rep := VerifyReport{SignaturesChecked: o.PublicKey != nil}
	// Read the sequence first: a record appended during the walk then
	// raises max(id) above it, never the reverse, so no false alarm.
	var seq sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT seq FROM `+s.seqTable()+` WHERE name = 'action_records'`).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return rep, fmt.Errorf("verify: read record sequence: %w", err)
	}
	// Every checkpoint file of the key directory: the shared
	// audit.checkpoint and one audit.checkpoint.<replica> per replica
	// (auditkey.NewReplicaCheckpoint). The chain is checked against each:
	// a hash any file recorded for an id must match, and the newest head
	// of all files bounds the chain's length.
	var cps []auditkey.CheckpointHeads
	if o.KeyDir != "" {
		cps, err = auditkey.ReadCheckpoints(o.KeyDir, o.PublicKey)
		if err != nil {
			return rep, fmt.Errorf("verify: %w", err)
		}
		bad, n := 0, 0
		for _, c := range cps {
			bad += c.Bad
			n += len(c.Heads)
		}
		if bad > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d checkpoint lines did not parse or verify and were ignored", bad))
		}
		if n == 0 {
			rep.Warnings = append(rep.Warnings, "no checkpoint outside the database yet: a wiped or trimmed chain cannot be told from a new one")
		}
	} else {
		rep.Warnings = append(rep.Warnings, "checkpoint not checked (no key directory)")
	}
	if o.PublicKey == nil {
		rep.Warnings = append(rep.Warnings, "signatures not checked (no audit public key)")
	}
	// Per file, the newest line per id (a file's later line for an id
	// wins, as with one file); across files every file's hash must match.
	type fileHead struct {
		file, hash string
	}
	headAt := map[int64][]fileHead{}
	var maxHead auditkey.Head
	maxFile := ""
	for _, c := range cps {
		last := map[int64]string{}
		for _, h := range c.Heads {
			last[h.ID] = h.Hash
		}
		for id, hash := range last {
			headAt[id] = append(headAt[id], fileHead{c.File, hash})
		}
		nh := c.Newest()
		if nh.ID > 0 {
			rep.Checkpoints = append(rep.Checkpoints, CheckpointHead{File: c.File, ID: nh.ID, Hash: nh.Hash})
		}
		if nh.ID > maxHead.ID {
			maxHead, maxFile = nh, c.File
		}
	}
	rep.CheckpointID, rep.CheckpointHash = maxHead.ID, maxHead.Hash

	// One statement reads one consistent snapshot (WAL).
	rows, err := s.db.QueryContext(ctx, `SELECT `+recordCols+` FROM action_records ORDER BY id`)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	defer rows.Close()
	var prev *action.Record
	sawV2 := false
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			// A value that cannot even be parsed was edited by hand.
			id := int64(1)
			if prev != nil {
				id = prev.ID + 1
			}
			rep.Broken = &Break{ID: id, Kind: BreakEdited, Detail: fmt.Sprintf("unreadable record after %d: %v", id-1, err)}
			return rep, nil
		}
		if b := checkLink(prev, &r); b != nil {
			rep.Broken = b
			return rep, nil
		}
		if got := RecordHash(r); got != r.Hash {
			rep.Broken = &Break{ID: r.ID, Kind: BreakEdited,
				Detail: fmt.Sprintf("record %d content does not match its hash (stored %.12s…, computed %.12s…)", r.ID, r.Hash, got)}
			return rep, nil
		}
		switch r.HashVersion {
		case action.HashV1:
			if sawV2 {
				rep.Broken = &Break{ID: r.ID, Kind: BreakForged,
					Detail: fmt.Sprintf("record %d claims hash version 1 after version 2 records: version 1 is only for records older than schema 3", r.ID)}
				return rep, nil
			}
			if (r.Event == action.EventDryRun) != r.DryRun || (r.Event != action.EventExecution && r.Event != action.EventDryRun &&
				r.Event != action.EventApproval && r.Event != action.EventRejection) {
				rep.Broken = &Break{ID: r.ID, Kind: BreakEdited,
					Detail: fmt.Sprintf("record %d event %q does not agree with its hashed dry_run=%t (relabelled)", r.ID, r.Event, r.DryRun)}
				return rep, nil
			}
		case action.HashV2:
			sawV2 = true
			if o.PublicKey != nil {
				if !o.PublicKey.Verify(r.Hash, r.Signature) {
					detail := fmt.Sprintf("record %d signature does not verify with the audit public key: it was not written by the daemon", r.ID)
					if r.Signature == "" {
						detail = fmt.Sprintf("record %d is not signed: it was not written by the daemon", r.ID)
					}
					rep.Broken = &Break{ID: r.ID, Kind: BreakForged, Detail: detail}
					return rep, nil
				}
				rep.Signed++
			}
		default:
			rep.Broken = &Break{ID: r.ID, Kind: BreakEdited, Detail: fmt.Sprintf("record %d has unknown hash version %d", r.ID, r.HashVersion)}
			return rep, nil
		}
		if r.Event == action.EventRefusal && strings.Contains(r.Message, Tampered) {
			rep.Broken = &Break{ID: r.ID, Kind: BreakUnapproved,
				Detail: fmt.Sprintf("record %d: the executor refused action %d because it was changed outside the daemon: %s", r.ID, r.ProposalID, r.Message)}
			return rep, nil
		}
		for _, want := range headAt[r.ID] {
			if want.hash != r.Hash {
				rep.Broken = &Break{ID: r.ID, Kind: BreakTrimmed,
					Detail: fmt.Sprintf("record %d has hash %.12s…, but the checkpoint outside the database (%s) recorded %.12s… for it: the chain was rewritten", r.ID, r.Hash, want.file, want.hash)}
				return rep, nil
			}
		}
		rep.Records++
		rep.HeadID, rep.HeadHash = r.ID, r.Hash
		prev = &r
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	if maxHead.ID > rep.HeadID {
		what := fmt.Sprintf("records %d..%d are gone", rep.HeadID+1, maxHead.ID)
		if rep.HeadID == 0 {
			what = "every record is gone (the chain was wiped)"
		}
		rep.Broken = &Break{ID: rep.HeadID + 1, Kind: BreakTrimmed,
			Detail: fmt.Sprintf("the checkpoint outside the database (%s) says record %d (hash %.12s…) existed at %s, but the database ends at %d: %s",
				maxFile, maxHead.ID, maxHead.Hash, maxHead.At.Format(time.RFC3339), rep.HeadID, what)}
		return rep, nil
	}
	if seq.Valid && seq.Int64 > rep.HeadID {
		rep.Broken = &Break{ID: rep.HeadID + 1, Kind: BreakMissing,
			Detail: fmt.Sprintf("records %d..%d were issued but are gone (deleted tail)", rep.HeadID+1, seq.Int64)}
		return rep, nil
	}
	if b, err := s.checkProposals(ctx); err != nil {
		return rep, err
	} else if b != nil {
		rep.Broken = b
		return rep, nil
	}
	// Silences are audited too (silences.go).
	b, n, err := s.VerifySilences(ctx, o.PublicKey)
	rep.Silences = n
	if err != nil {
		return rep, err
	} else if b != nil {
		rep.Broken = b
		return rep, nil
	}
	rep.OK = true
	return rep, nil
}

// checkProposals finds a proposal whose status says a person approved it
// (approved, executing, completed, failed) while the chain holds no
// approval record for it, or whose params differ from what every approval
// record bound (action digest). Such a row was changed outside the daemon.
// Proposals approved before schema version 3 (approvals without a digest)
// only need an approval record.
func (s *Store) checkProposals(ctx context.Context) (*Break, error) {
	ps, err := s.queryProposals(ctx, `SELECT `+proposalCols+` FROM action_proposals
WHERE status IN ('approved', 'executing', 'completed', 'failed') ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	for _, p := range ps {
		apps, err := s.Approvals(ctx, p.ID)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		if len(apps) == 0 {
			return &Break{ID: 0, Kind: BreakUnapproved,
				Detail: fmt.Sprintf("action %d is %s but the audit trail holds no approval for it: its status was changed outside the daemon", p.ID, p.Status)}, nil
		}
		digest := action.ActionDigest(p.ActionType, p.Params)
		for _, a := range apps {
			if a.ActionDigest != "" && a.ActionDigest != digest {
				return &Break{ID: a.ID, Kind: BreakUnapproved,
					Detail: fmt.Sprintf("action %d's type or params are not what record %d approved: the proposal was edited after its approval", p.ID, a.ID)}, nil
			}
		}
	}
	return nil, nil
}

// checkLink checks r against its predecessor prev (nil for the first).
func checkLink(prev, r *action.Record) *Break {
	if prev == nil {
		if r.PrevHash != "" {
			return &Break{ID: r.ID, Kind: BreakMissing,
				Detail: fmt.Sprintf("first record %d links to a predecessor (%.12s…) that is gone", r.ID, r.PrevHash)}
		}
		if r.ID != 1 {
			return &Break{ID: r.ID, Kind: BreakMissing,
				Detail: fmt.Sprintf("records 1..%d are missing", r.ID-1)}
		}
		return nil
	}
	if r.ID != prev.ID+1 {
		return &Break{ID: r.ID, Kind: BreakMissing,
			Detail: fmt.Sprintf("records %d..%d are missing between %d and %d", prev.ID+1, r.ID-1, prev.ID, r.ID)}
	}
	if r.PrevHash != prev.Hash {
		return &Break{ID: r.ID, Kind: BreakLink,
			Detail: fmt.Sprintf("record %d does not link to record %d (prev_hash %.12s…, previous hash %.12s…): reordered or replaced", r.ID, prev.ID, r.PrevHash, prev.Hash)}
	}
	return nil
}
