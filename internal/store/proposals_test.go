package store

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

func TestApproveClaimFinish(t *testing.T) { forEachBackend(t, testApproveClaimFinish) }

func testApproveClaimFinish(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	id := proposed(t, s, "store:4")

	if p, err := s.Claim(ctx, "exec:1", t0); err != nil || p != nil {
		t.Fatalf("Claim with nothing approved = %v, %v", p, err)
	}
	p, err := s.Approve(ctx, id, "alice", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != action.Approved || p.ApprovedBy != "alice" || !p.ApprovedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("approved = %+v", p)
	}
	// The approval is in the audit trail, written with the status change.
	appr, _ := s.Records(ctx, RecordFilter{ProposalID: id})
	if len(appr) != 1 || appr[0].ID != 1 || appr[0].Event != action.EventApproval || appr[0].DryRun ||
		!appr[0].Success || appr[0].ApprovedBy != "alice" || appr[0].ExecutedBy != "" ||
		appr[0].Message != "approved by alice" || appr[0].ActionType != "remove_store" ||
		!appr[0].FinishedAt.Equal(t0.Add(time.Minute)) || appr[0].Hash != RecordHash(appr[0]) || appr[0].IsExecution() {
		t.Errorf("approval records = %+v", appr)
	}
	if n, _ := s.ExecutionsSince(ctx, t0); n != 0 {
		t.Errorf("approval counted as an execution: %d", n)
	}
	c, err := s.Claim(ctx, "host:42", t0.Add(2*time.Minute))
	if err != nil || c == nil || c.ID != id {
		t.Fatalf("Claim = %v, %v", c, err)
	}
	if c.Status != action.Executing || c.ExecutedBy != "host:42" || !c.ExecutedAt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("claimed = %+v", c)
	}
	if ex, _ := s.Executing(ctx); len(ex) != 1 || ex[0].ID != id {
		t.Errorf("Executing = %+v", ex)
	}
	if again, _ := s.Claim(ctx, "host:43", t0.Add(2*time.Minute)); again != nil {
		t.Errorf("claimed twice: %+v", again)
	}

	rec, err := s.Finish(ctx, id, action.Completed, "store 4 removed", action.Record{
		Requests:    json.RawMessage(`[{"method":"DELETE","path":"/pd/api/v1/store/4"}]`),
		StateBefore: json.RawMessage(`{"state":"Down"}`), StateAfter: json.RawMessage(`{"state":"Offline"}`),
	}, t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != 2 || rec.PrevHash != appr[0].Hash || rec.Hash != RecordHash(rec) || !rec.Success || rec.DryRun ||
		rec.Event != action.EventExecution || !rec.IsExecution() ||
		rec.ApprovedBy != "alice" || rec.ExecutedBy != "host:42" || rec.ActionType != "remove_store" ||
		string(rec.Params) != `{"store_id":4}` || rec.Message != "store 4 removed" ||
		!rec.StartedAt.Equal(t0.Add(2*time.Minute)) || !rec.FinishedAt.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("record = %+v", rec)
	}
	p, _ = s.Proposal(ctx, id)
	if p.Status != action.Completed || p.Result != "store 4 removed" || p.FinishedAt == nil {
		t.Errorf("finished proposal = %+v", p)
	}
	stored, _ := s.Records(ctx, RecordFilter{ProposalID: id})
	if len(stored) != 2 || stored[0].Hash != rec.Hash || string(stored[0].StateAfter) != `{"state":"Offline"}` ||
		stored[0].Event != action.EventExecution || stored[1].Event != action.EventApproval {
		t.Errorf("stored records = %+v", stored)
	}
	if n, _ := s.ExecutionsSince(ctx, t0); n != 1 {
		t.Errorf("ExecutionsSince = %d, want 1", n)
	}
	if n, _ := s.ExecutionsSince(ctx, t0.Add(150*time.Second)); n != 0 {
		t.Errorf("ExecutionsSince after start = %d, want 0", n)
	}

	// Finish twice: refused, and no second record.
	var te *action.ErrTransition
	if _, err := s.Finish(ctx, id, action.Failed, "x", action.Record{}, t0); !errors.As(err, &te) || te.From != action.Completed {
		t.Errorf("second Finish: %v", err)
	}
	if all, _ := s.Records(ctx, RecordFilter{}); len(all) != 2 {
		t.Errorf("refused Finish wrote a record: %d records, want 2 (approval, execution)", len(all))
	}
}

