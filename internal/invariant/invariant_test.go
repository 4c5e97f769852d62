package invariant

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const gib = 1 << 30

// store builds an Up TiKV store that heartbeated at t0 and has been up an
// hour.
func store(id uint64, leaders, regions int) pd.StoreInfo {
	return pd.StoreInfo{
		Store: pd.StoreMeta{ID: id, Address: "127.0.0.1:" + idKey(20160+id), StateName: pd.StateUp, NodeState: pd.NodeServing,
			LastHeartbeat: t0.UnixNano()},
		Status: pd.StoreStatus{Capacity: 100 * gib, Available: 60 * gib, UsedSize: 40 * gib,
			LeaderCount: leaders, RegionCount: regions, LeaderWeight: 1, RegionWeight: 1, SlowScore: 1,
			StartTS: t0.Add(-time.Hour), LastHeartbeatTS: t0, Uptime: pd.Duration(time.Hour)},
	}
}

func snap(stores ...pd.StoreInfo) *tikv.Snapshot {
	return &tikv.Snapshot{Time: t0, Stores: stores, Replication: pd.ReplicationConfig{MaxReplicas: 3},
		Schedule: pd.ScheduleConfig{LowSpaceRatio: 0.8, MaxStoreDownTime: pd.Duration(30 * time.Minute)}}
}

// one returns the only invariant named name from Default(cfg).
func one(t *testing.T, cfg Config, name string) Invariant {
	t.Helper()
	for _, inv := range Default(cfg) {
		if inv.Name() == name {
			return inv
		}
	}
	t.Fatalf("no invariant %s", name)
	return nil
}

func eval(t *testing.T, inv Invariant, s *tikv.Snapshot, now time.Time) []Violation {
	t.Helper()
	vs, err := inv.Eval(context.Background(), s, now)
	if err != nil {
		t.Fatalf("%s: %v", inv.Name(), err)
	}
	return vs
}

func subjects(vs []Violation) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Subject)
	}
	slices.Sort(out)
	return out
}

func TestStoreHeartbeatStates(t *testing.T) {
	cfg := DefaultConfig()
	disc, unh, down := one(t, cfg, NameStoreDisconnected), one(t, cfg, NameStoreUnhealthy), one(t, cfg, NameStoreDown)
	mk := func(state string, age time.Duration) *tikv.Snapshot {
		st := store(4, 1, 1)
		st.Store.StateName = state
		st.Store.LastHeartbeat = t0.Add(-age).UnixNano()
		return snap(st)
	}
	tests := []struct {
		state               string
		age                 time.Duration
		disc, unhealthy, dn bool
	}{
		{pd.StateUp, 5 * time.Second, false, false, false},
		{pd.StateDisconnected, 31 * time.Second, true, false, false},
		{pd.StateDisconnected, 10 * time.Minute, true, false, false},
		{pd.StateDisconnected, 10*time.Minute + time.Second, false, true, false},
		{pd.StateDown, 31 * time.Minute, false, false, true},
		{pd.StateOffline, time.Hour, false, false, false}, // PD classifies Removing stores as offline only
	}
	for _, tt := range tests {
		s := mk(tt.state, tt.age)
		if got := len(eval(t, disc, s, t0)) == 1; got != tt.disc {
			t.Errorf("%s %s: disconnected=%v", tt.state, tt.age, got)
		}
		if got := len(eval(t, unh, s, t0)) == 1; got != tt.unhealthy {
			t.Errorf("%s %s: unhealthy=%v", tt.state, tt.age, got)
		}
		if got := len(eval(t, down, s, t0)) == 1; got != tt.dn {
			t.Errorf("%s %s: down=%v", tt.state, tt.age, got)
		}
	}
	v := eval(t, disc, mk(pd.StateDisconnected, 31*time.Second), t0.Add(time.Hour))[0]
	if v.Subject != "store:4" || v.Severity != ticket.Warning {
		t.Errorf("%+v", v)
	}
	// Ages are measured on PD's clock (Snapshot.Time), not the local one.
	if v.Evidence["heartbeat_age_seconds"] != 31.0 || v.Evidence["threshold_seconds"] != 20.0 ||
		v.Evidence["state_name"] != "Disconnected" || v.Evidence["store_id"] != uint64(4) {
		t.Errorf("evidence %v", v.Evidence)
	}
	if !strings.Contains(v.Summary, "31s") {
		t.Errorf("summary %q", v.Summary)
	}
	d := eval(t, down, mk(pd.StateDown, 31*time.Minute), t0)[0]
	if d.Severity != ticket.Emergency || d.Evidence["max_store_down_time_seconds"] != 1800.0 {
		t.Errorf("%+v", d)
	}
}

