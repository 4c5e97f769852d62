package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// A claim and a finish carry the leader's term; a lower term than the
// highest recorded is refused inside the transaction and changes nothing;
// a higher one is recorded; the terms are stored on the proposal.
func TestFencingRefusesStaleTerm(t *testing.T) { forEachBackend(t, testFencingRefusesStaleTerm) }

func testFencingRefusesStaleTerm(t *testing.T, be backend) {
	s, path := be.openTemp(t)
	ctx := context.Background()
	a, b := proposed(t, s, "store:1"), proposed(t, s, "store:2")
	for _, id := range []int64{a, b} {
		if _, err := s.Approve(ctx, id, "alice", t0); err != nil {
			t.Fatal(err)
		}
	}
	// A term needs the cluster binding: its scope.
	if _, err := s.ClaimNext(ctx, "leader-5", t0, ClaimOptions{Term: 5}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("claim with a term on an unbound database: %v, want ErrInvalid", err)
	}
	if err := s.BindCluster(ctx, "7001", "", t0); err != nil {
		t.Fatal(err)
	}
	p, err := s.ClaimNext(ctx, "leader-5", t0, ClaimOptions{Term: 5})
	if err != nil || p == nil || p.ID != a {
		t.Fatalf("claim under term 5 = %+v, %v", p, err)
	}
	if got, err := s.LeaderTerm(ctx); err != nil || got != 5 {
		t.Fatalf("leader term = %d, %v; want 5", got, err)
	}

	// A second handle (another replica) is elected with term 9.
	s2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.BindCluster(ctx, "7001", "", t0); err != nil {
		t.Fatal(err)
	}
	if err := s2.AdvanceTerm(WithTerm(ctx, 9)); err != nil {
		t.Fatal(err)
	}
	// The deposed leader can neither claim nor finish.
	if p, err := s.ClaimNext(ctx, "leader-5", t0, ClaimOptions{Term: 5}); !errors.Is(err, ErrStaleTerm) || p != nil {
		t.Fatalf("stale claim = %+v, %v; want ErrStaleTerm", p, err)
	}
	if _, err := s.Finish(WithTerm(ctx, 5), a, action.Completed, "ok", action.Record{}, t0); !errors.Is(err, ErrStaleTerm) {
		t.Fatalf("stale finish: %v, want ErrStaleTerm", err)
	}
	if got, _ := s.Proposal(ctx, a); got.Status != action.Executing {
		t.Errorf("after the refused finish the action is %s, want executing", got.Status)
	}
	if got, _ := s.Proposal(ctx, b); got.Status != action.Approved {
		t.Errorf("after the refused claim the other action is %s, want approved", got.Status)
	}
	recs, err := s.Records(ctx, RecordFilter{ProposalID: a})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Event == action.EventExecution {
			t.Errorf("a refused finish left an execution record: %+v", r)
		}
	}
	if err := s.AdvanceTerm(WithTerm(ctx, 8)); !errors.Is(err, ErrStaleTerm) {
		t.Errorf("advance to a lower term: %v", err)
	}
	// The new leader finishes (recovers) it under its term.
	if _, err := s2.Finish(WithTerm(ctx, 9), a, action.Failed, "interrupted", action.Record{}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	terms, err := s2.Terms(ctx, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if terms[a] != (ProposalTerms{Claim: 5, Finish: 9}) || terms[b] != (ProposalTerms{}) {
		t.Errorf("terms = %+v", terms)
	}
	// Writes without a term (the API, no HA) are not fenced.
	if p, err := s.ClaimNext(ctx, "no-ha", t0, ClaimOptions{}); err != nil || p == nil || p.ID != b {
		t.Errorf("unfenced claim = %+v, %v", p, err)
	}
}

// Two leaders racing on one file: whatever the interleaving, once term 2
// has written, no write of term 1 lands.
func TestFencingConcurrentLeaders(t *testing.T) { forEachBackend(t, testFencingConcurrentLeaders) }

func testFencingConcurrentLeaders(t *testing.T, be backend) {
	s, path := be.openTemp(t)
	ctx := context.Background()
	if err := s.BindCluster(ctx, "7001", "", t0); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.BindCluster(ctx, "7001", "", t0); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		afterNew bool
		bad      int
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 30; i++ {
			mu.Lock()
			begunAfter := afterNew // term 2 committed before this write began
			mu.Unlock()
			if err := s.AdvanceTerm(WithTerm(ctx, 1)); err == nil && begunAfter {
				bad++
			}
		}
	}()
	go func() {
		defer wg.Done()
		time.Sleep(5 * time.Millisecond)
		if err := s2.AdvanceTerm(WithTerm(ctx, 2)); err != nil {
			t.Error(err)
		}
		mu.Lock()
		afterNew = true
		mu.Unlock()
	}()
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d writes of term 1 landed after term 2 wrote", bad)
	}
	if got, _ := s.LeaderTerm(ctx); got != 2 {
		t.Errorf("leader term = %d, want 2", got)
	}
}
