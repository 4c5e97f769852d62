package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// ClaimNext skips approved proposals the Conflicts func rejects (given the
// executing ones), takes the oldest approval otherwise, and stops at the
// cap counted from claims (executed_at), in flight or finished.
func TestClaimNextConflictsAndCap(t *testing.T) { forEachBackend(t, testClaimNextConflictsAndCap) }

func testClaimNextConflictsAndCap(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	a, b, c := proposed(t, s, "store:1"), proposed(t, s, "store:2"), proposed(t, s, "store:3")

	if p, err := s.ClaimNext(ctx, "x", t0, ClaimOptions{}); err != nil || p != nil {
		t.Fatalf("nothing approved: %v, %v", p, err)
	}
	if _, err := s.ClaimNext(ctx, "", t0, ClaimOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty executor: %v", err)
	}
	for i, id := range []int64{a, b, c} {
		if _, err := s.Approve(ctx, id, "alice", t0.Add(time.Duration(i+1)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// b conflicts with anything executing; a is oldest.
	conflicts := func(cand action.Proposal, executing []action.Proposal) bool {
		return cand.ID == b && len(executing) > 0
	}
	o := ClaimOptions{Conflicts: conflicts, Max: 2, Since: t0}
	p, err := s.ClaimNext(ctx, "x", t0.Add(time.Minute), o)
	if err != nil || p == nil || p.ID != a || p.Status != action.Executing || p.ExecutedBy != "x" {
		t.Fatalf("first claim = %+v, %v", p, err)
	}
	p, err = s.ClaimNext(ctx, "x", t0.Add(time.Minute), o)
	if err != nil || p == nil || p.ID != c {
		t.Fatalf("second claim = %+v, %v (want %d, skipping conflicting %d)", p, err, c, b)
	}
	if got, _ := s.Proposal(ctx, b); got.Status != action.Approved {
		t.Errorf("skipped proposal is %s", got.Status)
	}
	// Two claims since t0: the cap of 2 is reached even once they finish.
	if _, err := s.Finish(ctx, a, action.Completed, "ok", action.Record{}, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimNext(ctx, "x", t0.Add(3*time.Minute), o); !errors.Is(err, ErrCapReached) {
		t.Errorf("over the cap: %v", err)
	}
	n, oldest, err := s.ClaimedSince(ctx, t0)
	if err != nil || n != 2 || !oldest.Equal(t0.Add(time.Minute)) {
		t.Errorf("ClaimedSince = %d, %v, %v", n, oldest, err)
	}
	// A window that starts after both claims has room.
	o.Since = t0.Add(2 * time.Minute)
	if p, err := s.ClaimNext(ctx, "x", t0.Add(3*time.Minute), o); err != nil || p != nil {
		t.Errorf("b still conflicts with executing c: %+v, %v", p, err)
	}
	if n, _, _ := s.ClaimedSince(ctx, t0.Add(2*time.Minute)); n != 0 {
		t.Errorf("ClaimedSince later = %d", n)
	}
}

// Two handles claiming at once with a conflict rule "one at a time" never
// both claim.
func TestClaimNextAtomicAcrossHandles(t *testing.T) {
	forEachBackend(t, testClaimNextAtomicAcrossHandles)
}

func testClaimNextAtomicAcrossHandles(t *testing.T, be backend) {
	s1, path := be.openTemp(t)
	s2 := openAt(t, path)
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		id := proposed(t, s1, "store:"+string(rune('a'+i)))
		if _, err := s1.Approve(ctx, id, "alice", t0); err != nil {
			t.Fatal(err)
		}
	}
	oneAtATime := ClaimOptions{Conflicts: func(_ action.Proposal, executing []action.Proposal) bool { return len(executing) > 0 }}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		claimed []int64
	)
	for i, s := range []*Store{s1, s2, s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := s.ClaimNext(ctx, "exec", t0.Add(time.Duration(i)*time.Second), oneAtATime)
			if err != nil {
				t.Error(err)
				return
			}
			if p != nil {
				mu.Lock()
				claimed = append(claimed, p.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != 1 {
		t.Errorf("claimed %v, want exactly one", claimed)
	}
}

func TestExpireTicketProposals(t *testing.T) { forEachBackend(t, testExpireTicketProposals) }

func testExpireTicketProposals(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	id := proposed(t, s, "store:9")
	other := proposed(t, s, "store:10")
	p, _ := s.Proposal(ctx, id)
	n, err := s.ExpireTicketProposals(ctx, p.TicketID, t0.Add(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("ExpireTicketProposals = %d, %v", n, err)
	}
	if got, _ := s.Proposal(ctx, id); got.Status != action.Expired {
		t.Errorf("status %s", got.Status)
	}
	if got, _ := s.Proposal(ctx, other); got.Status != action.Proposed {
		t.Errorf("another ticket's proposal is %s", got.Status)
	}
}