func TestStoreLowSpace(t *testing.T) {
	small := func(regions int, capacity, avail pd.ByteSize) *tikv.Snapshot {
		st := store(1, 0, regions)
		st.Status.Capacity, st.Status.Available = capacity, avail
		return snap(st)
	}
	def := one(t, DefaultConfig(), NameStoreLowSpace)
	// 100 GiB disk, 15 GiB free, 10 regions: PD exempts it (< 100 regions
	// and > 8 GiB free).
	if vs := eval(t, def, small(10, 100*gib, 15*gib), t0); len(vs) != 0 {
		t.Errorf("PD exemption ignored: %v", vs)
	}
	// ... unless the exemption is disabled (small simulated clusters).
	cfg := DefaultConfig()
	cfg.LowSpaceMinRegionCount = 0
	vs := eval(t, one(t, cfg, NameStoreLowSpace), small(10, 100*gib, 15*gib), t0)
	if len(vs) != 1 || vs[0].Evidence["pd_would_exempt"] != true || vs[0].Evidence["available_ratio"] != 0.15 {
		t.Fatalf("exemption disabled: %v", vs)
	}
	// 7 GiB free is not exempt even with few regions.
	if vs := eval(t, def, small(10, 100*gib, 7*gib), t0); len(vs) != 1 {
		t.Errorf("7 GiB free: %v", vs)
	}
	// capacity 0 is never low space (PD).
	if vs := eval(t, def, small(500, 0, 0), t0); len(vs) != 0 {
		t.Errorf("capacity 0: %v", vs)
	}
	// PD's low-space-ratio is read from the snapshot: at 0.9 a 15% free
	// store with 500 regions is fine.
	s := small(500, 100*gib, 15*gib)
	s.Schedule.LowSpaceRatio = 0.9
	if vs := eval(t, def, s, t0); len(vs) != 0 {
		t.Errorf("ratio 0.9: %v", vs)
	}
	// The operator's override wins.
	cfg = DefaultConfig()
	cfg.LowSpaceRatio = 0.7
	if vs := eval(t, one(t, cfg, NameStoreLowSpace), s, t0); len(vs) != 1 || vs[0].Evidence["low_space_ratio_source"] != "operator config" {
		t.Errorf("override: %v", vs)
	}
	// Down stores are not counted (PD).
	s = small(500, 100*gib, 1*gib)
	s.Stores[0].Store.StateName = pd.StateDown
	if vs := eval(t, def, s, t0); len(vs) != 0 {
		t.Errorf("down store: %v", vs)
	}
}

func TestClusterSpaceUsed(t *testing.T) {
	inv := one(t, DefaultConfig(), NameClusterSpaceUsed)
	a, b := store(1, 0, 0), store(2, 0, 0)
	a.Status.UsedSize, b.Status.UsedSize = 85*gib, 80*gib // 165/200 = 82.5%
	vs := eval(t, inv, snap(a, b), t0)
	if len(vs) != 1 || vs[0].Subject != SubjectCluster || vs[0].Evidence["used_ratio"] != 0.825 || vs[0].Evidence["threshold"] != 0.8 {
		t.Fatalf("%v", vs)
	}
	b.Status.UsedSize = 75 * gib // 80% is not > 80%
	if vs := eval(t, inv, snap(a, b), t0); len(vs) != 0 {
		t.Errorf("at 80%%: %v", vs)
	}
}

func TestStoreCapacitySuspect(t *testing.T) {
	inv := one(t, DefaultConfig(), NameStoreCapacitySuspect)
	tiny := store(9, 0, 0)
	tiny.Status.Capacity = 500 * (1 << 20) // 500 MiB < 1% of 100 GiB
	tiny.Status.Available = 400 * (1 << 20)
	flash := store(20, 0, 0) // a lone TiFlash store is compared with nothing
	flash.Store.Labels = []pd.Label{{Key: "engine", Value: "tiflash"}}
	flash.Status.Capacity = 1 * gib
	vs := eval(t, inv, snap(store(1, 0, 0), store(2, 0, 0), tiny, flash), t0)
	if got := subjects(vs); !slices.Equal(got, []string{"store:9"}) {
		t.Fatalf("got %v", got)
	}
	if vs[0].Evidence["median_capacity_bytes"] != uint64(100*gib) {
		t.Errorf("%v", vs[0].Evidence)
	}
}

