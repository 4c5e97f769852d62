package executor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// An action that hands the work back to PD's schedulers (Spec.Settle, e.g.
// resume_scheduler) does not reopen its ticket when the re-check right
// after it still sees the violation (PD has not moved anything yet): a new
// diagnosis then proposed transfer_leader next to PD's own balancing (seen
// by a new user). The ticket is looked at again after the settle time:
// resolved if the invariant holds, reopened if not.
func TestSettleDefersReopen(t *testing.T) {
	st := tempStore(t)
	spec := regionSpec("hand_back")
	spec.Settle = 600 * time.Millisecond
	handBack := &fakeAction{spec: spec}
	var (
		mu   sync.Mutex
		held = map[int64]bool{}
		asks = map[int64]int{}
	)
	e := New(Options{Store: st, Catalog: action.NewCatalog(handBack), Logger: testLogger(t), PollInterval: 20 * time.Millisecond, SettleCheck: 50 * time.Millisecond,
		Reevaluate: func(_ context.Context, tk ticket.Ticket) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			asks[tk.ID]++
			return held[tk.ID], nil
		}})
	ctx := ctxT(t, time.Minute)
	fixed := propose(t, st, "hand_back", map[string]int{"region_id": 1, "to_store_id": 1}, time.Time{})
	stuck := propose(t, st, "hand_back", map[string]int{"region_id": 2, "to_store_id": 1}, time.Time{})
	for _, p := range []action.Proposal{fixed, stuck} {
		if _, err := st.Approve(ctx, p.ID, "alice", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	stop := run(t, e)
	defer stop()
	for _, p := range []action.Proposal{fixed, stuck} {
		waitStatus(t, st, p.ID, action.Completed)
	}
	// Right after the execution: still violated, and still diagnosed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := asks[fixed.TicketID] + asks[stuck.TicketID]
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range []action.Proposal{fixed, stuck} {
		if tk, err := st.Ticket(ctx, p.TicketID); err != nil || tk.Status != ticket.Diagnosed {
			t.Fatalf("ticket %d right after the execution: %s, %v; want diagnosed (PD's schedulers work on it)", p.TicketID, tk.Status, err)
		}
	}
	// PD evens one of them out meanwhile.
	mu.Lock()
	held[fixed.TicketID] = true
	mu.Unlock()
	waitTicket := func(id int64, want ticket.Status) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			tk, err := st.Ticket(ctx, id)
			if err == nil && tk.Status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ticket %d is %s (%v), want %s after the settle time", id, tk.Status, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitTicket(fixed.TicketID, ticket.Resolved)
	waitTicket(stuck.TicketID, ticket.Open)
}

// While PD works on it, a ticket whose invariant held and is violated
// again (someone paused the scheduler again) is a new occurrence: reopened
// for a fresh diagnosis at once, not at the end of the settle time (the
// browser test's second proposal waited 3 minutes for it).
func TestSettleReopensWhenViolatedAgain(t *testing.T) {
	st := tempStore(t)
	spec := regionSpec("hand_back")
	spec.Settle = time.Hour
	var (
		mu     sync.Mutex
		held   bool
		checks int
	)
	e := New(Options{Store: st, Catalog: action.NewCatalog(&fakeAction{spec: spec}), Logger: testLogger(t), PollInterval: 20 * time.Millisecond,
		SettleCheck: 20 * time.Millisecond,
		Reevaluate: func(_ context.Context, tk ticket.Ticket) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			checks++
			return held, nil
		}})
	ctx := ctxT(t, time.Minute)
	p := propose(t, st, "hand_back", map[string]int{"region_id": 1, "to_store_id": 1}, time.Time{})
	if _, err := st.Approve(ctx, p.ID, "alice", time.Now()); err != nil {
		t.Fatal(err)
	}
	stop := run(t, e)
	defer stop()
	waitStatus(t, st, p.ID, action.Completed)
	set := func(v bool) { // and wait until two re-checks saw it
		mu.Lock()
		held = v
		from := checks
		mu.Unlock()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := checks
			mu.Unlock()
			if n >= from+2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no re-check within 10 s (%d so far)", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	set(true) // PD evens it out
	mu.Lock()
	held = false // the skew is back
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tk, err := st.Ticket(ctx, p.TicketID)
		if err == nil && tk.Status == ticket.Open {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ticket %d is %s (%v); want reopened long before the 1 h settle time ends", p.TicketID, tk.Status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
