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
	"time"

	"github.com/tikvops/operator/internal/action"
)

// recordCols is the column list scanRecord reads, in order.
const recordCols = `id, proposal_id, ticket_id, action_type, params, dry_run, success, message,
	approved_by, executed_by, started_at, finished_at, requests, state_before,
	state_after, prev_hash, hash, event`

func scanRecord(sc scanner) (action.Record, error) {
	var (
		r                               action.Record
		params, requests, before, after sql.NullString
		startedAt, finishedAt           timeCol
		dryRun, success                 int64
	)
	err := sc.Scan(&r.ID, &r.ProposalID, &r.TicketID, &r.ActionType, &params, &dryRun, &success,
		&r.Message, &r.ApprovedBy, &r.ExecutedBy, &startedAt, &finishedAt, &requests, &before,
		&after, &r.PrevHash, &r.Hash, &r.Event)
	if err != nil {
		return action.Record{}, err
	}
	r.Params, r.Requests = jsonCol(params), jsonCol(requests)
	r.StateBefore, r.StateAfter = jsonCol(before), jsonCol(after)
	r.DryRun, r.Success = dryRun != 0, success != 0
	r.StartedAt, r.FinishedAt = startedAt.t, finishedAt.t
	return r, nil
}

// RecordHash returns the hex SHA-256 that chains rec to its predecessor:
//
//	hash = lowercase hex of SHA-256(
//	    "operator.action_record.v1\n" ||
//	    field("prev_hash", rec.PrevHash) ||
//	    field("id", …) || field("proposal_id", …) || field("ticket_id", …) ||
//	    field("action_type", …) || field("params", …) || field("dry_run", …) ||
//	    field("success", …) || field("message", …) || field("approved_by", …) ||
//	    field("executed_by", …) || field("started_at", …) ||
//	    field("finished_at", …) || field("requests", …) ||
//	    field("state_before", …) || field("state_after", …))
//
//	field(name, value) = name || "=" || decimal byte length of value || ":" || value || "\n"
//
// Values: integers in base 10; booleans "true" or "false"; times in UTC as
// "2006-01-02T15:04:05.000000000Z" ("" for the zero time); JSON fields as
// their stored bytes, verbatim ("" for none); strings as their UTF-8
// bytes. The length prefix makes the encoding unambiguous whatever the
// values contain. Every stored column except hash itself is covered,
// including id, so moving a record to another id breaks its hash.
//
// The event column (schema version 2) is covered only when it is
// action.EventApproval or action.EventRejection: then
// field("event", rec.Event) follows field("state_after", …). For
// "execution" and "dry_run" (and "") it is left out, so records written
// before events existed keep their hashes; for them the event is implied
// by dry_run, which is covered. Turning an approval or rejection into
// another event therefore changes the hash either way.
func RecordHash(rec action.Record) string {
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
		out, err = appendRecord(ctx, tx, p, rec, rec.FinishedAt)
		return err
	})
	if err != nil {
		return action.Record{}, fmt.Errorf("append record for action %d: %w", rec.ProposalID, err)
	}
	return out, nil
}

// appendRecord completes rec from proposal p, links it to the newest
// record and inserts it, inside tx.
func appendRecord(ctx context.Context, tx *sql.Tx, p action.Proposal, rec action.Record, now time.Time) (action.Record, error) {
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
	case rec.Event != action.EventExecution && rec.Event != action.EventDryRun &&
		rec.Event != action.EventApproval && rec.Event != action.EventRejection:
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
	err = tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'action_records'`).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return action.Record{}, fmt.Errorf("read record sequence: %w", err)
	}
	rec.ID = max(lastID, seq.Int64) + 1
	rec.PrevHash = lastHash
	rec.Hash = RecordHash(rec)
	_, err = tx.ExecContext(ctx, `INSERT INTO action_records (`+recordCols+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		rec.ID, rec.ProposalID, rec.TicketID, rec.ActionType, args[0], rec.DryRun, rec.Success,
		rec.Message, rec.ApprovedBy, rec.ExecutedBy, fmtTime(rec.StartedAt), fmtTime(rec.FinishedAt),
		args[1], args[2], args[3], rec.PrevHash, rec.Hash, rec.Event)
	if err != nil {
		return action.Record{}, fmt.Errorf("insert record: %w", err)
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
	// HeadID and HeadHash identify the newest record checked; write them
	// down elsewhere to detect a later rewrite of the whole chain.
	HeadID   int64  `json:"head_id"`
	HeadHash string `json:"head_hash"`
	// Broken is the first defect, nil when OK.
	Broken *Break `json:"broken,omitempty"`
}

// Verify walks the audit chain in id order and reports the first broken
// record: content that does not match its hash (BreakEdited), a missing
// row (BreakMissing: id gap, dangling first prev_hash, or deleted tail
// detected through sqlite_sequence), or a prev_hash that does not match
// the previous record (BreakLink, e.g. a reordered chain). A defect is
// reported in the VerifyReport, not as an error; err is only for failing
// to read. A rewrite of the entire chain with recomputed hashes is not
// detectable from inside the file; compare HeadHash with a copy kept
// elsewhere for that.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	var rep VerifyReport
	// Read the sequence first: a record appended during the walk then
	// raises max(id) above it, never the reverse, so no false alarm.
	var seq sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'action_records'`).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return rep, fmt.Errorf("verify: read record sequence: %w", err)
	}
	// One statement reads one consistent snapshot (WAL).
	rows, err := s.db.QueryContext(ctx, `SELECT `+recordCols+` FROM action_records ORDER BY id`)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	defer rows.Close()
	var prev *action.Record
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
		rep.Records++
		rep.HeadID, rep.HeadHash = r.ID, r.Hash
		prev = &r
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	if seq.Valid && seq.Int64 > rep.HeadID {
		rep.Broken = &Break{ID: rep.HeadID + 1, Kind: BreakMissing,
			Detail: fmt.Sprintf("records %d..%d were issued but are gone (deleted tail)", rep.HeadID+1, seq.Int64)}
		return rep, nil
	}
	rep.OK = true
	return rep, nil
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