func TestStoreSlow(t *testing.T) {
	inv := one(t, DefaultConfig(), NameStoreSlow)
	a, b, c := store(1, 0, 0), store(2, 0, 0), store(3, 0, 0)
	a.Status.SlowScore, b.Status.SlowScore, c.Status.SlowScore = 80, 79, 100
	c.Store.StateName = pd.StateDisconnected // PD counts it as disconnected, not slow
	s := snap(a, b, c)
	s.Schedulers = []string{"balance-leader-scheduler", "evict-slow-store-scheduler"}
	vs := eval(t, inv, s, t0)
	if got := subjects(vs); !slices.Equal(got, []string{"store:1"}) {
		t.Fatalf("got %v", got)
	}
	if vs[0].Severity != ticket.Critical || vs[0].Evidence["slow_score"] != uint64(80) ||
		vs[0].Evidence["threshold"] != uint64(80) || vs[0].Evidence["evict_slow_store_scheduler"] != true {
		t.Errorf("%+v", vs[0])
	}
}

func TestLeaderImbalanceProperty(t *testing.T) {
	inv := one(t, DefaultConfig(), NameLeaderImbalance)
	tests := []struct {
		counts []int
		want   bool
	}{
		{[]int{7, 0, 0}, true},
		{[]int{6, 1, 0}, false}, // one transfer-leader from 7,0,0
		{[]int{8, 3, 3}, false}, // a fresh simulator cluster PD leaves alone
		{[]int{1, 1, 1}, false},
		{[]int{100, 0, 0}, true},
		{[]int{17, 25, 18}, false},         // A4
		{[]int{18, 12, 11, 12, 11}, false}, // A5
		{[]int{10000, 10000, 3000}, true},
		{[]int{10000, 10000, 7000}, false}, // within 60% of the mean
	}
	for _, tt := range tests {
		var stores []pd.StoreInfo
		for i, c := range tt.counts {
			stores = append(stores, store(uint64(i+1), c, 100))
		}
		vs := eval(t, inv, snap(stores...), t0)
		if got := len(vs) == 1; got != tt.want {
			t.Errorf("%v: violated=%v want %v (%v)", tt.counts, got, tt.want, vs)
		}
	}
	vs := eval(t, inv, snap(store(1, 7, 7), store(2, 0, 7), store(3, 0, 7)), t0)
	ev := vs[0].Evidence
	if ev["max_store_id"] != uint64(1) || ev["min_store_id"] != uint64(2) || ev["diff"] != 7 || ev["threshold"] != 6.0 {
		t.Errorf("evidence %v", ev)
	}
	if counts := ev["leader_counts"].(map[string]int); counts["1"] != 7 || counts["2"] != 0 || counts["3"] != 0 {
		t.Errorf("counts %v", counts)
	}
	// Disconnected, Offline and evict-leader stores are not compared.
	off := store(4, 0, 3)
	off.Store.StateName = pd.StateOffline
	ev4 := store(5, 0, 3)
	s := snap(store(1, 2, 3), store(2, 1, 3), off, ev4)
	s.EvictLeaderStores = []uint64{5}
	if vs := eval(t, inv, s, t0); len(vs) != 0 {
		t.Errorf("excluded stores counted: %v", vs)
	}
}

func TestRegionImbalance(t *testing.T) {
	inv := one(t, DefaultConfig(), NameRegionImbalance)
	if vs := eval(t, inv, snap(store(1, 0, 100), store(2, 0, 100), store(3, 0, 60)), t0); len(vs) != 1 {
		t.Errorf("100,100,60: %v", vs)
	} else if vs[0].Evidence["region_counts"].(map[string]int)["3"] != 60 {
		t.Errorf("%v", vs[0].Evidence)
	}
	if vs := eval(t, inv, snap(store(1, 0, 100), store(2, 0, 100), store(3, 0, 80)), t0); len(vs) != 0 {
		t.Errorf("100,100,80: %v", vs)
	}
}

