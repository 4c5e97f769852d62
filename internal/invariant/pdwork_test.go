package invariant

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

func TestPDWorkInvariants(t *testing.T) {
	cfg := DefaultConfig()
	invs := Default(cfg)
	byName := map[string]Invariant{}
	for _, inv := range invs {
		byName[inv.Name()] = inv
	}

	// Leaderless region in a check list and an Offline store whose
	// region_count is 0 but a region still has a peer on it.
	s := snap(store(1, 10, 10), store(2, 10, 10), store(3, 10, 10), store(4, 0, 0))
	s.Stores[3].Store.StateName = pd.StateOffline
	lr := regionWith(50, 1, 2, 4)
	lr.Leader = pd.Peer{}
	s.Checks = map[string][]pd.Region{tikv.CheckMissPeer: {lr}}
	s.StoreRegions = map[uint64][]pd.Region{4: {lr}}
	got := evalAll(t, []Invariant{byName[NameRegionNoLeader], byName[NameStoreOfflineBlocked]}, s, t0)
	if v, ok := got["region_no_leader/cluster"]; !ok || v.Evidence["region_count"] != 1 {
		t.Errorf("region_no_leader = %v", got)
	}
	if v, ok := got["store_offline_blocked/store:4"]; !ok || v.Evidence["heartbeat_stopped"] != false || v.Evidence["regions_with_peer"] != 1 {
		t.Errorf("store_offline_blocked = %v", got)
	}

	// Duplicate address.
	d := snap(store(1, 1, 1), store(2, 1, 1))
	d.Stores[1].Store.Address = d.Stores[0].Store.Address
	if got := evalAll(t, []Invariant{byName[NameStoreDuplicateAddress]}, d, t0); len(got) != 1 {
		t.Errorf("duplicate address = %v", got)
	}

	// Leader drop between two polls, on two stores of one host.
	host := func(s *tikv.Snapshot) {
		for i := range s.Stores[:2] {
			s.Stores[i].Store.Labels = []pd.Label{{Key: "host", Value: "h1"}}
		}
	}
	a := snap(store(1, 40, 60), store(2, 40, 60), store(3, 40, 60))
	host(a)
	b := snap(store(1, 2, 60), store(2, 3, 60), store(3, 116, 60))
	host(b)
	drop, hosts := byName[NameStoreLeaderDrop], byName[NameHostStoresFailing]
	if got := evalAll(t, []Invariant{drop, hosts}, a, t0); len(got) != 0 {
		t.Fatalf("first poll = %v", got)
	}
	got = evalAll(t, []Invariant{drop, hosts}, b, t0.Add(10*time.Second))
	if _, ok := got["store_leader_drop/store:1"]; !ok {
		t.Errorf("no leader drop: %v", got)
	}
	if _, ok := got["host_stores_failing/host:h1"]; !ok {
		t.Errorf("no host failure: %v", got)
	}
	// Held while the leaders stay away, also across a restart (state).
	doc, err := drop.(Stateful).MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	fresh := Default(cfg)
	var drop2 Invariant
	for _, inv := range fresh {
		if inv.Name() == NameStoreLeaderDrop {
			drop2 = inv
		}
	}
	if err := drop2.(Stateful).UnmarshalState(json.RawMessage(doc)); err != nil {
		t.Fatal(err)
	}
	if got := evalAll(t, []Invariant{drop2}, snap(store(1, 2, 60), store(2, 3, 60), store(3, 116, 60)), t0.Add(time.Minute)); len(got) != 2 {
		t.Errorf("held drops after restore = %v", got)
	}

	// Pending peer stuck: one region, 10 minutes.
	stuck := byName[NameRegionPendingPeerStuck]
	p := snap(store(1, 1, 1), store(2, 1, 1), store(3, 1, 1))
	pr := regionWith(60, 1, 2, 3)
	pr.PendingPeers = []pd.Peer{pr.Peers[2]}
	p.Checks = map[string][]pd.Region{tikv.CheckPendingPeer: {pr}}
	if got := evalAll(t, []Invariant{stuck}, p, t0); len(got) != 0 {
		t.Errorf("pending at once = %v", got)
	}
	p2 := *p
	if got := evalAll(t, []Invariant{stuck}, &p2, t0.Add(11*time.Minute)); len(got) != 1 {
		t.Errorf("pending 11m = %v", got)
	}

	// Operator timeouts grouped by region and target store.
	ops := byName[NameOperatorTimeouts]
	o := snap(store(1, 1, 1), store(5, 1, 1))
	for i := range 3 {
		rec, err := pd.ParseOperatorRecord("admin-transfer-leader {transfer leader: store 1 to 5} (kind:admin,leader, region:77(5, 3), createAt:2026-03-01 11:5" +
			string(rune('0'+i)) + ":00 +0000 UTC, startAt:x, currentStep:0, size:1, steps:[0:{transfer leader from store 1 to store 5}], timeout:[10s]) timeout (finishAt:2026-03-01 11:59:0" +
			string(rune('0'+i)) + " +0000 UTC, duration:10s)")
		if err != nil || rec.Outcome != pd.RecordTimeout || rec.RegionID != 77 || len(rec.TargetStoreIDs) != 1 || rec.TargetStoreIDs[0] != 5 {
			t.Fatalf("parse = %+v, %v", rec, err)
		}
		o.OperatorRecords = append(o.OperatorRecords, rec)
	}
	got = evalAll(t, []Invariant{ops}, o, t0)
	if _, ok := got["operator_timeouts/region:77"]; !ok {
		t.Errorf("per region = %v", got)
	}
	if _, ok := got["operator_timeouts/store:5"]; !ok {
		t.Errorf("per store = %v", got)
	}
}
