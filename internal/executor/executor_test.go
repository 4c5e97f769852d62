package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// Approve -> the running executor claims it -> PD moves the leader ->
// completed, with an audit record holding the exact request, the states
// before and after, who approved and who executed; the ticket resolves
// because the re-evaluated invariant holds.
func TestApproveExecutesTransferLeader(t *testing.T) {
	h := newHarness(t)
	r := pickRegion(t)
	p := propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Time{})
	reg := prometheus.NewRegistry()
	var reevaluated atomic.Int32
	e := h.executor(func(o *Options) {
		o.Registerer = reg
		o.Reevaluate = func(ctx context.Context, tk ticket.Ticket) (bool, error) {
			reevaluated.Add(1)
			got, err := h.pdc.Region(ctx, r.ID)
			if err != nil {
				return false, err
			}
			return got.Leader.StoreID == r.Follower, nil
		}
	})
	mark := proxy.mark()
	run(t, e)

	ap, err := e.Approve(context.Background(), p.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if ap.Status != action.Approved || ap.ApprovedBy != "alice" || ap.ApprovedAt == nil {
		t.Fatalf("approved proposal = %+v", ap)
	}
	done := waitStatus(t, h.st, p.ID, action.Completed, action.Failed)
	if done.Status != action.Completed {
		t.Fatalf("proposal %s: %s", done.Status, done.Result)
	}
	if got := leaderOf(t, r.ID); got != r.Follower {
		t.Fatalf("PD shows the leader of region %d on store %d, want %d", r.ID, got, r.Follower)
	}
	if done.ExecutedBy != "test-executor" || done.FinishedAt == nil || !strings.HasPrefix(done.Result, "verified") {
		t.Errorf("completed proposal = %+v", done)
	}
	posts := operatorPosts(proxy.since(mark))
	if len(posts) != 1 {
		t.Fatalf("%d POST /pd/api/v1/operators reached PD, want 1", len(posts))
	}

	recs := records(t, h.st, p.ID) // newest first: execution, approval
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2 (approval, execution)", len(recs))
	}
	approvalRecord(t, recs[1], p.ID, "alice")
	rec := recs[0]
	if rec.PrevHash != recs[1].Hash {
		t.Errorf("execution record does not follow the approval: %+v", recs)
	}
	if !rec.Success || rec.DryRun || !rec.IsExecution() || rec.ApprovedBy != "alice" || rec.ExecutedBy != "test-executor" ||
		rec.ActionType != tikv.ActionTransferLeader || rec.FinishedAt.Before(rec.StartedAt) {
		t.Errorf("record = %+v", rec)
	}
	var reqs []action.Request
	if err := json.Unmarshal(rec.Requests, &reqs); err != nil || len(reqs) != 1 {
		t.Fatalf("record requests %s: %v", rec.Requests, err)
	}
	var body map[string]any
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if reqs[0].Method != "POST" || reqs[0].Path != "/pd/api/v1/operators" || body["name"] != "transfer-leader" ||
		body["region_id"] != float64(r.ID) || body["to_store_id"] != float64(r.Follower) {
		t.Errorf("recorded request = %s", reqs[0])
	}
	if b, a := stateRegionLeader(t, rec.StateBefore), stateRegionLeader(t, rec.StateAfter); b != r.Leader || a != r.Follower {
		t.Errorf("states record leader %d -> %d, want %d -> %d", b, a, r.Leader, r.Follower)
	}
	if !strings.Contains(rec.Message, `previous: {"leader_store_id":`) {
		t.Errorf("record message lacks the previous leader: %q", rec.Message)
	}
	verifyOK(t, h.st)

	// The ticket's invariant held again: resolved (the re-evaluation runs
	// right after the outcome is recorded, so wait for it).
	var tk ticket.Ticket
	werr := testcluster.WaitFor(ctxT(t, 30*time.Second), func() (bool, error) {
		var err error
		tk, err = h.st.Ticket(context.Background(), p.TicketID)
		return err == nil && tk.Status == ticket.Resolved, err
	})
	if werr != nil {
		t.Errorf("ticket after a fixing execution: %s, %v", tk.Status, werr)
	}
	if reevaluated.Load() != 1 {
		t.Errorf("re-evaluated %d times, want 1", reevaluated.Load())
	}
	if n := testutil.ToFloat64(e.m.executions.WithLabelValues(tikv.ActionTransferLeader, resultCompleted)); n != 1 {
		t.Errorf("executions_total{completed} = %v", n)
	}
	if n := testutil.CollectAndCount(reg, "operator_executor_execution_duration_seconds"); n != 1 {
		t.Errorf("duration series = %d", n)
	}
}

