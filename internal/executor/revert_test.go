package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
)

// offsetClock is time.Now plus an offset the test advances, so that a
// revert becomes due exactly when the test says (no sleeping).
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func evictingStores(t *testing.T, h *harness) []uint64 {
	t.Helper()
	ids, err := h.pdc.EvictLeaderStores(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func waitFollowUp(t *testing.T, st *store.Store, id int64, want ...store.FollowUpStatus) store.FollowUp {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	var last store.FollowUp
	err := testcluster.WaitFor(ctx, func() (bool, error) {
		f, err := st.FollowUp(ctx, id)
		last = f
		return slices.Contains(want, f.Status), err
	})
	if err != nil {
		t.Fatalf("scheduled revert %d never reached %v (last %s %q): %v", id, want, last.Status, last.Result, err)
	}
	return last
}

func revertRecords(t *testing.T, st *store.Store, proposalID int64) []action.Record {
	var out []action.Record
	for _, r := range records(t, st, proposalID) {
		if r.Event == action.EventRevert {
			out = append(out, r)
		}
	}
	return out
}

// evict_leader for a duration: the revert is recorded with the completion,
// survives a restart in the middle of carrying it out, and runs without a
// new approval when due: PD shows the store no longer evicting.
func TestTemporaryEvictLeaderRevertsAfterRestart(t *testing.T) {
	h := newHarness(t)
	clk := &offsetClock{}
	e1 := h.executor(func(o *Options) { o.Clock = clk.now; o.Name = "exec-1" })
	stop1 := run(t, e1)
	storeID := shared.Sim.StoreIDs()[2]
	p := propose(t, h.st, "evict_leader", map[string]any{"store_id": storeID, "duration": "2h"}, time.Time{})
	if _, err := e1.Approve(context.Background(), p.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	done := waitStatus(t, h.st, p.ID, action.Completed, action.Failed)
	if done.Status != action.Completed {
		t.Fatalf("evict_leader: %s %q", done.Status, done.Result)
	}
	t.Cleanup(func() {
		_ = h.pdc.RemoveScheduler(context.Background(), fmt.Sprintf("evict-leader-scheduler-%d", storeID))
	})
	if !slices.Contains(evictingStores(t, h), storeID) {
		t.Fatalf("store %d not under evict-leader in PD after the action", storeID)
	}
	fus, err := h.st.FollowUps(context.Background(), store.FollowUpFilter{ProposalID: p.ID})
	if err != nil || len(fus) != 1 {
		t.Fatalf("follow-ups = %+v, %v; want one", fus, err)
	}
	f := fus[0]
	if f.ActionType != "remove_evict_leader" || f.Status != store.FollowUpScheduled || !jsonEqual(f.Params, json.RawMessage(fmt.Sprintf(`{"store_id":%d}`, storeID))) {
		t.Fatalf("follow-up = %+v", f)
	}
	if d := f.DueAt.Sub(*done.FinishedAt); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Errorf("due %s after completion, want 2h", d)
	}
	// Not due yet: nothing reverts.
	if len(revertRecords(t, h.st, p.ID)) != 0 {
		t.Fatal("revert recorded before it was due")
	}

	// The daemon stops; a previous process had claimed the revert and died.
	stop1()
	clk.advance(2*time.Hour + time.Second)
	claimed, err := h.st.ClaimDueFollowUp(context.Background(), "deadhost:999999", clk.now())
	if err != nil || claimed == nil || claimed.ID != f.ID {
		t.Fatalf("claim as a dead executor: %+v %v", claimed, err)
	}
	if !slices.Contains(evictingStores(t, h), storeID) {
		t.Fatal("eviction gone before the revert ran")
	}

	e2 := h.executor(func(o *Options) { o.Clock = clk.now; o.Name = "exec-2" })
	run(t, e2)
	got := waitFollowUp(t, h.st, f.ID, store.FollowUpDone, store.FollowUpProposed, store.FollowUpFailed)
	if got.Status != store.FollowUpDone {
		t.Fatalf("revert: %s %q", got.Status, got.Result)
	}
	if slices.Contains(evictingStores(t, h), storeID) {
		t.Fatalf("store %d still under evict-leader after the revert", storeID)
	}
	recs := revertRecords(t, h.st, p.ID)
	if len(recs) != 1 || !recs[0].Success || recs[0].ActionType != "remove_evict_leader" || recs[0].ExecutedBy != "exec-2" ||
		len(recs[0].Requests) < 3 {
		t.Fatalf("revert records = %+v", recs)
	}
	verifyOK(t, h.st)
}

// set_store_limit for a duration: someone changes the limit meanwhile, so
// the due revert is not sent but proposed (ProposedBy "revert") with an
// approval request in the outbox; PD keeps the other person's value.
func TestTemporaryStoreLimitRevertProposedWhenChanged(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	clk := &offsetClock{}
	e := h.executor(func(o *Options) { o.Clock = clk.now })
	run(t, e)
	storeID := shared.Sim.StoreIDs()[1]
	limits, err := h.pdc.StoreLimits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	orig := limits[storeID].AddPeer
	t.Cleanup(func() { _ = h.pdc.SetStoreLimit(context.Background(), storeID, "add-peer", orig) })
	p := propose(t, h.st, "set_store_limit", map[string]any{"store_id": storeID, "type": "add-peer", "rate": orig + 17, "duration": "30m"}, time.Time{})
	if _, err := e.Approve(ctx, p.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if done := waitStatus(t, h.st, p.ID, action.Completed, action.Failed); done.Status != action.Completed {
		t.Fatalf("set_store_limit: %s %q", done.Status, done.Result)
	}
	fus, err := h.st.FollowUps(ctx, store.FollowUpFilter{ProposalID: p.ID})
	if err != nil || len(fus) != 1 || fus[0].ActionType != "set_store_limit" {
		t.Fatalf("follow-ups = %+v, %v", fus, err)
	}
	f := fus[0]

	// An extension by a person moves the due time and is audited; a
	// viewer may not.
	if _, err := e.ExtendRevertAs(ctx, f.ID, auth.Identity{Name: "carol", Role: auth.Viewer}, time.Minute); !errorsIs(err, ErrForbidden) {
		t.Fatalf("viewer extend: %v", err)
	}
	ext, err := e.ExtendRevertAs(ctx, f.ID, auth.Identity{Name: "bob", Role: auth.Approver}, 10*time.Minute)
	if err != nil || !ext.DueAt.Equal(f.DueAt.Add(10*time.Minute)) {
		t.Fatalf("extend: %+v %v", ext, err)
	}

	// Someone else sets another rate by hand.
	manual := orig + 29
	if err := h.pdc.SetStoreLimit(ctx, storeID, "add-peer", manual); err != nil {
		t.Fatal(err)
	}
	mark := proxy.mark()
	clk.advance(41 * time.Minute)
	got := waitFollowUp(t, h.st, f.ID, store.FollowUpDone, store.FollowUpProposed, store.FollowUpFailed)
	if got.Status != store.FollowUpProposed || got.RevertProposalID == 0 {
		t.Fatalf("revert: %s %q (proposal %d)", got.Status, got.Result, got.RevertProposalID)
	}
	if sent := proxy.since(mark); len(sent) != 0 {
		t.Fatalf("requests sent to PD for a refused revert: %+v", sent)
	}
	if limits, _ := h.pdc.StoreLimits(ctx); limits[storeID].AddPeer != manual {
		t.Fatalf("store %d add-peer limit = %g, want the hand-set %g", storeID, limits[storeID].AddPeer, manual)
	}
	rp, err := h.st.Proposal(ctx, got.RevertProposalID)
	if err != nil || rp.ProposedBy != store.RevertProposer || rp.ActionType != "set_store_limit" || rp.Status != action.Proposed {
		t.Fatalf("revert proposal = %+v, %v", rp, err)
	}
	evs, err := h.st.OutboxEvents(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	notified := false
	for _, ev := range evs {
		notified = notified || (ev.Kind == store.KindAwaitingApproval && ev.Action != nil && ev.Action.ID == rp.ID)
	}
	if !notified {
		t.Error("no approval request (notification) enqueued for the proposed revert")
	}
	recs := revertRecords(t, h.st, p.ID)
	if len(recs) != 2 || recs[0].Success || !recs[1].Success { // newest first: proposed, then the extension
		t.Fatalf("revert records = %+v", recs)
	}
	// A revert that already ran cannot be cancelled.
	if _, err := e.CancelRevertAs(ctx, f.ID, auth.Identity{Name: "bob", Role: auth.Approver}, "keep"); !errorsIs(err, store.ErrFollowUpState) {
		t.Fatalf("cancel a proposed revert: %v", err)
	}
	verifyOK(t, h.st)
}

// Two evict_leader approvals that together leave a region no store to move
// its leader to: store 1 is already under evict-leader (by hand); evicting
// 2 and 3 as well would leave all three voters of every region evicted
// (max-replicas 3). The first approved one runs, the second is refused at
// its precondition re-check with nothing sent.
func TestTwoEvictLeadersLeavingNoLeaderHomeRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	e := h.executor(nil)
	ids := shared.Sim.StoreIDs()
	if len(ids) != 3 {
		t.Fatalf("stores %v, want 3", ids)
	}
	s1, s2, s3 := ids[0], ids[1], ids[2]
	t.Cleanup(func() {
		for _, id := range ids {
			_ = h.pdc.RemoveScheduler(context.Background(), fmt.Sprintf("evict-leader-scheduler-%d", id))
		}
	})
	if err := h.pdc.AddScheduler(ctx, map[string]any{"name": "evict-leader-scheduler", "store_id": s1}); err != nil {
		t.Fatal(err)
	}
	// A dry run with a bad duration is refused with nothing to send.
	ea, err := h.cat.Lookup("evict_leader")
	if err != nil {
		t.Fatal(err)
	}
	res, err := ea.DryRun(ctx, json.RawMessage(fmt.Sprintf(`{"store_id":%d,"duration":"forever"}`, s2)))
	if err != nil || res.Valid || len(res.Requests) != 0 {
		t.Fatalf("bad duration: %+v %v", res, err)
	}
	p2 := propose(t, h.st, "evict_leader", map[string]any{"store_id": s2}, time.Time{})
	p3 := propose(t, h.st, "evict_leader", map[string]any{"store_id": s3}, time.Time{})
	for _, p := range []action.Proposal{p2, p3} {
		if res, _, err := e.DryRun(ctx, p.ID, "bob"); err != nil || !res.Valid {
			t.Fatalf("dry run of action %d alone: %+v %v", p.ID, res, err)
		}
		if _, err := e.Approve(ctx, p.ID, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	mark := proxy.mark()
	run(t, e)
	a := waitStatus(t, h.st, p2.ID, action.Completed, action.Failed)
	b := waitStatus(t, h.st, p3.ID, action.Completed, action.Failed)
	if a.Status != action.Completed || b.Status != action.Failed ||
		!strings.Contains(b.Result, "leader_home_per_region") || !strings.Contains(b.Result, "nothing sent") {
		t.Fatalf("first %s %q; second %s %q", a.Status, a.Result, b.Status, b.Result)
	}
	posts := 0
	for _, r := range proxy.since(mark) {
		if r.Method == "POST" && r.Path == "/pd/api/v1/schedulers" {
			posts++
		}
	}
	if posts != 1 {
		t.Fatalf("%d evict-leader requests reached PD, want 1", posts)
	}
	if ev := evictingStores(t, h); slices.Contains(ev, s3) || !slices.Contains(ev, s2) {
		t.Fatalf("PD evicts %v", ev)
	}
}