func TestFinishValidation(t *testing.T) { forEachBackend(t, testFinishValidation) }

func testFinishValidation(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	id := proposed(t, s, "store:4")
	s.Approve(ctx, id, "alice", t0)
	s.ClaimID(ctx, id, "exec", t0)
	if _, err := s.Finish(ctx, id, action.Approved, "", action.Record{}, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Finish to approved: %v", err)
	}
	if _, err := s.Finish(ctx, id, action.Failed, "x", action.Record{StateBefore: json.RawMessage(`{`)}, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Finish with bad JSON: %v", err)
	}
	// The bad record rolled the status change back: still executing.
	if p, _ := s.Proposal(ctx, id); p.Status != action.Executing {
		t.Errorf("status after refused Finish = %s, want executing", p.Status)
	}
	rec, err := s.Finish(ctx, id, action.Failed, "interrupted; outcome unknown", action.Record{}, t0.Add(time.Minute))
	if err != nil || rec.Success || rec.Message != "interrupted; outcome unknown" {
		t.Errorf("Finish failed: %+v, %v", rec, err)
	}
}

func TestApproveRefusals(t *testing.T) { forEachBackend(t, testApproveRefusals) }

func testApproveRefusals(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	var te *action.ErrTransition

	// Expired: approve after expires_at moves it to expired and says so.
	id := proposed(t, s, "store:1")
	p, err := s.Approve(ctx, id, "alice", t0.Add(time.Hour+time.Second))
	if !errors.Is(err, ErrExpired) || p.Status != action.Expired {
		t.Fatalf("approve expired: %+v, %v", p, err)
	}
	if got, _ := s.Proposal(ctx, id); got.Status != action.Expired || got.ApprovedBy != "" {
		t.Errorf("stored after expired approve = %+v", got)
	}
	if recs, _ := s.Records(ctx, RecordFilter{ProposalID: id}); len(recs) != 0 {
		t.Errorf("expired approve wrote records: %+v", recs)
	}
	if _, err := s.Approve(ctx, id, "alice", t0); !errors.As(err, &te) || te.From != action.Expired {
		t.Errorf("approve expired again: %v", err)
	}

	// Rejected: needs a reason; cannot then be approved.
	id = proposed(t, s, "store:2")
	if _, err := s.Reject(ctx, id, "bob", "", t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("reject without reason: %v", err)
	}
	p, err = s.Reject(ctx, id, "bob", "store 2 is coming back", t0.Add(time.Minute))
	if err != nil || p.Status != action.Rejected || p.RejectedBy != "bob" || p.RejectionReason != "store 2 is coming back" || p.RejectedAt == nil {
		t.Fatalf("reject: %+v, %v", p, err)
	}
	rej, _ := s.Records(ctx, RecordFilter{ProposalID: id})
	if len(rej) != 1 || rej[0].Event != action.EventRejection || rej[0].Success || rej[0].DryRun ||
		rej[0].Message != "rejected by bob: store 2 is coming back" || rej[0].ApprovedBy != "" ||
		!rej[0].FinishedAt.Equal(t0.Add(time.Minute)) || rej[0].IsExecution() {
		t.Errorf("rejection records = %+v", rej)
	}
	_, err = s.Approve(ctx, id, "alice", t0)
	if !errors.As(err, &te) || te.From != action.Rejected || te.To != action.Approved || te.ID != id {
		t.Errorf("approve rejected: %v", err)
	}
	if _, err := s.Approve(ctx, 999, "alice", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("approve unknown: %v", err)
	}
	if _, err := s.Approve(ctx, id, "", t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("approve without approver: %v", err)
	}
	// Refused approvals and rejections wrote nothing more: only the one
	// rejection record.
	if all, _ := s.Records(ctx, RecordFilter{}); len(all) != 1 {
		t.Errorf("records after refusals = %+v, want the rejection only", all)
	}
	if rep, _ := s.Verify(ctx); !rep.OK || rep.Records != 1 {
		t.Errorf("Verify = %+v", rep)
	}
	// ClaimID of a non-approved proposal.
	if _, err := s.ClaimID(ctx, id, "exec", t0); !errors.As(err, &te) || te.To != action.Executing {
		t.Errorf("ClaimID rejected: %v", err)
	}
}