// A dry run changes nothing in PD, sends no mutating request, writes an
// audit record with dry_run=true and leaves the proposal approvable.
func TestDryRunChangesNothing(t *testing.T) {
	h := newHarness(t)
	r := pickRegion(t)
	p := propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Time{})
	e := h.executor(nil)
	ctx := ctxT(t, time.Minute)
	mark := proxy.mark()

	res, rec, err := e.DryRun(ctx, p.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid || len(res.Requests) != 1 || res.Requests[0].Path != "/pd/api/v1/operators" || len(res.Preconditions) == 0 {
		t.Fatalf("dry run = %+v", res)
	}
	if got := proxy.since(mark); len(got) != 0 {
		t.Fatalf("a dry run sent mutating requests to PD: %+v", got)
	}
	if got := leaderOf(t, r.ID); got != r.Leader {
		t.Fatalf("leader moved to %d during a dry run", got)
	}
	if !rec.DryRun || rec.ExecutedBy != "bob" || rec.ApprovedBy != "" || !strings.HasPrefix(rec.Message, "dry run: valid") ||
		stateRegionLeader(t, rec.StateBefore) != r.Leader || rec.Hash == "" {
		t.Errorf("dry-run record = %+v", rec)
	}
	var reqs []action.Request
	if err := json.Unmarshal(rec.Requests, &reqs); err != nil || len(reqs) != 1 || reqs[0].String() != res.Requests[0].String() {
		t.Errorf("recorded requests %s, want %v", rec.Requests, res.Requests)
	}
	stored := records(t, h.st, p.ID)
	if len(stored) != 1 || !stored[0].DryRun || stored[0].Hash != rec.Hash {
		t.Errorf("stored records = %+v", stored)
	}
	if got, _ := h.st.Proposal(ctx, p.ID); got.Status != action.DryRun {
		t.Errorf("status after dry run = %s", got.Status)
	}
	// A dry run is not an execution.
	if n, _ := h.st.ExecutionsSince(ctx, time.Now().Add(-time.Hour)); n != 0 {
		t.Errorf("ExecutionsSince counts the dry run: %d", n)
	}

	// A dry run of a proposal that no longer fits says why, and is recorded.
	bad := propose(t, h.st, tikv.ActionTransferLeader, map[string]uint64{"region_id": r.ID, "to_store_id": r.Leader}, time.Time{})
	res, rec, err = e.DryRun(ctx, bad.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid || !strings.Contains(rec.Message, "target_not_leader") || !rec.DryRun {
		t.Errorf("invalid dry run = %+v, record %q", res, rec.Message)
	}

	// Still approvable after the dry run; then it runs for real.
	if _, err := e.Approve(ctx, p.ID, "alice"); err != nil {
		t.Fatalf("approve after dry run: %v", err)
	}
	run(t, e)
	if got := waitStatus(t, h.st, p.ID, action.Completed, action.Failed); got.Status != action.Completed {
		t.Fatalf("after dry run + approve: %s %s", got.Status, got.Result)
	}
	if got := leaderOf(t, r.ID); got != r.Follower {
		t.Errorf("leader on %d after execution, want %d", got, r.Follower)
	}
	if recs := records(t, h.st, p.ID); len(recs) != 3 || !recs[0].IsExecution() || !recs[0].Success ||
		recs[2].Event != action.EventDryRun {
		t.Errorf("records for the proposal = %+v, want dry run, approval, execution", recs)
	} else {
		approvalRecord(t, recs[1], p.ID, "alice")
	}
	verifyOK(t, h.st)
}

// A rejected proposal is never executed and cannot be approved afterwards.
func TestRejectAndRefusals(t *testing.T) {
	h := newHarness(t)
	r := pickRegion(t)
	e := h.executor(nil)
	ctx := ctxT(t, time.Minute)
	mark := proxy.mark()
	run(t, e)

	p := propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Time{})
	if _, err := e.Reject(ctx, p.ID, "carol", ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("reject without a reason: %v", err)
	}
	rp, err := e.Reject(ctx, p.ID, "carol", "maintenance window tonight")
	if err != nil {
		t.Fatal(err)
	}
	if rp.Status != action.Rejected || rp.RejectedBy != "carol" || rp.RejectionReason != "maintenance window tonight" || rp.RejectedAt == nil {
		t.Errorf("rejected = %+v", rp)
	}
	var te *action.ErrTransition
	if _, err := e.Approve(ctx, p.ID, "alice"); !errors.As(err, &te) || te.From != action.Rejected {
		t.Errorf("approve a rejected proposal: %v", err)
	} else if !strings.Contains(err.Error(), "is rejected; only proposed actions can be approved") {
		t.Errorf("unclear error: %v", err)
	}
	if _, _, err := e.DryRun(ctx, p.ID, "alice"); !errors.As(err, &te) {
		t.Errorf("dry run of a rejected proposal: %v", err)
	}

	// Expired: refused, and moved to expired.
	old := propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Now().Add(-time.Minute))
	if _, _, err := e.DryRun(ctx, old.ID, "alice"); !errors.Is(err, store.ErrExpired) {
		t.Errorf("dry run of an expired proposal: %v", err)
	}
	old = propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Now().Add(-time.Minute))
	if _, err := e.Approve(ctx, old.ID, "alice"); !errors.Is(err, store.ErrExpired) {
		t.Errorf("approve an expired proposal: %v", err)
	}
	if got, _ := h.st.Proposal(ctx, old.ID); got.Status != action.Expired {
		t.Errorf("expired proposal status %s", got.Status)
	}
	if _, err := e.Approve(ctx, 99999, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("approve unknown id: %v", err)
	}
	if _, err := e.Approve(ctx, p.ID, " "); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("approve without approver: %v", err)
	}

	// Nothing reached PD; only the rejection was recorded.
	if got := proxy.since(mark); len(got) != 0 {
		t.Errorf("mutating requests reached PD: %+v", got)
	}
	if got := leaderOf(t, r.ID); got != r.Leader {
		t.Errorf("leader moved to %d", got)
	}
	if all, _ := h.st.Records(ctx, store.RecordFilter{}); len(all) != 1 || all[0].Event != action.EventRejection ||
		all[0].ProposalID != p.ID || all[0].Success || all[0].IsExecution() ||
		all[0].Message != "rejected by carol: maintenance window tonight" {
		t.Errorf("records written: %+v, want the rejection only", all)
	}
	verifyOK(t, h.st)
}

