package daemon

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/pgtest"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
)

// apiCall is one decision a load worker asked a replica for, and what the
// replica answered.
type apiCall struct {
	kind string // "propose", "approve", "reject"
	id   int64  // the action (for propose: the one created, 0 on failure)
	via  string
	err  error
	at   time.Time
}

// TestPostgresRestartUnderLoad: two `operator run` replicas ([ha] enabled,
// real PD and its etcd, the simulator) on one real PostgreSQL database keep
// recording decisions — people propose actions through one replica and
// approve or reject them through the other — while the monitor, the
// diagnosis and the executor of the leader write too; PostgreSQL is
// restarted in the middle (pgtest.Restart: fast shutdown, every connection
// terminated). Afterwards:
//
//   - no decision lost: every call that returned success is in the
//     database (the action's status) and in the audit trail (its approval
//     or rejection record);
//   - none duplicated: at most one approval and one rejection record per
//     action and person, never both, at most one execution record;
//   - the audit trail verifies (signatures, every replica's checkpoint);
//   - both replicas kept running (the connection pools reconnected), one
//     of them leads, and an action approved after the restart is executed
//     (PD moved the region's leader).
func TestPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PD, PostgreSQL and two daemons")
	}
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 4, SkewLeaders: true, PauseBalanceLeader: true})
	ctx := context.Background()
	dir := t.TempDir()
	db := haDatabase(t, "postgres", dir)
	secret := "restart-test-approver-secret"
	sum := sha256.Sum256([]byte(secret))

	type running struct {
		*haReplica
		cancel context.CancelFunc
		done   chan error
	}
	start := func(i int) *running {
		r, path := newReplica(t, i, dir, c.PDURL, db.toml, sum, 5*time.Second)
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(r.log)
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(Options{Config: cfg, Version: "restart-test", Logger: slog.New(slog.NewTextHandler(logf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		run := &running{haReplica: r, cancel: cancel, done: make(chan error, 1)}
		go func() { run.done <- d.Run(rctx); logf.Close() }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-run.done:
			case <-time.After(30 * time.Second):
				t.Errorf("%s did not stop", r.name)
			}
			if t.Failed() {
				t.Logf("%s log tail:\n%s", r.name, tailLines(r.logText(t), 40))
			}
		})
		return run
	}
	rs := []*running{start(0), start(1)}
	waitFor(t, "one leader", 60*time.Second, func() bool {
		n := 0
		for _, r := range rs {
			if ok, _ := r.leading(); ok {
				n++
			}
		}
		return n == 1
	})
	var before *running
	for _, r := range rs {
		if ok, _ := r.leading(); ok {
			before = r
		}
	}
	var regions struct {
		Regions []struct {
			ID    uint64 `json:"id"`
			Peers []struct {
				StoreID uint64 `json:"store_id"`
			} `json:"peers"`
			Leader struct {
				StoreID uint64 `json:"store_id"`
			} `json:"leader"`
		} `json:"regions"`
	}
	waitFor(t, "PD's regions", 30*time.Second, func() bool { return c.GetJSON(ctx, "/regions", &regions) == nil })
	type target struct{ region, to uint64 }
	var targets []target
	for _, r := range regions.Regions {
		for _, p := range r.Peers {
			if p.StoreID != r.Leader.StoreID {
				targets = append(targets, target{r.ID, p.StoreID})
			}
		}
	}
	if len(targets) == 0 {
		t.Fatalf("no follower peer to transfer a leader to: %+v", regions)
	}

	// Two workers: worker w proposes through replica w (root, Unix
	// socket) and decides through the other: every third action is
	// approved by tara (token over TCP), the others rejected by root.
	var (
		mu    sync.Mutex
		calls []apiCall
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	record := func(c apiCall) {
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to := rs[w], rs[1-w]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tg := targets[(i*2+w)%len(targets)]
				var p action.Proposal
				err := from.tryAPI("POST", "/api/v1/actions", "", map[string]any{"action_type": "transfer_leader",
					"params": map[string]uint64{"region_id": tg.region, "to_store_id": tg.to},
					"reason": fmt.Sprintf("load %d/%d across a PostgreSQL restart", w, i)}, &p)
				record(apiCall{kind: "propose", id: p.ID, via: from.name, err: err, at: time.Now()})
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if i%3 == 0 {
					err = to.tryAPI("POST", fmt.Sprintf("/api/v1/actions/%d/approve", p.ID), secret, map[string]any{}, nil)
					record(apiCall{kind: "approve", id: p.ID, via: to.name, err: err, at: time.Now()})
				} else {
					err = to.tryAPI("POST", fmt.Sprintf("/api/v1/actions/%d/reject", p.ID), "", map[string]any{"reason": "load test"}, nil)
					record(apiCall{kind: "reject", id: p.ID, via: to.name, err: err, at: time.Now()})
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	restartAt := time.Now()
	pgtest.Restart(t)
	t.Logf("PostgreSQL restarted in %s", time.Since(restartAt).Round(10*time.Millisecond))
	restartedAt := time.Now()
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()

	for _, r := range rs {
		select {
		case err := <-r.done:
			t.Fatalf("%s stopped after the restart: %v", r.name, err)
		default:
		}
	}
	var leader *running
	waitFor(t, "one leader after the restart", 30*time.Second, func() bool {
		var ls []*running
		for _, r := range rs {
			if ok, _ := r.leading(); ok {
				ls = append(ls, r)
			}
		}
		if len(ls) == 1 {
			leader = ls[0]
		}
		return len(ls) == 1
	})

	st, err := store.Open(ctx, db.target, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Every successful call is in the database and the audit trail.
	ok, failed := map[string]int{}, map[string]int{}
	var duringFail []string
	for _, c := range calls {
		if c.err != nil {
			failed[c.kind]++
			duringFail = append(duringFail, fmt.Sprintf("%s at restart%+.1fs: %v", c.kind, c.at.Sub(restartAt).Seconds(), c.err))
			continue
		}
		ok[c.kind]++
		p, err := st.Proposal(ctx, c.id)
		if err != nil {
			t.Errorf("%s of action %d returned success through %s, but the action is not in the database: %v", c.kind, c.id, c.via, err)
			continue
		}
		recs := recordsOf(t, st, c.id)
		n := 0
		for _, rec := range recs {
			if c.kind == "approve" && rec.Event == action.EventApproval || c.kind == "reject" && rec.Event == action.EventRejection {
				n++
			}
		}
		switch {
		case c.kind == "approve" && (n != 1 || p.Status == action.Proposed || p.Status == action.Rejected):
			t.Errorf("approval of action %d returned success: %d approval records, status %s", c.id, n, p.Status)
		case c.kind == "reject" && (n != 1 || p.Status != action.Rejected):
			t.Errorf("rejection of action %d returned success: %d rejection records, status %s", c.id, n, p.Status)
		}
	}
	t.Logf("calls that succeeded: %v; failed: %v", ok, failed)
	for _, f := range duringFail {
		t.Logf("failed: %s", f)
	}
	if ok["approve"] == 0 || ok["reject"] == 0 {
		t.Fatalf("the load recorded no approval or no rejection: %v", ok)
	}
	// Failures are allowed only around the restart (a decision whose
	// outcome the replica could not know is reported as failed; the
	// person retries).
	for _, c := range calls {
		if c.err != nil && (c.at.Before(restartAt) || c.at.After(restartedAt.Add(10*time.Second))) {
			t.Errorf("%s through %s failed away from the restart: %v", c.kind, c.via, c.err)
		}
	}

	// None duplicated, none both approved and rejected, no execution twice.
	ps, err := st.Proposals(ctx, store.ProposalFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		count := map[string]int{}
		for _, rec := range recordsOf(t, st, p.ID) {
			count[rec.Event]++
		}
		if count[action.EventApproval] > 1 || count[action.EventRejection] > 1 || count[action.EventExecution] > 1 ||
			count[action.EventApproval] > 0 && count[action.EventRejection] > 0 {
			t.Errorf("action %d (%s): records %v; want at most one approval, rejection or execution, never both decisions", p.ID, p.Status, count)
		}
		if count[action.EventExecution] > 0 && count[action.EventApproval] == 0 {
			t.Errorf("action %d was executed without an approval record: %v", p.ID, count)
		}
	}
	open, err := st.Tickets(ctx, store.TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int64{}
	for _, tk := range open {
		if tk.Status == ticket.Resolved {
			continue
		}
		if prev, dup := keys[tk.Key]; dup {
			t.Errorf("tickets %d and %d are both open for %s", prev, tk.ID, tk.Key)
		}
		keys[tk.Key] = tk.ID
	}

	// A longer outage (past the store's 10 s busy timeout): a decision
	// made meanwhile fails and records nothing, nothing is executed, and
	// the replicas carry on without a restart once PostgreSQL is back.
	var held action.Proposal
	rs[0].api(t, "POST", "/api/v1/actions", "", map[string]any{"action_type": "transfer_leader",
		"params": map[string]uint64{"region_id": targets[0].region, "to_store_id": targets[0].to}, "reason": "before the outage"}, &held)
	downAt := time.Now()
	pgtest.Stop(t)
	outageErr := rs[1].tryAPI("POST", fmt.Sprintf("/api/v1/actions/%d/approve", held.ID), secret, map[string]any{}, nil)
	if wait := 12*time.Second - time.Since(downAt); wait > 0 {
		time.Sleep(wait)
	}
	pgtest.Start(t)
	t.Logf("PostgreSQL down for %s; the approval made meanwhile: %v", time.Since(downAt).Round(100*time.Millisecond), outageErr)
	if outageErr == nil {
		t.Errorf("an approval during a %s PostgreSQL outage reported success", time.Since(downAt).Round(time.Second))
	}
	for _, r := range rs {
		select {
		case err := <-r.done:
			t.Fatalf("%s stopped during the outage: %v", r.name, err)
		default:
		}
	}
	waitFor(t, "one leader after the outage", 45*time.Second, func() bool {
		n := 0
		for _, r := range rs {
			if ok, _ := r.leading(); ok {
				n++
			}
		}
		return n == 1
	})
	if p, err := st.Proposal(ctx, held.ID); err != nil || p.Status != action.Proposed {
		t.Errorf("the action whose approval failed during the outage is %s (%v), want proposed", p.Status, err)
	}
	for _, rec := range recordsOf(t, st, held.ID) {
		if rec.Event == action.EventApproval || rec.Event == action.EventExecution {
			t.Errorf("the failed approval left a %s record on action %d", rec.Event, held.ID)
		}
	}

	// The leader still executes: an action approved now moves the
	// region's leader in PD.
	var fresh action.Proposal
	tg := targets[0]
	var cur struct {
		Leader struct {
			StoreID uint64 `json:"store_id"`
		} `json:"leader"`
	}
	waitFor(t, "PD to answer", 30*time.Second, func() bool {
		return c.GetJSON(ctx, fmt.Sprintf("/region/id/%d", tg.region), &cur) == nil
	})
	if cur.Leader.StoreID == tg.to { // an approved load action moved it already
		for _, x := range targets {
			if x.region == tg.region && x.to != tg.to {
				tg = x
			}
		}
	}
	rs[0].api(t, "POST", "/api/v1/actions", "", map[string]any{"action_type": "transfer_leader",
		"params": map[string]uint64{"region_id": tg.region, "to_store_id": tg.to}, "reason": "after the restart"}, &fresh)
	rs[1].api(t, "POST", fmt.Sprintf("/api/v1/actions/%d/approve", fresh.ID), secret, map[string]any{}, nil)
	done := waitEnded(t, st, fresh.ID)
	if done.Status != action.Completed {
		t.Errorf("the action approved after the restart ended %s %q; want completed", done.Status, done.Result)
	}
	waitFor(t, "PD to move the region's leader", 30*time.Second, func() bool {
		return c.GetJSON(ctx, fmt.Sprintf("/region/id/%d", tg.region), &cur) == nil && cur.Leader.StoreID == tg.to
	})
	retries := 0
	for _, r := range rs {
		retries += strings.Count(r.logText(t), "database connection lost before a write")
	}
	t.Logf("%s leads after the restart (%s led before); %d writes waited for a new connection", leader.name, before.name, retries)
	verifyAudit(t, st, db.keyDir, 2)
	for _, r := range rs {
		if strings.Contains(r.logText(t), "part failed; shutting down") {
			t.Errorf("%s shut a part down", r.name)
		}
	}
}
