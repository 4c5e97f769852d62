package executor

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// A PD operator slower than the execution timeout (the leader's store
// applies commands 3 s late; the executor's timeout is 500 ms) is followed
// until PD decides: the action completes — not failed — with the leader
// moved in PD, and the ticket is re-evaluated only once the outcome is
// recorded.
func TestSlowOperatorFollowedPastExecutionDeadline(t *testing.T) {
	h := newHarness(t)
	r := pickRegion(t)
	if err := shared.Sim.SetApplyDelay(r.Leader, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shared.Sim.SetApplyDelay(r.Leader, 0) })
	p := propose(t, h.st, "transfer_leader", transferParams(r), time.Time{})
	var (
		mu   sync.Mutex
		seen []action.Status
	)
	e := h.executor(func(o *Options) {
		o.Timeout = 500 * time.Millisecond
		o.Reevaluate = func(ctx context.Context, tk ticket.Ticket) (bool, error) {
			cur, err := h.st.Proposal(ctx, p.ID)
			mu.Lock()
			seen = append(seen, cur.Status)
			mu.Unlock()
			return false, err
		}
	})
	run(t, e)
	if _, err := e.Approve(context.Background(), p.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, h.st, p.ID, action.Completed, action.Failed)
	if done.Status != action.Completed {
		t.Fatalf("slow transfer_leader: %s %q", done.Status, done.Result)
	}
	if got := leaderOf(t, r.ID); got != r.Follower {
		t.Fatalf("region %d leader on store %d, want %d", r.ID, got, r.Follower)
	}
	recs := records(t, h.st, p.ID)
	if len(recs) == 0 || !recs[0].IsExecution() || !strings.Contains(recs[0].Message, "still running at the execution deadline") {
		t.Fatalf("execution record does not say the operator outlived the deadline: %+v", recs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != action.Completed {
		t.Fatalf("ticket re-evaluated with the action in %v, want once after it completed", seen)
	}
}