func TestStoreNoLeaders(t *testing.T) {
	inv := one(t, DefaultConfig(), NameStoreNoLeaders)
	fresh := store(3, 0, 10)
	fresh.Status.Uptime = pd.Duration(5 * time.Minute)
	s := snap(store(1, 10, 10), store(2, 0, 10), fresh)
	s.EvictLeaderStores = []uint64{2}
	s.Schedulers = []string{"evict-leader-scheduler", "balance-leader-scheduler"}
	vs := eval(t, inv, s, t0)
	if got := subjects(vs); !slices.Equal(got, []string{"store:2"}) {
		t.Fatalf("got %v", got)
	}
	if vs[0].Evidence["evict_leader_scheduler"] != true {
		t.Errorf("%v", vs[0].Evidence)
	}
	// Nobody has leaders (e.g. a cluster just started): not this invariant.
	if vs := eval(t, inv, snap(store(1, 0, 10), store(2, 0, 10)), t0); len(vs) != 0 {
		t.Errorf("%v", vs)
	}
}

func regionWith(id uint64, stores ...uint64) pd.Region {
	r := pd.Region{ID: id}
	for i, s := range stores {
		r.Peers = append(r.Peers, pd.Peer{ID: id*10 + uint64(i), StoreID: s})
	}
	if len(r.Peers) > 0 {
		r.Leader = r.Peers[0]
	}
	return r
}

func TestRegionChecks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PendingPeerMaxRegions = 1
	s := snap(store(1, 1, 1), store(2, 1, 1), store(3, 1, 1))
	pending := []pd.Region{regionWith(10, 1, 2, 3), regionWith(11, 1, 2, 3), regionWith(12, 2, 1, 3)}
	pending[0].PendingPeers = []pd.Peer{pending[0].Peers[2]}
	pending[1].PendingPeers = []pd.Peer{pending[1].Peers[2]}
	pending[2].PendingPeers = []pd.Peer{pending[2].Peers[1]}
	down := []pd.Region{regionWith(20, 1, 2, 3)}
	down[0].DownPeers = []pd.DownPeer{{Peer: down[0].Peers[1], DownSeconds: 700}}
	var miss []pd.Region
	for i := range 101 {
		miss = append(miss, regionWith(uint64(100+i), 1, 2))
	}
	s.Checks = map[string][]pd.Region{
		tikv.CheckPendingPeer: pending, tikv.CheckDownPeer: down, tikv.CheckMissPeer: miss,
		tikv.CheckExtraPeer: {regionWith(30, 1, 2, 3, 4)},
	}
	got := evalAll(t, Default(cfg), s, t0)
	// Region 20's down peer is on store 2, which is Up: PD never repairs
	// it (region_down_peer_unrepaired, down_seconds 700 >= 10m).
	want := []string{"region_down_peer/cluster", "region_down_peer_unrepaired/cluster", "region_extra_peer/cluster", "region_miss_peer/cluster", "region_pending_peer/cluster"}
	if !slices.Equal(keys(got), want) {
		t.Fatalf("got %v want %v", keys(got), want)
	}
	p := got["region_pending_peer/cluster"]
	if p.Evidence["region_count"] != 3 || p.Evidence["threshold"] != 1 || p.Evidence["top_store_id"] != uint64(3) ||
		p.Evidence["top_store_peers"] != 2 || !slices.Equal(p.Evidence["sample_region_ids"].([]uint64), []uint64{10, 11, 12}) {
		t.Errorf("pending evidence %v", p.Evidence)
	}
	d := got["region_down_peer/cluster"]
	if d.Evidence["peers_by_store"].(map[string]int)["2"] != 1 || d.Evidence["max_down_seconds_by_store"].(map[string]uint64)["2"] != 700 {
		t.Errorf("down evidence %v", d.Evidence)
	}
	m := got["region_miss_peer/cluster"]
	if m.Severity != ticket.Critical || len(m.Evidence["sample_region_ids"].([]uint64)) != DefaultSampleRegions {
		t.Errorf("miss evidence %s %v", m.Severity, m.Evidence)
	}
	// Under the default pending threshold (100, PingCAP) three regions hold.
	if vs := eval(t, one(t, DefaultConfig(), NameRegionPendingPeer), s, t0); len(vs) != 0 {
		t.Errorf("default pending threshold: %v", vs)
	}
}