func TestDryRunThenApprove(t *testing.T) { forEachBackend(t, testDryRunThenApprove) }

func testDryRunThenApprove(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	id := proposed(t, s, "store:4")
	for i := 0; i < 2; i++ { // dry_run -> dry_run is allowed
		rec, err := s.RecordDryRun(ctx, id, action.Record{
			Success: true, Message: "valid; would send 1 request", ExecutedBy: "carol",
			Requests: json.RawMessage(`[{"method":"DELETE","path":"/pd/api/v1/store/4"}]`),
		}, t0.Add(time.Duration(i+1)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if !rec.DryRun || rec.Event != action.EventDryRun || rec.ID != int64(i+1) {
			t.Errorf("dry-run record = %+v", rec)
		}
	}
	if p, _ := s.Proposal(ctx, id); p.Status != action.DryRun {
		t.Errorf("status after dry run = %s", p.Status)
	}
	if n, _ := s.ExecutionsSince(ctx, t0); n != 0 {
		t.Errorf("dry runs counted as executions: %d", n)
	}
	if _, err := s.Approve(ctx, id, "alice", t0.Add(5*time.Minute)); err != nil {
		t.Fatalf("approve after dry run: %v", err)
	}
	var te *action.ErrTransition
	if _, err := s.RecordDryRun(ctx, id, action.Record{}, t0); !errors.As(err, &te) {
		t.Errorf("dry run of approved: %v", err)
	}
	rep, _ := s.Verify(ctx)
	if !rep.OK || rep.Records != 3 { // two dry runs, one approval
		t.Errorf("Verify = %+v", rep)
	}
	if n, _ := s.ExecutionsSince(ctx, t0); n != 0 {
		t.Errorf("dry runs and approval counted as executions: %d", n)
	}
}

func TestExpireProposals(t *testing.T) { forEachBackend(t, testExpireProposals) }

func testExpireProposals(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	a := proposed(t, s, "store:1")
	b := proposed(t, s, "store:2")
	c := proposed(t, s, "store:3")
	s.RecordDryRun(ctx, b, action.Record{Success: true}, t0)
	s.ApproveBound(ctx, c, Approval{By: "alice", TTL: 3 * time.Hour}, t0)
	if n, err := s.ExpireProposals(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("expire at expires_at: n=%d err=%v", n, err)
	}
	n, err := s.ExpireProposals(ctx, t0.Add(time.Hour+time.Nanosecond))
	if err != nil || n != 2 {
		t.Fatalf("expire after: n=%d err=%v, want 2", n, err)
	}
	for id, want := range map[int64]action.Status{a: action.Expired, b: action.Expired, c: action.Approved} {
		if p, _ := s.Proposal(ctx, id); p.Status != want {
			t.Errorf("proposal %d = %s, want %s", id, p.Status, want)
		}
	}
	exp, _ := s.Proposals(ctx, ProposalFilter{Statuses: []action.Status{action.Expired}})
	if len(exp) != 2 || exp[0].ID != b {
		t.Errorf("expired, newest first = %+v", exp)
	}
}

func TestClaimOldestApproved(t *testing.T) { forEachBackend(t, testClaimOldestApproved) }

func testClaimOldestApproved(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	a := proposed(t, s, "store:1")
	b := proposed(t, s, "store:2")
	s.Approve(ctx, b, "alice", t0.Add(time.Second))
	s.Approve(ctx, a, "alice", t0.Add(2*time.Second))
	first, _ := s.Claim(ctx, "x", t0.Add(3*time.Second))
	second, _ := s.Claim(ctx, "x", t0.Add(3*time.Second))
	if first == nil || second == nil || first.ID != b || second.ID != a {
		t.Errorf("claims = %v, %v; want %d then %d", first, second, b, a)
	}
}

// TestConcurrentApprove races approvers on one proposal, from goroutines
// sharing a handle and from separate handles on the same file (as separate
// processes would): exactly one wins each time.
func TestConcurrentApprove(t *testing.T) { forEachBackend(t, testConcurrentApprove) }

func testConcurrentApprove(t *testing.T, be backend) {
	s1, path := be.openTemp(t)
	s2 := openAt(t, path)
	ctx := context.Background()
	handles := []*Store{s1, s2, s1, s2, s1, s2}
	for round := 0; round < 10; round++ {
		id := proposed(t, s1, "store:race")
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			wins   []string
			losses int
		)
		start := make(chan struct{})
		for i, h := range handles {
			wg.Add(1)
			go func(i int, h *Store) {
				defer wg.Done()
				<-start
				who := string(rune('a' + i))
				_, err := h.Approve(ctx, id, who, t0.Add(time.Minute))
				mu.Lock()
				defer mu.Unlock()
				var te *action.ErrTransition
				switch {
				case err == nil:
					wins = append(wins, who)
				case errors.As(err, &te) && te.From == action.Approved && te.To == action.Approved:
					losses++
				default:
					t.Errorf("round %d approver %s: unexpected error %v", round, who, err)
				}
			}(i, h)
		}
		close(start)
		wg.Wait()
		if len(wins) != 1 || losses != len(handles)-1 {
			t.Fatalf("round %d: %d winners %v, %d losers", round, len(wins), wins, losses)
		}
		p, _ := s2.Proposal(ctx, id)
		if p.ApprovedBy != wins[0] {
			t.Errorf("round %d: stored approver %q, winner %q", round, p.ApprovedBy, wins[0])
		}
		// Close the round so the next proposal can be created for the key.
		tk, _ := s1.OpenTicket(ctx, "store_down/store:race")
		s1.ResolveTicket(ctx, tk.ID, t0)
	}
}

// TestConcurrentClaim: two executors on two handles never claim one
// proposal twice.
func TestConcurrentClaim(t *testing.T) { forEachBackend(t, testConcurrentClaim) }

func testConcurrentClaim(t *testing.T, be backend) {
	s1, path := be.openTemp(t)
	s2 := openAt(t, path)
	ctx := context.Background()
	const n = 20
	for i := 0; i < n; i++ {
		id := proposed(t, s1, "store:"+string(rune('A'+i)))
		if _, err := s1.Approve(ctx, id, "alice", t0); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu      sync.Mutex
		claimed = map[int64]string{}
		wg      sync.WaitGroup
	)
	for w, h := range []*Store{s1, s2, s1, s2} {
		wg.Add(1)
		go func(name string, h *Store) {
			defer wg.Done()
			for {
				p, err := h.Claim(ctx, name, t0)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				if p == nil {
					return
				}
				mu.Lock()
				if prev, dup := claimed[p.ID]; dup {
					t.Errorf("proposal %d claimed by %s and %s", p.ID, prev, name)
				}
				claimed[p.ID] = name
				mu.Unlock()
			}
		}(string(rune('w'+w)), h)
	}
	wg.Wait()
	if len(claimed) != n {
		t.Errorf("claimed %d proposals, want %d", len(claimed), n)
	}
}
