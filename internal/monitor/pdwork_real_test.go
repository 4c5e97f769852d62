package monitor

// Real pd-server + simulator tests of the detections that watch PD's own
// work and judge over time (issue 11 §2): host_stores_failing,
// store_leader_drop, store_offline_stuck across monitor restarts,
// store_duplicate_address, region_no_leader, store_offline_blocked (one
// cluster, in order) and operator_timeouts (its own cluster, in parallel).

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikvsim"
)

// pdWorkOfflineStuckAfter is the offline-stuck window of TestRealPDWork.
const pdWorkOfflineStuckAfter = 8 * time.Second

func ids(t *testing.T, v any) []uint64 {
	t.Helper()
	list, _ := v.([]any)
	out := make([]uint64, 0, len(list))
	for _, x := range list {
		f, ok := x.(float64)
		if !ok {
			t.Fatalf("not an id list: %v", v)
		}
		out = append(out, uint64(f))
	}
	return out
}

// TestRealPDWork runs, on one 4-store cluster (stores 0 and 1 share the
// host label "h1"), one fault per detection and checks the ticket it opens:
// two stores of one host slow together; a store losing most of its leaders
// in one poll; an Offline store whose drain stops at a region whose leader
// went silent, with the monitor restarted in the middle of the
// offline-stuck window and again while it fires; a new store registered
// with the force-deleted store's address; then the drained store dies and
// PD restarts, so PD knows the silent region only without a leader.
func TestRealPDWork(t *testing.T) {
	t.Parallel()
	r := startRig(t, testcluster.Options{Stores: 4, Regions: 10, StoreHeartbeat: time.Second, RegionHeartbeat: 2 * time.Second,
		PauseBalanceLeader: true, DisableSchedulers: []string{"hot-region"},
		StoreLabels: []map[string]string{{"host": "h1"}, {"host": "h1"}, {"host": "h2"}, {"host": "h3"}}},
		func(c *invariant.Config) {
			c.LeaderDropMinLeaders = 2
			c.LeaderDropHold = 3 * time.Second
			c.OfflineStuckAfter = pdWorkOfflineStuckAfter
		})
	stores := r.c.Sim.StoreIDs()

	t.Run("host_stores_failing", func(t *testing.T) {
		r.t = t
		key := invariant.NameHostStoresFailing + "/host:h1"
		r.noTicketYet(invariant.NameHostStoresFailing)
		for _, id := range stores[:2] {
			if err := r.c.Sim.SetSlowScore(id, 90); err != nil {
				t.Fatal(err)
			}
		}
		tk := r.opened(key, time.Minute)
		e := ev(t, tk.Evidence)
		if got := ids(t, e["failing_store_ids"]); len(got) != 2 || !slices.Contains(got, stores[0]) || !slices.Contains(got, stores[1]) ||
			tk.Severity != ticket.Critical {
			t.Errorf("%s evidence %v", tk.Severity, e)
		}
		for _, id := range stores[:2] {
			if err := r.c.Sim.SetSlowScore(id, 1); err != nil {
				t.Fatal(err)
			}
		}
		r.resolved(key, time.Minute)
		r.exactlyOne(invariant.NameHostStoresFailing, key, ticket.Resolved)
	})

	t.Run("store_leader_drop", func(t *testing.T) {
		r.t = t
		// The store with the most leaders loses them to the store that is a
		// voter of most of its regions, in one TiKV-side move.
		res := r.cycle()
		lead := map[uint64]int{}
		shared := map[[2]uint64]int{}
		for _, id := range r.c.Sim.RegionIDs() {
			rv, err := r.c.Sim.Region(id)
			if err != nil {
				continue
			}
			lead[rv.LeaderStoreID]++
			for _, p := range rv.Peers {
				if p.StoreID != rv.LeaderStoreID && p.Role == "Voter" {
					shared[[2]uint64{rv.LeaderStoreID, p.StoreID}]++
				}
			}
		}
		var from, to uint64
		for pair, n := range shared {
			if n*2 >= lead[pair[0]] && n >= 2 && (from == 0 || n > shared[[2]uint64{from, to}]) {
				from, to = pair[0], pair[1]
			}
		}
		if from == 0 {
			t.Fatalf("no store can take half of another's leaders: leaders %v", lead)
		}
		st, _ := res.Snapshot.Store(from)
		before := st.Status.LeaderCount
		key := invariant.NameStoreLeaderDrop + "/" + invariant.StoreSubject(from)
		moved, err := r.c.Sim.MoveLeaders(to)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("store %d had %d leaders; %d moved to store %d", from, before, moved, to)
		tk := r.opened(key, time.Minute)
		// PD may see the leaders leave over two polls: the drop is judged
		// between the last two.
		e := ev(t, tk.FirstEvidence)
		b, a := e["leader_count_before"].(float64), e["leader_count_after"].(float64)
		if b > float64(before) || b-a < 2 || a*2 > b {
			t.Errorf("evidence %v (store had %d leaders)", e, before)
		}
		// The drop is held for LeaderDropHold, then the ticket resolves.
		r.resolved(key, time.Minute)
	})

	x := stores[3]
	var silent uint64
	stuckKey := invariant.NameStoreOfflineStuck + "/" + invariant.StoreSubject(x)
	t.Run("store_offline_stuck across restarts", func(t *testing.T) {
		r.t = t
		// A region with a follower on x goes silent: PD cannot move it, so
		// x's drain stops at one region.
		for _, id := range r.c.Sim.RegionIDs() {
			rv, err := r.c.Sim.Region(id)
			if err == nil && rv.LeaderStoreID != x && slices.ContainsFunc(rv.Peers, func(p tikvsim.PeerView) bool { return p.StoreID == x }) {
				silent = id
				break
			}
		}
		if silent == 0 {
			t.Fatal("no region with a follower on the store to drain")
		}
		if err := r.c.Sim.SetRegionSilent(silent, true); err != nil {
			t.Fatal(err)
		}
		r.noTicketYet(invariant.NameStoreOfflineStuck)
		// force: PD marks the store physically destroyed, so its address
		// may be reused by a new store.
		if err := r.c.Delete(r.ctx, fmt.Sprintf("/store/%d?force=true", x)); err != nil {
			t.Fatal(err)
		}
		res := r.until("the drain stops at the silent region", 2*time.Minute, func(res CycleResult) bool {
			st, ok := res.Snapshot.Store(x)
			return ok && st.Store.StateName == pd.StateOffline && st.Status.RegionCount == 1
		})
		flatSince := res.Time
		if _, ok := r.openTicket(stuckKey); ok {
			t.Fatal("store_offline_stuck opened before its window")
		}
		// Restart the monitor in the middle of the window.
		r.until("half the window", time.Minute, func(res CycleResult) bool {
			return res.Time.Sub(flatSince) >= pdWorkOfflineStuckAfter/2
		})
		r.newMonitor()
		res = r.cycle()
		if _, ok := r.openTicket(stuckKey); ok && res.Time.Sub(flatSince) < pdWorkOfflineStuckAfter {
			t.Fatal("store_offline_stuck fired early after the restart")
		}
		tk := r.opened(stuckKey, time.Minute)
		// Not early, and the window is the one that began before the
		// restart (restored, not started again).
		if d := tk.FirstSeen.Sub(flatSince); d < pdWorkOfflineStuckAfter {
			t.Errorf("store_offline_stuck fired %s after the drain stopped, want >= %s", d, pdWorkOfflineStuckAfter)
		}
		since, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev(t, tk.FirstEvidence)["unchanged_since"]))
		if err != nil || !since.Equal(flatSince) {
			t.Errorf("store_offline_stuck unchanged since %v (%v), want %v: the restart started the window again",
				since, err, flatSince)
		}
		// Restart while it fires: nothing resolves.
		r.newMonitor()
		start := time.Now()
		r.until("twice the quiet period", time.Minute, func(CycleResult) bool { return time.Since(start) > 2*realQuiet })
		if cur := r.exactlyOne(invariant.NameStoreOfflineStuck, stuckKey, ticket.Open); cur.ID != tk.ID {
			t.Errorf("ticket #%d replaced by #%d", tk.ID, cur.ID)
		}
	})

	t.Run("store_duplicate_address", func(t *testing.T) {
		r.t = t
		if silent == 0 {
			t.Skip("needs the drained store")
		}
		old, err := r.c.Sim.Store(x)
		if err != nil {
			t.Fatal(err)
		}
		key := invariant.NameStoreDuplicateAddress + "/cluster"
		r.noTicketYet(invariant.NameStoreDuplicateAddress)
		added, err := r.c.Sim.AddStore(r.ctx, old.Address, map[string]string{"host": "h4"})
		if err != nil {
			t.Fatal(err)
		}
		tk := r.opened(key, time.Minute)
		e := ev(t, tk.Evidence)
		byAddr, _ := e["store_ids_by_address"].(map[string]any)
		if got := ids(t, byAddr[old.Address]); !slices.Equal(got, []uint64{min(x, added), max(x, added)}) {
			t.Errorf("evidence %v, want stores %d and %d on %s", e, x, added, old.Address)
		}
	})

	t.Run("region_no_leader and store_offline_blocked", func(t *testing.T) {
		r.t = t
		if silent == 0 {
			t.Skip("needs the drained store")
		}
		// The drained store dies, then PD restarts: it knows the silent
		// region from its storage only, without a leader.
		if err := r.c.Sim.StopStore(x); err != nil {
			t.Fatal(err)
		}
		if err := r.c.StopPD(); err != nil {
			t.Fatal(err)
		}
		if err := r.c.StartPD(r.ctx); err != nil {
			t.Fatal(err)
		}
		nl := r.opened(invariant.NameRegionNoLeader+"/cluster", 2*time.Minute)
		e := ev(t, nl.Evidence)
		if !slices.Contains(ids(t, e["sample_region_ids"]), silent) || nl.Severity != ticket.Critical {
			t.Errorf("region_no_leader %s evidence %v, want region %d", nl.Severity, e, silent)
		}
		bl := r.opened(invariant.NameStoreOfflineBlocked+"/"+invariant.StoreSubject(x), time.Minute)
		e = ev(t, bl.Evidence)
		if bl.Severity != ticket.Critical || e["heartbeat_stopped"] != true || !slices.Contains(ids(t, e["leaderless_region_ids"]), silent) {
			t.Errorf("store_offline_blocked %s evidence %v", bl.Severity, e)
		}
	})
}