func TestRegionOfflinePeer(t *testing.T) {
	inv := one(t, DefaultConfig(), NameRegionOfflinePeer)
	o4, o5 := store(4, 0, 10), store(5, 0, 10)
	o4.Store.StateName, o5.Store.StateName = pd.StateOffline, pd.StateOffline
	o4.Store.NodeState, o5.Store.NodeState = pd.NodeRemoving, pd.NodeRemoving
	s := snap(store(1, 1, 1), store(2, 1, 1), store(3, 1, 1), o4, o5)
	s.Checks = map[string][]pd.Region{tikv.CheckOfflinePeer: {regionWith(1, 1, 2, 4), regionWith(2, 1, 4, 5)}}
	vs := eval(t, inv, s, t0)
	if len(vs) != 1 || vs[0].Evidence["quorum_at_risk_regions"] != 1 || vs[0].Evidence["offline_peer_regions"] != 2 ||
		!slices.Equal(vs[0].Evidence["sample_region_ids"].([]uint64), []uint64{2}) {
		t.Fatalf("%v", vs)
	}
	s.Checks[tikv.CheckOfflinePeer] = s.Checks[tikv.CheckOfflinePeer][:1] // one offline peer: a normal drain
	if vs := eval(t, inv, s, t0); len(vs) != 0 {
		t.Errorf("%v", vs)
	}
}

func TestHotWriteStore(t *testing.T) {
	inv := one(t, DefaultConfig(), NameHotWriteStore)
	s := snap(store(1, 1, 1), store(2, 1, 1), store(3, 1, 1))
	const mib = 1 << 20
	s.HotWrite = pd.HotRegions{AsLeader: map[string]pd.HotPeersStat{
		"1": {TotalBytesRate: 8 * mib, Count: 3, Stats: []pd.HotPeerStat{
			{StoreID: 1, RegionID: 7, ByteRate: 1 * mib}, {StoreID: 1, RegionID: 8, ByteRate: 5 * mib}, {StoreID: 1, RegionID: 9, ByteRate: 2 * mib}}},
		"2": {TotalBytesRate: 1 * mib, Count: 1, Stats: []pd.HotPeerStat{{StoreID: 2, RegionID: 10, ByteRate: 1 * mib}}},
	}}
	s.HotStores = pd.HotStores{BytesWriteRate: map[string]float64{"1": 9 * mib}}
	vs := eval(t, inv, s, t0)
	if len(vs) != 1 || vs[0].Subject != "store:1" {
		t.Fatalf("%v", vs)
	}
	ev := vs[0].Evidence
	if !slices.Equal(ev["hottest_region_ids"].([]uint64), []uint64{8, 9, 7}) || ev["share"] != 0.888889 || ev["store_write_bytes_per_sec"] != 9.0*mib {
		t.Errorf("evidence %v", ev)
	}
	// Below the minimum flow nothing fires, however concentrated.
	cfg := DefaultConfig()
	cfg.HotWriteMinBytesPerSec = 16 * mib
	if vs := eval(t, one(t, cfg, NameHotWriteStore), s, t0); len(vs) != 0 {
		t.Errorf("%v", vs)
	}
}

func TestRegionOversizedCap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OversizedMaxSubjects = 2
	s := snap(store(1, 1, 1))
	for i := range 5 {
		r := regionWith(uint64(i+1), 1)
		r.ApproximateSize = int64(400 + i)
		s.Checks = map[string][]pd.Region{tikv.CheckOversizedRegion: append(s.Checks[tikv.CheckOversizedRegion], r)}
	}
	vs := eval(t, one(t, cfg, NameRegionOversized), s, t0)
	if got := subjects(vs); !slices.Equal(got, []string{"region:4", "region:5"}) {
		t.Fatalf("got %v", got)
	}
}