// Two approvers (two store handles, as two CLI processes) approve one
// proposal at the same moment: exactly one wins, the other gets a clear
// *action.ErrTransition; then the action executes once.
func TestConcurrentApprovals(t *testing.T) {
	h := newHarness(t)
	second := openStore(t, h.path, false)
	e1 := h.executor(nil)
	e2 := New(Options{Store: second, Catalog: h.cat, Name: "other"})
	ctx := ctxT(t, 2*time.Minute)

	var last action.Proposal
	for round := 0; round < 5; round++ {
		r := pickRegion(t)
		p := propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Time{})
		last = p
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  [2]error
			won   [2]action.Proposal
		)
		for i, e := range []*Executor{e1, e2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				won[i], errs[i] = e.Approve(ctx, p.ID, fmt.Sprintf("approver-%d", i))
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		for i := range errs {
			if errs[i] == nil {
				winners++
				if won[i].ApprovedBy != fmt.Sprintf("approver-%d", i) {
					t.Errorf("winner %d recorded approver %q", i, won[i].ApprovedBy)
				}
				continue
			}
			var te *action.ErrTransition
			if !errors.As(errs[i], &te) || te.From != action.Approved {
				t.Errorf("round %d: loser got %v, want *action.ErrTransition from approved", round, errs[i])
			} else if want := fmt.Sprintf("action %d is approved; only proposed actions can be approved", p.ID); !strings.Contains(errs[i].Error(), want) {
				t.Errorf("loser's error %q lacks %q", errs[i], want)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d approvals won (%v)", round, winners, errs)
		}
		if round < 4 {
			// Leave only the last one approved for the executor.
			if _, err := h.st.ClaimID(ctx, p.ID, "parked", time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := h.st.Finish(ctx, p.ID, action.Failed, "parked by the test", action.Record{}, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	mark := proxy.mark()
	run(t, e1)
	if got := waitStatus(t, h.st, last.ID, action.Completed, action.Failed); got.Status != action.Completed {
		t.Fatalf("%s: %s", got.Status, got.Result)
	}
	if n := len(operatorPosts(proxy.since(mark))); n != 1 {
		t.Errorf("%d operator requests, want 1", n)
	}
}

// Preconditions that break after the approval (here: the leader is
// already on the target store, moved by someone else through PD) make the
// execution fail safely: a clear message naming the failed check, and no
// request sent.
func TestPreconditionsChangedLeaderMoved(t *testing.T) {
	h := newHarness(t)
	r := pickRegion(t)
	p := propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Time{})
	e := h.executor(func(o *Options) {
		o.Reevaluate = func(context.Context, ticket.Ticket) (bool, error) { return false, nil }
	})
	ctx := ctxT(t, time.Minute)
	if _, err := e.Approve(ctx, p.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	// Someone moves the leader directly through PD (not via the proxy).
	if err := shared.PostJSON(ctx, "/operators", map[string]any{"name": "transfer-leader", "region_id": r.ID, "to_store_id": r.Follower}, nil); err != nil {
		t.Fatal(err)
	}
	if err := shared.WaitFor(ctx, func() (bool, error) { return leaderOf(t, r.ID) == r.Follower, nil }); err != nil {
		t.Fatal(err)
	}
	// PD keeps the finished operator; a new one must not be needed.
	mark := proxy.mark()
	run(t, e)
	got := waitStatus(t, h.st, p.ID, action.Completed, action.Failed)
	if got.Status != action.Failed || !strings.Contains(got.Result, "nothing sent to PD: preconditions no longer hold") ||
		!strings.Contains(got.Result, "target_not_leader") {
		t.Fatalf("proposal %s: %q", got.Status, got.Result)
	}
	if reqs := proxy.since(mark); len(reqs) != 0 {
		t.Errorf("requests sent despite failed preconditions: %+v", reqs)
	}
	recs := records(t, h.st, p.ID)
	if len(recs) != 2 || recs[0].Success || !recs[0].IsExecution() || string(recs[0].Requests) != "[]" || recs[0].Message != got.Result {
		t.Errorf("records = %+v", recs)
	} else {
		approvalRecord(t, recs[1], p.ID, "alice")
	}
	// The invariant is still violated: the ticket goes back to open for a
	// fresh diagnosis.
	if tk, _ := h.st.Ticket(ctx, p.TicketID); tk.Status != ticket.Open {
		t.Errorf("ticket %s after a refused execution with the invariant violated, want open", tk.Status)
	}
	verifyOK(t, h.st)
}

// The target store stops after the approval: PD shows it Disconnected
// (20 s after its last heartbeat) and the execution fails safely with
// target_store_up, sending nothing.
func TestPreconditionsChangedTargetStoreStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 20 s for PD to show the store Disconnected")
	}
	h := newHarness(t)
	r := pickRegion(t)
	p := propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Time{})
	e := h.executor(nil)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := e.Approve(ctx, p.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := shared.Sim.StopStore(r.Follower); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := shared.Sim.StartStore(r.Follower); err != nil {
			t.Errorf("restart store %d: %v", r.Follower, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := shared.WaitFor(ctx, func() (bool, error) { return storeUp(ctx, t, r.Follower), nil }); err != nil {
			t.Errorf("store %d not Up again: %v", r.Follower, err)
		}
	})
	err := shared.WaitFor(ctx, func() (bool, error) {
		var s pd.StoreInfo
		if err := shared.GetJSON(ctx, fmt.Sprintf("/store/%d", r.Follower), &s); err != nil {
			return false, err
		}
		return s.Store.StateName != pd.StateUp, nil
	})
	if err != nil {
		t.Fatalf("store %d never left Up: %v", r.Follower, err)
	}
	// The region's leader must not have moved to the stopped store.
	if l := leaderOf(t, r.ID); l == r.Follower {
		t.Fatalf("leader of region %d is on the stopped store", r.ID)
	}
	mark := proxy.mark()
	run(t, e)
	got := waitStatus(t, h.st, p.ID, action.Completed, action.Failed)
	if got.Status != action.Failed || !strings.Contains(got.Result, "preconditions no longer hold") ||
		!strings.Contains(got.Result, "target_store_up") || !strings.Contains(got.Result, fmt.Sprintf("store %d is Disconnected", r.Follower)) {
		t.Fatalf("proposal %s: %q", got.Status, got.Result)
	}
	if reqs := proxy.since(mark); len(reqs) != 0 {
		t.Errorf("requests sent to a stopped target: %+v", reqs)
	}
	verifyOK(t, h.st)
}

// Cancelling Run while an execution is in flight lets it finish and be
// recorded: nothing stays executing after a clean shutdown.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	h := newHarness(t)
	r := pickRegion(t)
	p := propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Time{})
	e := h.executor(nil)
	ctx := ctxT(t, time.Minute)
	sent := proxy.subscribe(t)
	stop := run(t, e)
	if _, err := e.Approve(ctx, p.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sent: // the POST reached PD: the execution is in flight
	case <-ctx.Done():
		t.Fatal("no request reached PD")
	}
	stop() // returns only once Run returned
	got, err := h.st.Proposal(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != action.Completed {
		t.Fatalf("after shutdown the proposal is %s (%q), want completed", got.Status, got.Result)
	}
	if ex, _ := h.st.Executing(context.Background()); len(ex) != 0 {
		t.Errorf("left executing: %+v", ex)
	}
	if recs := records(t, h.st, p.ID); len(recs) != 2 || !recs[0].IsExecution() || !recs[0].Success {
		t.Errorf("records = %+v, want approval + execution", recs)
	} else {
		approvalRecord(t, recs[1], p.ID, "alice")
	}
	if leaderOf(t, r.ID) != r.Follower {
		t.Error("leader not moved")
	}
}

// Approval -> PD request latency: from the commit of an approval to the
// moment the POST reaches the proxy in front of PD, over 20 runs per path:
// "cli" approves through another store handle, as the CLI in another
// process does, so Run only learns of it by polling (approvals land at a
// random phase of the poll ticker); "in-process" approves through
// Executor.Approve, which wakes Run at once. Logged, not asserted (no
// timed assertions); the figures are in docs/executor.md.
func TestApprovalToRequestLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("40 executions")
	}
	h := newHarness(t)
	cli := openStore(t, h.path, false)
	e := h.executor(func(o *Options) { o.Logger = nil })
	sent := proxy.subscribe(t)
	run(t, e)
	r := pickRegion(t)
	const runs = 20
	for _, via := range []string{"cli", "in-process"} {
		var lat []time.Duration
		for i := 0; i < runs; i++ {
			ctx := ctxT(t, time.Minute)
			to := r.Follower
			if leaderOf(t, r.ID) == r.Follower {
				to = r.Leader
			}
			p := propose(t, h.st, tikv.ActionTransferLeader, map[string]uint64{"region_id": r.ID, "to_store_id": to}, time.Time{})
			for len(sent) > 0 {
				<-sent
			}
			time.Sleep(rand.N(e.poll)) // a random phase of the poll ticker
			var err error
			if via == "cli" {
				_, err = cli.Approve(ctx, p.ID, "alice", time.Now())
			} else {
				_, err = e.Approve(ctx, p.ID, "alice")
			}
			if err != nil {
				t.Fatal(err)
			}
			committed := time.Now()
			select {
			case req := <-sent:
				lat = append(lat, req.At.Sub(committed))
			case <-ctx.Done():
				t.Fatalf("%s run %d: no request reached PD", via, i)
			}
			if got := waitStatus(t, h.st, p.ID, action.Completed, action.Failed); got.Status != action.Completed {
				t.Fatalf("%s run %d: %s %s", via, i, got.Status, got.Result)
			}
		}
		sorted := slices.Clone(lat)
		slices.Sort(sorted)
		median := (sorted[runs/2-1] + sorted[runs/2]) / 2
		t.Logf("approval (%s) -> PD request over %d runs: min %v, median %v, p90 %v, max %v (poll interval %v)",
			via, runs, sorted[0].Round(time.Millisecond), median.Round(time.Millisecond),
			sorted[runs*9/10-1].Round(time.Millisecond), sorted[runs-1].Round(time.Millisecond), e.poll)
	}
}
