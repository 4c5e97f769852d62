package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// chain writes n audit records (one dry run each on fresh proposals) and
// returns them in id order.
func chain(t *testing.T, s *Store, n int) []action.Record {
	t.Helper()
	ctx := context.Background()
	var out []action.Record
	for i := 0; i < n; i++ {
		id := proposed(t, s, fmt.Sprintf("store:%d", i+1))
		rec, err := s.RecordDryRun(ctx, id, action.Record{
			Success: true, Message: fmt.Sprintf("dry run %d", i+1), ExecutedBy: "carol",
			Requests: json.RawMessage(`[{"method":"POST","path":"/pd/api/v1/operators"}]`),
		}, t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func TestRecordChainLinks(t *testing.T) { forEachBackend(t, testRecordChainLinks) }

func testRecordChainLinks(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	recs := chain(t, s, 4)
	for i, r := range recs {
		if r.ID != int64(i+1) {
			t.Errorf("record %d has id %d", i, r.ID)
		}
		if i > 0 && r.PrevHash != recs[i-1].Hash {
			t.Errorf("record %d prev_hash %s, want %s", r.ID, r.PrevHash, recs[i-1].Hash)
		}
		if len(r.Hash) != 64 {
			t.Errorf("record %d hash %q is not hex sha256", r.ID, r.Hash)
		}
	}
	rep, err := s.Verify(context.Background())
	if err != nil || !rep.OK || rep.Records != 4 || rep.HeadID != 4 || rep.HeadHash != recs[3].Hash {
		t.Errorf("Verify = %+v, %v", rep, err)
	}
}

func TestAppendRecordStandalone(t *testing.T) { forEachBackend(t, testAppendRecordStandalone) }

func testAppendRecordStandalone(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	id := proposed(t, s, "store:4")
	rec, err := s.AppendRecord(ctx, action.Record{ProposalID: id, Message: "note", FinishedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if rec.TicketID == 0 || rec.ActionType != "remove_store" || rec.Hash != RecordHash(rec) {
		t.Errorf("appended = %+v", rec)
	}
	if _, err := s.AppendRecord(ctx, action.Record{ProposalID: 999, FinishedAt: t0}); err == nil {
		t.Error("record for an unknown proposal accepted")
	}
}

// TestRecordHashVector pins the canonical encoding: changing it breaks
// every stored chain.
func TestRecordHashVector(t *testing.T) {
	r := action.Record{
		ID: 7, ProposalID: 3, TicketID: 2, ActionType: "transfer_leader",
		Params: json.RawMessage(`{"region_id":12,"to_store_id":5}`), DryRun: false, Success: true,
		Message: "ok", ApprovedBy: "alice", ExecutedBy: "host:1",
		StartedAt: t0, FinishedAt: t0.Add(1500 * time.Millisecond),
		Requests: json.RawMessage(`[]`), StateBefore: json.RawMessage(`{"a":1}`),
		PrevHash: strings.Repeat("ab", 32), HashVersion: action.HashV1,
	}
	got := RecordHash(r)
	if len(got) != 64 {
		t.Fatalf("hash %q", got)
	}
	// Each field matters.
	mut := []func(*action.Record){
		func(r *action.Record) { r.ID++ },
		func(r *action.Record) { r.ProposalID++ },
		func(r *action.Record) { r.TicketID++ },
		func(r *action.Record) { r.ActionType += "x" },
		func(r *action.Record) { r.Params = json.RawMessage(`{"region_id":13,"to_store_id":5}`) },
		func(r *action.Record) { r.DryRun = true },
		func(r *action.Record) { r.Success = false },
		func(r *action.Record) { r.Message = "ok " },
		func(r *action.Record) { r.ApprovedBy = "mallory" },
		func(r *action.Record) { r.ExecutedBy = "" },
		func(r *action.Record) { r.StartedAt = r.StartedAt.Add(time.Nanosecond) },
		func(r *action.Record) { r.FinishedAt = time.Time{} },
		func(r *action.Record) { r.Requests = nil },
		func(r *action.Record) { r.StateBefore = json.RawMessage(`{"a":2}`) },
		func(r *action.Record) { r.StateAfter = json.RawMessage(`{}`) },
		func(r *action.Record) { r.PrevHash = "" },
		// Moving bytes between adjacent fields must change the hash.
		func(r *action.Record) { r.Message, r.ApprovedBy = "oka", "lice" },
	}
	for i, m := range mut {
		c := r
		m(&c)
		if RecordHash(c) == got {
			t.Errorf("mutation %d does not change the hash", i)
		}
	}
	// Same instant in another zone hashes the same (stored in UTC).
	c := r
	c.StartedAt = r.StartedAt.In(time.FixedZone("X", 3600))
	if RecordHash(c) != got {
		t.Error("hash depends on the time zone")
	}
	// The documented encoding, written out by hand.
	canonical := "operator.action_record.v1\n" +
		"prev_hash=64:" + strings.Repeat("ab", 32) + "\n" +
		"id=1:7\n" +
		"proposal_id=1:3\n" +
		"ticket_id=1:2\n" +
		"action_type=15:transfer_leader\n" +
		"params=32:{\"region_id\":12,\"to_store_id\":5}\n" +
		"dry_run=5:false\n" +
		"success=4:true\n" +
		"message=2:ok\n" +
		"approved_by=5:alice\n" +
		"executed_by=6:host:1\n" +
		"started_at=30:2026-03-01T12:00:00.000000000Z\n" +
		"finished_at=30:2026-03-01T12:00:01.500000000Z\n" +
		"requests=2:[]\n" +
		"state_before=7:{\"a\":1}\n" +
		"state_after=0:\n"
	sum := sha256.Sum256([]byte(canonical))
	if want := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("RecordHash = %s, want %s (the canonical encoding changed?)", got, want)
	}
	// Golden value, so a change to the test's literal is noticed too.
	const golden = "67aaa86f44567b4c19f64e6d86ac1b97e09d3d163e9d484ddaaf3edfb1c5f08b"
	if got != golden {
		t.Errorf("RecordHash = %s, want golden %s", got, golden)
	}

	// Events "execution" and "dry_run" are implied by dry_run and left
	// out, so records written before events existed keep their hashes.
	for _, ev := range []string{"", action.EventExecution, action.EventDryRun} {
		c := r
		c.Event = ev
		if RecordHash(c) != golden {
			t.Errorf("event %q changes the hash of a pre-event record", ev)
		}
	}
	// Approvals and rejections append field("event", …).
	for _, ev := range []string{action.EventApproval, action.EventRejection} {
		c := r
		c.Event = ev
		sum := sha256.Sum256([]byte(canonical + "event=" + fmt.Sprint(len(ev)) + ":" + ev + "\n"))
		if got, want := RecordHash(c), hex.EncodeToString(sum[:]); got != want {
			t.Errorf("RecordHash(event %s) = %s, want %s", ev, got, want)
		}
	}
}

// TestPreEventChainStillVerifies builds a schema-version-1 file (before
// record events) with an execution and a dry-run record hashed the v1 way,
// opens it with this binary (migrating to the current version) and checks
// that the old chain still verifies, the events were filled from dry_run,
// the table is still append-only and new approval/rejection records chain
// onto it.
func TestPreEventChainStillVerifies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	db := rawDB(t, path)
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	exec(createSchemaMigrations)
	exec(schemaV1)
	exec(`INSERT INTO schema_migrations(version, name) VALUES (1, 'v1')`)
	ts := fmtTime(t0)
	exec(`INSERT INTO tickets (key, invariant, subject, severity, status, first_seen, last_seen, updated_at)
VALUES ('store_down/store:4', 'store_down', 'store:4', 'critical', 'diagnosed', ?, ?, ?)`, ts, ts, ts)
	for i := 0; i < 3; i++ {
		exec(`INSERT INTO action_proposals (ticket_id, action_type, params, status, proposed_at, expires_at, updated_at)
VALUES (1, 'remove_store', '{"store_id":4}', 'proposed', ?, ?, ?)`, ts, fmtTime(t0.Add(time.Hour)), ts)
	}
	old := []action.Record{
		{ID: 1, ProposalID: 1, TicketID: 1, ActionType: "remove_store", Params: json.RawMessage(`{"store_id":4}`),
			Success: true, Message: "store 4 removed", ApprovedBy: "alice", ExecutedBy: "host:1",
			StartedAt: t0, FinishedAt: t0.Add(time.Second), Requests: json.RawMessage(`[]`), HashVersion: action.HashV1},
		{ID: 2, ProposalID: 2, TicketID: 1, ActionType: "remove_store", Params: json.RawMessage(`{"store_id":4}`),
			DryRun: true, Success: true, Message: "valid", ExecutedBy: "carol",
			StartedAt: t0.Add(time.Minute), FinishedAt: t0.Add(time.Minute), HashVersion: action.HashV1},
	}
	for i := range old {
		if i > 0 {
			old[i].PrevHash = old[i-1].Hash
		}
		old[i].Hash = RecordHash(old[i]) // Event "": the v1 encoding (pinned by TestRecordHashVector)
		r := old[i]
		exec(`INSERT INTO action_records (id, proposal_id, ticket_id, action_type, params, dry_run, success, message,
	approved_by, executed_by, started_at, finished_at, requests, state_before, state_after, prev_hash, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)`,
			r.ID, r.ProposalID, r.TicketID, r.ActionType, string(r.Params), r.DryRun, r.Success, r.Message,
			r.ApprovedBy, r.ExecutedBy, fmtTime(r.StartedAt), fmtTime(r.FinishedAt), nullJSON(r.Requests), r.PrevHash, r.Hash)
	}
	db.Close()

	s := openAt(t, path)
	if v, err := s.Version(ctx); err != nil || v != SchemaVersion {
		t.Fatalf("version after open = %d, %v; want %d", v, err, SchemaVersion)
	}
	rep, err := s.Verify(ctx)
	if err != nil || !rep.OK || rep.Records != 2 || rep.HeadHash != old[1].Hash {
		t.Fatalf("Verify of the pre-event chain = %+v, %v", rep, err)
	}
	recs, _ := s.Records(ctx, RecordFilter{})
	if len(recs) != 2 || recs[0].Event != action.EventDryRun || recs[1].Event != action.EventExecution ||
		!recs[1].IsExecution() || recs[0].IsExecution() {
		t.Errorf("migrated records = %+v", recs)
	}
	if n, _ := s.ExecutionsSince(ctx, t0); n != 1 {
		t.Errorf("ExecutionsSince after migration = %d, want 1", n)
	}
	// The migration recreated the append-only trigger.
	if _, err := s.db.ExecContext(ctx, `UPDATE action_records SET event = 'approval' WHERE id = 1`); err == nil ||
		!strings.Contains(err.Error(), "append-only") {
		t.Errorf("UPDATE after migration: %v", err)
	}
	if _, err := s.Approve(ctx, 2, "alice", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reject(ctx, 3, "bob", "not now", t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Verify(ctx)
	if err != nil || !rep.OK || rep.Records != 4 {
		t.Errorf("Verify after approval and rejection = %+v, %v", rep, err)
	}
	recs, _ = s.Records(ctx, RecordFilter{Limit: 2})
	if len(recs) != 2 || recs[0].Event != action.EventRejection || recs[1].Event != action.EventApproval ||
		recs[1].PrevHash != old[1].Hash || recs[0].PrevHash != recs[1].Hash {
		t.Errorf("new records = %+v", recs)
	}
}

func nullJSON(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	return string(raw)
}

// TestVerifyDetectsApprovalTampering: who approved or rejected what is as
// tamper-evident as an execution.
func TestVerifyDetectsApprovalTampering(t *testing.T) {
	forEachBackend(t, testVerifyDetectsApprovalTampering)
}

func testVerifyDetectsApprovalTampering(t *testing.T, be backend) {
	cases := []struct {
		name string
		stmt string
		id   int64
	}{
		{"approval turned into execution", `UPDATE action_records SET event = 'execution' WHERE id = 1`, 1},
		{"approval turned into rejection", `UPDATE action_records SET event = 'rejection' WHERE id = 1`, 1},
		{"approver edited", `UPDATE action_records SET approved_by = 'mallory' WHERE id = 1`, 1},
		{"approval message edited", `UPDATE action_records SET message = 'approved by mallory' WHERE id = 1`, 1},
		{"rejection turned into approval", `UPDATE action_records SET event = 'approval', success = 1 WHERE id = 2`, 2},
		{"rejection reason edited", `UPDATE action_records SET message = 'rejected by bob: fine' WHERE id = 2`, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, path := be.openTemp(t)
			ctx := context.Background()
			a, b := proposed(t, s, "store:1"), proposed(t, s, "store:2")
			if _, err := s.Approve(ctx, a, "alice", t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Reject(ctx, b, "bob", "store 2 is coming back", t0.Add(2*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if rep, err := s.Verify(ctx); err != nil || !rep.OK || rep.Records != 2 {
				t.Fatalf("Verify before tampering = %+v, %v", rep, err)
			}
			be.tamper(t, path, c.stmt)
			rep, err := s.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Broken == nil || rep.Broken.Kind != BreakEdited || rep.Broken.ID != c.id {
				t.Errorf("Verify after %s = %+v (broken %+v), want edited at %d", c.name, rep, rep.Broken, c.id)
			}
		})
	}
}

func TestAuditTriggersRefuseUpdateDelete(t *testing.T) {
	forEachBackend(t, testAuditTriggersRefuseUpdateDelete)
}

func testAuditTriggersRefuseUpdateDelete(t *testing.T, be backend) {
	s, path := be.openTemp(t)
	chain(t, s, 2)
	ctx := context.Background()
	db := be.rawDB(t, path)
	for _, q := range []string{
		`UPDATE action_records SET message = 'nothing happened' WHERE id = 1`,
		`UPDATE action_records SET success = 1`,
		`DELETE FROM action_records WHERE id = 2`,
		`DELETE FROM action_records`,
	} {
		_, err := db.ExecContext(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only trigger to refuse", q, err)
		}
		// Through the store's own handle too.
		if _, err := s.db.ExecContext(ctx, q); err == nil {
			t.Errorf("%s accepted through the store handle", q)
		}
	}
	recs, _ := s.Records(ctx, RecordFilter{})
	if len(recs) != 2 || recs[1].Message != "dry run 1" {
		t.Errorf("records changed: %+v", recs)
	}
	if rep, _ := s.Verify(ctx); !rep.OK {
		t.Errorf("Verify after refused tampering = %+v", rep)
	}
}

// tamper runs statements with the append-only triggers dropped, as an
// attacker with write access to the file could.
func tamper(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db := rawDB(t, path)
	ctx := context.Background()
	all := append([]string{`DROP TRIGGER action_records_no_update`, `DROP TRIGGER action_records_no_delete`}, stmts...)
	for _, q := range all {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("tamper %q: %v", q, err)
		}
	}
}

func TestVerifyDetectsTampering(t *testing.T) { forEachBackend(t, testVerifyDetectsTampering) }

func testVerifyDetectsTampering(t *testing.T, be backend) {
	cases := []struct {
		name   string
		stmts  []string
		kind   BreakKind
		id     int64
		detail string
	}{
		{"edited message", []string{`UPDATE action_records SET message = 'nothing to see' WHERE id = 3`}, BreakEdited, 3, "does not match its hash"},
		{"edited success flag", []string{`UPDATE action_records SET success = 0 WHERE id = 5`}, BreakEdited, 5, "does not match its hash"},
		{"edited approver", []string{`UPDATE action_records SET approved_by = 'root' WHERE id = 1`}, BreakEdited, 1, "does not match its hash"},
		{"deleted middle row", []string{`DELETE FROM action_records WHERE id = 3`}, BreakMissing, 4, "records 3..3 are missing"},
		{"deleted first row", []string{`DELETE FROM action_records WHERE id = 1`}, BreakMissing, 2, "links to a predecessor"},
		{"deleted tail", []string{`DELETE FROM action_records WHERE id >= 4`}, BreakMissing, 4, "deleted tail"},
		{"reordered rows", []string{
			// Swap records 2 and 3 wholesale (hashes included).
			`UPDATE action_records SET id = 1000 WHERE id = 2`,
			`UPDATE action_records SET id = 2 WHERE id = 3`,
			`UPDATE action_records SET id = 3 WHERE id = 1000`,
		}, BreakLink, 2, "reordered"},
		{"unparseable time", []string{`UPDATE action_records SET started_at = 'yesterday' WHERE id = 2`}, BreakEdited, 2, "unreadable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, path := be.openTemp(t)
			chain(t, s, 5)
			ctx := context.Background()
			if rep, err := s.Verify(ctx); err != nil || !rep.OK {
				t.Fatalf("Verify before tampering = %+v, %v", rep, err)
			}
			be.tamper(t, path, c.stmts...)
			rep, err := s.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Broken == nil {
				t.Fatalf("Verify did not detect %s: %+v", c.name, rep)
			}
			if rep.Broken.Kind != c.kind || rep.Broken.ID != c.id || !strings.Contains(rep.Broken.Detail, c.detail) {
				t.Errorf("Broken = %+v, want kind %s at %d with %q", *rep.Broken, c.kind, c.id, c.detail)
			}
		})
	}
}

// TestAppendAfterDeletedTail: a record appended after the tail was deleted
// gets a fresh id (from sqlite_sequence), so the gap stays visible.
func TestAppendAfterDeletedTail(t *testing.T) { forEachBackend(t, testAppendAfterDeletedTail) }

func testAppendAfterDeletedTail(t *testing.T, be backend) {
	s, path := be.openTemp(t)
	chain(t, s, 3)
	be.tamper(t, path, `DELETE FROM action_records WHERE id = 3`)
	ctx := context.Background()
	id := proposed(t, s, "store:new")
	rec, err := s.RecordDryRun(ctx, id, action.Record{Success: true}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != 4 {
		t.Errorf("new record id = %d, want 4", rec.ID)
	}
	rep, _ := s.Verify(ctx)
	if rep.OK || rep.Broken.Kind != BreakMissing || rep.Broken.ID != 4 {
		t.Errorf("Verify = %+v", rep)
	}
}