// TestStoreOfflineStuckSteps passes time step by step: no sleeping.
func TestStoreOfflineStuckSteps(t *testing.T) {
	inv := NewStoreOfflineStuck(0, 30*time.Minute)
	off := func(regions int) *tikv.Snapshot {
		o := store(4, 0, regions)
		o.Store.StateName, o.Store.NodeState = pd.StateOffline, pd.NodeRemoving
		s := snap(store(1, 1, 10), store(2, 1, 10), store(3, 1, 10), o)
		s.Progress = map[uint64]pd.StoreProgress{4: {Action: "removing", StoreID: 4, Progress: 0.5, LeftSeconds: 3600}}
		return s
	}
	steps := []struct {
		at      time.Duration
		regions int
		want    bool
	}{
		{0, 20, false},
		{10 * time.Minute, 18, false}, // progress resets the window
		{39 * time.Minute, 18, false}, // flat for 29m
		{40 * time.Minute, 19, true},  // flat (or worse) for 30m since 10m
		{41 * time.Minute, 17, false}, // progress again
		{71 * time.Minute, 17, true},
	}
	for _, st := range steps {
		vs := eval(t, inv, off(st.regions), t0.Add(st.at))
		if got := len(vs) == 1; got != st.want {
			t.Fatalf("at %s with %d regions: violated=%v want %v", st.at, st.regions, got, st.want)
		}
		if st.want {
			ev := vs[0].Evidence
			if ev["unchanged_seconds"] != 1800.0 || ev["cannot_finish"] != false || ev["progress"] != 0.5 || vs[0].Severity != ticket.Warning {
				t.Errorf("at %s evidence %v", st.at, ev)
			}
		}
	}
	// The store leaves Offline (cancelled drain): its history is dropped.
	eval(t, inv, snap(store(1, 1, 10), store(2, 1, 10), store(3, 1, 10), store(4, 0, 17)), t0.Add(72*time.Minute))
	if vs := eval(t, inv, off(17), t0.Add(73*time.Minute)); len(vs) != 0 {
		t.Errorf("history survived: %v", vs)
	}
}

func TestStoreOfflineStuckCannotFinish(t *testing.T) {
	inv := NewStoreOfflineStuck(0, 30*time.Minute)
	o := store(3, 1, 10)
	o.Store.StateName = pd.StateOffline
	vs := eval(t, inv, snap(store(1, 5, 10), store(2, 4, 10), o), t0)
	if len(vs) != 1 || vs[0].Severity != ticket.Critical || vs[0].Evidence["cannot_finish"] != true {
		t.Fatalf("%v", vs)
	}
}

func TestTombstonePileup(t *testing.T) {
	inv := one(t, DefaultConfig(), NameTombstonePileup)
	s := snap(store(1, 1, 1))
	for i := range 4 {
		ts := store(uint64(10+i), 0, 0)
		ts.Store.StateName = pd.StateTombstone
		s.Tombstones = append(s.Tombstones, ts)
	}
	s.Tombstones[3].Store.Address = s.Stores[0].Store.Address // a live store reuses the address
	vs := eval(t, inv, s, t0)
	if len(vs) != 1 || vs[0].Evidence["tombstone_count"] != 4 ||
		!slices.Equal(vs[0].Evidence["duplicate_addresses"].([]string), []string{s.Stores[0].Store.Address}) {
		t.Fatalf("%v", vs)
	}
	s.Tombstones = s.Tombstones[:3]
	if vs := eval(t, inv, s, t0); len(vs) != 0 {
		t.Errorf("%v", vs)
	}
}

func TestPDHealth(t *testing.T) {
	cfg := DefaultConfig()
	s := snap(store(1, 1, 1))
	s.Health = []pd.MemberHealth{{Name: "pd1", Health: true}, {Name: "pd2", Health: false}}
	s.Members = pd.Members{Members: []pd.Member{{Name: "pd1"}, {Name: "pd2"}}}
	got := evalAll(t, []Invariant{one(t, cfg, NamePDUnhealthy), one(t, cfg, NamePDNoLeader)}, s, t0)
	if !slices.Equal(keys(got), []string{"pd_no_leader/cluster", "pd_unhealthy/cluster"}) {
		t.Fatalf("%v", keys(got))
	}
	s.Health[1].Health = true
	s.Members.Leader = &s.Members.Members[0]
	if got := evalAll(t, []Invariant{one(t, cfg, NamePDUnhealthy), one(t, cfg, NamePDNoLeader)}, s, t0); len(got) != 0 {
		t.Fatalf("%v", keys(got))
	}
}