// TestRealOperatorTimeouts: a store ignores PD's commands (the step is
// never applied), so a transfer-leader PD runs for a region it leads times
// out; operator_timeouts reports the region and the target store.
func TestRealOperatorTimeouts(t *testing.T) {
	t.Parallel()
	r := startRig(t, testcluster.Options{Stores: 3, Regions: 10, StoreHeartbeat: time.Second, RegionHeartbeat: 2 * time.Second,
		PauseBalanceLeader: true, DisableSchedulers: []string{"hot-region", "balance-region"}},
		func(c *invariant.Config) { c.OperatorTimeoutsPerRegion, c.OperatorTimeoutsPerStore = 1, 1 })
	region, follower, leader := firstFollower(t, r.c)
	if err := r.c.Sim.SetIgnoreCommands(leader, true); err != nil {
		t.Fatal(err)
	}
	r.noTicketYet(invariant.NameOperatorTimeouts)
	body := map[string]any{"name": "transfer-leader", "region_id": region, "to_store_id": follower}
	if err := r.c.PostJSON(r.ctx, "/operators", body, nil); err != nil {
		t.Fatal(err)
	}
	var ops []struct {
		Desc    string `json:"desc"`
		Timeout string `json:"timeout"`
	}
	if err := r.c.GetJSON(r.ctx, "/operators?object", &ops); err == nil {
		t.Logf("PD operators: %+v", ops)
	}
	key := invariant.NameOperatorTimeouts + "/" + invariant.RegionSubject(region)
	tk := r.opened(key, 3*time.Minute)
	e := ev(t, tk.Evidence)
	if e["timeouts"].(float64) != 1 {
		t.Errorf("evidence %v", e)
	}
	r.opened(invariant.NameOperatorTimeouts+"/"+invariant.StoreSubject(follower), 30*time.Second)
	// PD did not move the leader.
	var reg pd.Region
	if err := r.c.GetJSON(r.ctx, fmt.Sprintf("/region/id/%d", region), &reg); err != nil || reg.Leader.StoreID != leader {
		t.Errorf("region %d leader %d (%v), want it still on store %d", region, reg.Leader.StoreID, err, leader)
	}
}
