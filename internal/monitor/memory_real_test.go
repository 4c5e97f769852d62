package monitor

import (
	"testing"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
)

// TestRealRestartMidWindow restarts the monitor (a new Monitor over the
// same database file) in the middle of a `for` window on real PD: the
// violation neither fires early nor starts its window again; then a ticket
// resolved outside the monitor (as the executor does) makes the next
// violation wait its `for` again; then a down peer on an Up store is
// reported as not repaired by PD and linked to nothing it is not caused
// by.
func TestRealRestartMidWindow(t *testing.T) {
	const forDur = 4 * time.Second
	r := startRig(t, testcluster.Options{Stores: 3, Regions: 10, StoreHeartbeat: time.Second,
		RegionHeartbeat: 5 * time.Second, DisableSchedulers: []string{"hot-region"}}, func(c *invariant.Config) {
		c.For[invariant.NameStoreSlow] = forDur
		c.DownPeerUnrepairedAfter = time.Second
	})
	s1 := r.c.Sim.StoreIDs()[0]
	key := invariant.NameStoreSlow + "/" + invariant.StoreSubject(s1)
	if err := r.c.Sim.SetSlowScore(s1, 90); err != nil {
		t.Fatal(err)
	}
	res := r.until("slow store pending", time.Minute, func(res CycleResult) bool { return hasKey(res.Pending, key) })
	activeAt := alertAt(res.Pending, key)

	// Restart mid-window: the new monitor knows when the window started.
	r.newMonitor()
	res = r.cycle()
	if !hasKey(res.Pending, key) || !alertAt(res.Pending, key).Equal(activeAt) {
		t.Fatalf("after restart: pending %v firing %v, want %s pending since %v", alertKeys(res.Pending), alertKeys(res.Firing), key, activeAt)
	}
	if _, ok := r.openTicket(key); ok {
		t.Fatal("ticket opened before the for window ended")
	}
	tk := r.opened(key, time.Minute)
	if tk.FirstSeen.Sub(activeAt) < forDur {
		t.Errorf("fired %s after the violation began, want >= %s", tk.FirstSeen.Sub(activeAt), forDur)
	}

	// Resolved elsewhere (executor): the next cycle must not re-fire at
	// once but wait for again.
	if err := r.db.ResolveTicket(r.ctx, tk.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	res = r.cycle()
	if hasKey(res.Firing, key) || !hasKey(res.Pending, key) {
		t.Fatalf("after an outside resolve: firing %v pending %v", alertKeys(res.Firing), alertKeys(res.Pending))
	}
	if _, ok := r.openTicket(key); ok {
		t.Fatal("a new ticket opened without waiting for")
	}
	r.opened(key, time.Minute)
	if err := r.c.Sim.SetSlowScore(s1, 1); err != nil {
		t.Fatal(err)
	}

	// A peer that stays down while its store heartbeats: PD never repairs
	// it (the store is Up).
	region, follower, _ := firstFollower(t, r.c)
	if err := r.c.Sim.SetPeerDown(region, follower, true); err != nil {
		t.Fatal(err)
	}
	dtk := r.opened(invariant.NameRegionDownPeer+"/"+invariant.SubjectCluster, time.Minute)
	t.Logf("region_down_peer evidence %s", dtk.Evidence)
	ukey := invariant.NameRegionDownPeerUnrepaired + "/" + invariant.SubjectCluster
	for _, st := range r.cycle().Invariants {
		if st.Name == invariant.NameRegionDownPeerUnrepaired {
			t.Logf("status %+v", st)
		}
	}
	utk := r.opened(ukey, 30*time.Second)
	e := ev(t, utk.Evidence)
	if e["up_store_region_count"].(float64) < 1 {
		t.Errorf("evidence %v", e)
	}
	by := e["unrepaired_peers_by_store"].(map[string]any)
	if by[invariant.StoreSubject(follower)[len("store:"):]] == nil {
		t.Errorf("unrepaired peers by store %v, want store %d", by, follower)
	}
	if utk.Severity != ticket.Critical {
		t.Errorf("severity %s", utk.Severity)
	}
	if err := r.c.Sim.SetPeerDown(region, follower, false); err != nil {
		t.Fatal(err)
	}
	r.resolved(ukey, 2*time.Minute)
}

func hasKey(as []Alert, key string) bool {
	for _, a := range as {
		if a.Key() == key {
			return true
		}
	}
	return false
}

func alertAt(as []Alert, key string) time.Time {
	for _, a := range as {
		if a.Key() == key {
			return a.ActiveAt
		}
	}
	return time.Time{}
}