// TestSourceErrors: an invariant whose source failed returns an error, not
// a violation; the others still evaluate.
func TestSourceErrors(t *testing.T) {
	s := snap(store(1, 1, 1), store(2, 0, 1))
	s.Errors = map[string]error{
		"hotspot/write":           errors.New("500"),
		"regions/check/down-peer": errors.New("timeout"),
		"health":                  errors.New("refused"),
	}
	failed := map[string]bool{}
	for _, inv := range Default(DefaultConfig()) {
		_, err := inv.Eval(context.Background(), s, t0)
		if err == nil {
			continue
		}
		var se *SourceError
		if !errors.Is(err, ErrSourceUnavailable) || !errors.As(err, &se) {
			t.Errorf("%s: %v is not a SourceError", inv.Name(), err)
		}
		failed[inv.Name()] = true
	}
	want := []string{NameHotWriteStore, NamePDUnhealthy, NameRegionDownPeer, NameRegionDownPeerUnrepaired}
	if got := keys(failed); !slices.Equal(got, want) {
		t.Fatalf("failed %v want %v", got, want)
	}
	// Every store invariant depends on GET /stores.
	s.Errors = map[string]error{"stores": errors.New("connection refused")}
	for _, name := range []string{NameStoreDown, NameStoreLowSpace, NameLeaderImbalance, NameStoreOfflineStuck} {
		if _, err := one(t, DefaultConfig(), name).Eval(context.Background(), s, t0); !errors.Is(err, ErrSourceUnavailable) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A store's removal progress is optional evidence.
	s.Errors = map[string]error{tikv.SourceProgress(4): errors.New("404")}
	if _, err := one(t, DefaultConfig(), NameStoreDown).Eval(context.Background(), s, t0); err != nil {
		t.Errorf("progress failed store_down: %v", err)
	}
}

func TestConfig(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	invs := Default(cfg)
	var names []string
	for _, inv := range invs {
		names = append(names, inv.Name())
	}
	if want := Names()[:len(Names())-1]; !slices.Equal(names, want) {
		t.Fatalf("Default names %v, want %v", names, want)
	}
	for _, inv := range invs {
		want := DefaultFor
		switch inv.Name() {
		case NameStoreOfflineStuck, NameRegionDownPeerUnrepaired, NameOperatorTimeouts, NameRegionPendingPeerStuck, NameStoreLeaderDrop,
			NameStoreDisconnected, NameStoreUnhealthy, NameStoreDown: // PD debounced them (issue 17)
			want = 0
		}
		if For(inv) != want {
			t.Errorf("%s For %s", inv.Name(), For(inv))
		}
	}
	if cfg.ForOf(NamePDUnreachable) != DefaultPDUnreachableFor {
		t.Errorf("pd_unreachable for %s", cfg.ForOf(NamePDUnreachable))
	}
	cfg.Disabled = []string{NameStoreSlow}
	cfg.For = map[string]time.Duration{NameStoreDown: 5 * time.Second}
	for _, inv := range Default(cfg) {
		if inv.Name() == NameStoreSlow {
			t.Error("disabled invariant returned")
		}
		if inv.Name() == NameStoreDown && For(inv) != 5*time.Second {
			t.Errorf("for override: %s", For(inv))
		}
	}
	bad := DefaultConfig()
	bad.For = map[string]time.Duration{"store_dwon": time.Second}
	bad.SlowScore = 101
	bad.LowSpaceRatio = 1
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "store_dwon") || !strings.Contains(err.Error(), "slow-score") ||
		!strings.Contains(err.Error(), "low-space-ratio") {
		t.Errorf("Validate: %v", err)
	}
	if For(WithFor(one(t, cfg, NameStoreDown), time.Hour)) != time.Hour {
		t.Error("WithFor")
	}
}

func TestViolationObservation(t *testing.T) {
	v := Violation{Subject: "store:4", Severity: ticket.Warning, Summary: "s",
		Evidence: map[string]any{"store_id": uint64(4), "heartbeat_age_seconds": 31.0}}
	obs, err := v.Observation(NameStoreDisconnected)
	if err != nil {
		t.Fatal(err)
	}
	if obs.Key() != "store_disconnected/store:4" {
		t.Errorf("key %s", obs.Key())
	}
	var m map[string]any
	if err := json.Unmarshal(obs.Evidence, &m); err != nil || m["store_id"] != 4.0 {
		t.Errorf("evidence %s %v", obs.Evidence, err)
	}
	if _, err := (Violation{Evidence: map[string]any{"bad": func() {}}}).Observation("x"); err == nil {
		t.Error("unencodable evidence accepted")
	}
}
