package rules_test

// Pure-logic tests of the runbooks: constructed Contexts (PD-shaped
// stores, regions, schedulers and ticket evidence as the invariants write
// it), no I/O. Every proposal is checked against the real TiKV catalog's
// parameter specs.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/rules"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// st builds an Up TiKV store with 1 TiB of 2 TiB free; mods adjust it.
func st(id uint64, leaders, regions int, mods ...func(*pd.StoreInfo)) pd.StoreInfo {
	s := pd.StoreInfo{
		Store: pd.StoreMeta{ID: id, Address: fmt.Sprintf("10.0.0.%d:20160", id), Version: "8.5.0", StateName: pd.StateUp,
			LastHeartbeat: now.Add(-5 * time.Second).UnixNano()},
		Status: pd.StoreStatus{Capacity: 2 << 40, Available: 1 << 40, UsedSize: 1 << 40, LeaderCount: leaders, RegionCount: regions,
			LeaderWeight: 1, RegionWeight: 1, Uptime: pd.Duration(48 * time.Hour)},
	}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func state(name string) func(*pd.StoreInfo) {
	return func(s *pd.StoreInfo) {
		s.Store.StateName = name
		if name == pd.StateOffline {
			s.Store.NodeState = pd.NodeRemoving
		}
	}
}

func heartbeatAgo(d time.Duration) func(*pd.StoreInfo) {
	return func(s *pd.StoreInfo) { s.Store.LastHeartbeat = now.Add(-d).UnixNano() }
}

func avail(avail, capacity, used pd.ByteSize) func(*pd.StoreInfo) {
	return func(s *pd.StoreInfo) {
		s.Status.Available, s.Status.Capacity, s.Status.UsedSize = avail, capacity, used
	}
}

func slowScore(n uint64) func(*pd.StoreInfo) { return func(s *pd.StoreInfo) { s.Status.SlowScore = n } }

func version(v string) func(*pd.StoreInfo) { return func(s *pd.StoreInfo) { s.Store.Version = v } }

func tiflash(s *pd.StoreInfo) { s.Store.Labels = []pd.Label{{Key: "engine", Value: "tiflash"}} }

// rg builds a region led by leader with voters on stores, 96 MiB.
func rg(id, leader uint64, voters ...uint64) pd.Region {
	r := pd.Region{ID: id, StartKey: fmt.Sprintf("7480%04d", id), EndKey: fmt.Sprintf("7480%04d", id+1),
		Epoch: pd.Epoch{ConfVer: 5, Version: 5}, ApproximateSize: 96, ApproximateKeys: 960000}
	for _, s := range voters {
		p := pd.Peer{ID: id*100 + s, StoreID: s, RoleName: "Voter"}
		r.Peers = append(r.Peers, p)
		if s == leader {
			r.Leader = p
		}
	}
	return r
}

func learner(r pd.Region, store uint64) pd.Region {
	r.Peers = append(r.Peers, pd.Peer{ID: r.ID*100 + store, StoreID: store, RoleName: "Learner", IsLearner: true})
	return r
}

func pending(r pd.Region, store uint64) pd.Region {
	p, _ := r.PeerOn(store)
	r.PendingPeers = append(r.PendingPeers, p)
	return r
}

func down(r pd.Region, store uint64) pd.Region {
	p, _ := r.PeerOn(store)
	r.DownPeers = append(r.DownPeers, pd.DownPeer{Peer: p, DownSeconds: 700})
	return r
}

func sized(r pd.Region, mib, keys int64) pd.Region {
	r.ApproximateSize, r.ApproximateKeys = mib, keys
	return r
}

// cx builds a context for a ticket of invariant name on subject with the
// given evidence; PD's default schedulers run, max-replicas 3.
func cx(name, subject string, ev map[string]any, stores []pd.StoreInfo, regions ...pd.Region) *diagnose.Context {
	raw, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return &diagnose.Context{
		Time: now,
		Ticket: ticket.Ticket{ID: 1, Key: name + "/" + subject, Invariant: name, Subject: subject, Severity: ticket.Warning,
			Status: ticket.Open, Summary: name + " on " + subject, Evidence: raw, FirstEvidence: raw},
		Stores:      stores,
		Regions:     regions,
		Operators:   []pd.Operator{},
		Schedule:    pd.ScheduleConfig{LeaderScheduleLimit: 4, RegionScheduleLimit: 2048, ReplicaScheduleLimit: 64, HotRegionScheduleLimit: 4, LowSpaceRatio: 0.8, HighSpaceRatio: 0.7, MaxStoreDownTime: pd.Duration(30 * time.Minute)},
		Replication: pd.ReplicationConfig{MaxReplicas: 3, EnablePlacementRules: "true"},
		Schedulers:  []string{"balance-leader-scheduler", "balance-region-scheduler", "balance-hot-region-scheduler", "evict-slow-store-scheduler"},
	}
}

func without(list []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == name })
}

// run diagnoses c and checks what every diagnosis must have.
func run(t *testing.T, c *diagnose.Context) *diagnose.Diagnosis {
	t.Helper()
	d, err := rules.New(rules.Options{}).Diagnose(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, d)
	t.Logf("%s", d.Markdown())
	return d
}

func checkShape(t *testing.T, d *diagnose.Diagnosis) {
	t.Helper()
	if d.Summary == "" || d.RootCause == "" || len(d.Evidence) == 0 || !d.Confidence.Valid() || len(d.Risks) == 0 || d.Backend != rules.Name {
		t.Errorf("incomplete diagnosis: %+v", d)
	}
	switch {
	case d.ProposedAction != nil && d.NoActionReason != "":
		t.Errorf("both a proposal and a no-action reason: %+v", d)
	case d.ProposedAction == nil && !strings.HasPrefix(d.NoActionReason, rules.NoActionPrefix):
		t.Errorf("no proposal and reason %q", d.NoActionReason)
	case d.ProposedAction != nil:
		pa := d.ProposedAction
		spec, ok := specs[pa.ActionType]
		if !ok {
			t.Fatalf("proposed %q, not in the catalog", pa.ActionType)
		}
		if err := action.ValidateParams(spec, pa.Params); err != nil {
			t.Errorf("%s params %s: %v", pa.ActionType, pa.Params, err)
		}
		if !diagnose.ValidUrgency(pa.Urgency) || pa.Rationale == "" {
			t.Errorf("proposal %+v", pa)
		}
		if pa.ActionType == tikv.ActionSetLowSpaceThreshold || pa.ActionType == tikv.ActionDrainStore || strings.Contains(string(pa.Params), "force") {
			t.Errorf("forbidden proposal %s %s", pa.ActionType, pa.Params)
		}
	}
}

var specs map[string]action.Spec

func params(t *testing.T, d *diagnose.Diagnosis, want string) map[string]uint64 {
	t.Helper()
	if d.ProposedAction == nil {
		t.Fatalf("no proposal, want %s: %s\nroot cause: %s", want, d.NoActionReason, d.RootCause)
	}
	if d.ProposedAction.ActionType != want {
		t.Fatalf("proposed %s %s, want %s", d.ProposedAction.ActionType, d.ProposedAction.Params, want)
	}
	var raw map[string]any
	if err := json.Unmarshal(d.ProposedAction.Params, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			out[k] = uint64(f)
		}
	}
	return out
}

func noAction(t *testing.T, d *diagnose.Diagnosis, contains ...string) {
	t.Helper()
	if d.ProposedAction != nil {
		t.Fatalf("proposed %s %s, want none", d.ProposedAction.ActionType, d.ProposedAction.Params)
	}
	text := d.NoActionReason + "\n" + d.RootCause + "\n" + strings.Join(d.Evidence, "\n")
	for _, c := range contains {
		if !strings.Contains(text, c) {
			t.Errorf("diagnosis lacks %q:\n%s", c, text)
		}
	}
}

// init loads the real TiKV catalog's specs (tikv.NewCatalog does no I/O).
func init() {
	c, err := pd.New([]string{"127.0.0.1:1"})
	if err != nil {
		panic(err)
	}
	specs = map[string]action.Spec{}
	for _, s := range tikv.NewCatalog(c).Specs() {
		specs[s.Name] = s
	}
}

func TestEveryInvariantHasARunbook(t *testing.T) {
	have := rules.Runbooks()
	for _, n := range invariant.Names() {
		if !slices.Contains(have, n) {
			t.Errorf("no runbook for %s", n)
		}
	}
	if rules.New(rules.Options{}).Name() != "rules" {
		t.Error("name")
	}
}

// leaderCluster: store 1 leads 90, store 2 8, store 3 2; regions 10-12
// led by store 1 with voters on 1, 2, 3.
func leaderCluster() *diagnose.Context {
	ev := map[string]any{"leader_counts": map[string]int{"1": 90, "2": 8, "3": 2}, "max_store_id": 1, "min_store_id": 3,
		"max_count": 90, "min_count": 2, "diff": 88, "threshold": 20, "ratio": 0.6, "min_diff": 2, "balance_schedule": "absent"}
	c := cx(invariant.NameLeaderImbalance, "cluster", ev,
		[]pd.StoreInfo{st(1, 90, 100), st(2, 8, 100), st(3, 2, 100)},
		rg(10, 1, 1, 2, 3), rg(11, 1, 1, 2, 3), rg(12, 2, 1, 2, 3))
	c.Schedulers = without(c.Schedulers, "balance-leader-scheduler")
	return c
}

func TestLeaderImbalance(t *testing.T) {
	t.Run("transfer to the least loaded store holding a voter", func(t *testing.T) {
		d := run(t, leaderCluster())
		p := params(t, d, tikv.ActionTransferLeader)
		if p["region_id"] != 10 || p["to_store_id"] != 3 {
			t.Errorf("params %v, want region 10 to store 3", p)
		}
		if !strings.Contains(d.RootCause, "not running") || d.Confidence != diagnose.ConfidenceHigh || d.ProposedAction.Urgency != action.Soon {
			t.Errorf("root cause %q confidence %s urgency %s", d.RootCause, d.Confidence, d.ProposedAction.Urgency)
		}
		if !strings.Contains(strings.Join(d.Evidence, "\n"), "store 1: 90, store 2: 8, store 3: 2") {
			t.Errorf("evidence lacks the counts: %q", d.Evidence)
		}
	})
	t.Run("paused balancer", func(t *testing.T) {
		c := leaderCluster()
		c.Schedulers = append(c.Schedulers, "balance-leader-scheduler")
		c.PausedSchedulers = []string{"balance-leader-scheduler"}
		d := run(t, c)
		params(t, d, tikv.ActionTransferLeader)
		if !strings.Contains(d.RootCause, "paused") {
			t.Errorf("root cause %q", d.RootCause)
		}
	})
	t.Run("running balancer: medium confidence, PD may move it back", func(t *testing.T) {
		c := leaderCluster()
		c.Schedulers = append(c.Schedulers, "balance-leader-scheduler")
		d := run(t, c)
		params(t, d, tikv.ActionTransferLeader)
		if d.Confidence != diagnose.ConfidenceMedium || d.ProposedAction.Urgency != action.WhenConvenient ||
			!strings.Contains(strings.Join(d.Risks, " "), "moves the leader back") {
			t.Errorf("confidence %s urgency %s risks %q", d.Confidence, d.ProposedAction.Urgency, d.Risks)
		}
	})
	t.Run("pending voter on the lightest store: next lightest", func(t *testing.T) {
		c := leaderCluster()
		c.Regions = []pd.Region{pending(rg(10, 1, 1, 2, 3), 3)}
		p := params(t, run(t, c), tikv.ActionTransferLeader)
		if p["region_id"] != 10 || p["to_store_id"] != 2 {
			t.Errorf("params %v, want region 10 to store 2", p)
		}
	})
	t.Run("learner only on the lightest store", func(t *testing.T) {
		c := leaderCluster()
		c.Regions = []pd.Region{learner(rg(10, 1, 1, 2), 3), rg(11, 1, 1, 2, 3)}
		p := params(t, run(t, c), tikv.ActionTransferLeader)
		if p["region_id"] != 11 || p["to_store_id"] != 3 {
			t.Errorf("params %v, want region 11 to store 3", p)
		}
	})
	t.Run("running operator skipped", func(t *testing.T) {
		c := leaderCluster()
		c.Operators = []pd.Operator{{RegionID: 10, Desc: "balance-region", Status: 1}}
		p := params(t, run(t, c), tikv.ActionTransferLeader)
		if p["region_id"] != 11 {
			t.Errorf("params %v, want region 11", p)
		}
	})
	t.Run("evicted store left out", func(t *testing.T) {
		c := leaderCluster()
		c.EvictLeaderStores = []uint64{3}
		p := params(t, run(t, c), tikv.ActionTransferLeader)
		if p["to_store_id"] != 2 {
			t.Errorf("params %v, want store 2", p)
		}
	})
	t.Run("slow lightest store skipped", func(t *testing.T) {
		c := leaderCluster()
		c.Stores[2] = st(3, 2, 100, slowScore(90))
		p := params(t, run(t, c), tikv.ActionTransferLeader)
		if p["to_store_id"] != 2 {
			t.Errorf("params %v, want store 2", p)
		}
	})
	t.Run("no candidate region", func(t *testing.T) {
		c := leaderCluster()
		c.Regions = []pd.Region{rg(12, 2, 1, 2, 3)}
		noAction(t, run(t, c), "no region led by store 1")
	})
	t.Run("halted scheduling", func(t *testing.T) {
		c := leaderCluster()
		c.Schedule.HaltScheduling = "true"
		noAction(t, run(t, c), "halt-scheduling")
	})
	t.Run("skew follows leader weights", func(t *testing.T) {
		c := leaderCluster()
		c.Stores[0].Status.LeaderWeight = 4
		noAction(t, run(t, c), "leader weights")
	})
	t.Run("imbalance gone now", func(t *testing.T) {
		c := leaderCluster()
		c.Stores = []pd.StoreInfo{st(1, 34, 100), st(2, 33, 100), st(3, 33, 100)}
		noAction(t, run(t, c), "gone")
	})
	t.Run("deterministic whatever the input order", func(t *testing.T) {
		a := run(t, leaderCluster())
		c := leaderCluster()
		slices.Reverse(c.Stores)
		slices.Reverse(c.Regions)
		b := run(t, c)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("different diagnoses:\n%s\n%s", ja, jb)
		}
	})
}

func TestRegionImbalance(t *testing.T) {
	ev := map[string]any{"max_store_id": 1, "min_store_id": 3, "threshold": 30.0}
	t.Run("large gap: PD's job", func(t *testing.T) {
		c := cx(invariant.NameRegionImbalance, "cluster", ev, []pd.StoreInfo{st(1, 1, 200), st(2, 1, 100), st(3, 1, 20)}, rg(10, 2, 1, 2, 4))
		noAction(t, run(t, c), "one replica move cannot close")
	})
	t.Run("one move fixes it with the balancer off", func(t *testing.T) {
		ev := map[string]any{"threshold": 5.0}
		c := cx(invariant.NameRegionImbalance, "cluster", ev, []pd.StoreInfo{st(1, 1, 16), st(2, 1, 12), st(3, 1, 10), st(4, 1, 12)},
			rg(10, 2, 1, 2, 4), rg(11, 2, 1, 2, 3))
		c.Schedulers = without(c.Schedulers, "balance-region-scheduler")
		p := params(t, run(t, c), tikv.ActionTransferPeer)
		if p["region_id"] != 10 || p["from_store_id"] != 1 || p["to_store_id"] != 3 {
			t.Errorf("params %v", p)
		}
	})
	t.Run("one move, balancer running: PD does it", func(t *testing.T) {
		ev := map[string]any{"threshold": 5.0}
		c := cx(invariant.NameRegionImbalance, "cluster", ev, []pd.StoreInfo{st(1, 1, 16), st(2, 1, 12), st(3, 1, 10)}, rg(10, 2, 1, 2, 4))
		noAction(t, run(t, c), "balance-region scheduler is running")
	})
}

func TestStoreNoLeaders(t *testing.T) {
	ev := map[string]any{"store_id": 2, "evict_leader_scheduler": true, "uptime_seconds": 3600}
	base := func() *diagnose.Context {
		c := cx(invariant.NameStoreNoLeaders, "store:2", ev, []pd.StoreInfo{st(1, 50, 100), st(2, 0, 100), st(3, 50, 100)})
		c.Schedulers = append(c.Schedulers, "evict-leader-scheduler")
		c.EvictLeaderStores = []uint64{2}
		return c
	}
	t.Run("leftover evict-leader scheduler", func(t *testing.T) {
		d := run(t, base())
		if p := params(t, d, tikv.ActionRemoveEvictLeader); p["store_id"] != 2 {
			t.Errorf("params %v", p)
		}
		if d.Confidence != diagnose.ConfidenceHigh || !strings.Contains(strings.Join(d.Risks, " "), "upgrade") {
			t.Errorf("confidence %s, risks %q", d.Confidence, d.Risks)
		}
	})
	t.Run("legacy per-store scheduler name (PD 3.x)", func(t *testing.T) {
		c := base()
		c.EvictLeaderStores = nil
		c.Schedulers = append(without(c.Schedulers, "evict-leader-scheduler"), "evict-leader-scheduler-2")
		params(t, run(t, c), tikv.ActionRemoveEvictLeader)
	})
	t.Run("versions differ: an upgrade may be running", func(t *testing.T) {
		c := base()
		c.Stores[0] = st(1, 50, 100, version("8.5.1"))
		noAction(t, run(t, c), "upgrade", "8.5.0 on stores 2, 3; 8.5.1 on stores 1")
	})
	t.Run("slow store under eviction", func(t *testing.T) {
		c := base()
		c.Stores[1] = st(2, 0, 100, slowScore(95))
		noAction(t, run(t, c), "slow")
	})
	t.Run("no scheduler, balance-leader off", func(t *testing.T) {
		c := base()
		c.EvictLeaderStores = nil
		c.Schedulers = without(without(c.Schedulers, "evict-leader-scheduler"), "balance-leader-scheduler")
		noAction(t, run(t, c), "balance-leader-scheduler is absent")
	})
	t.Run("leaders are back", func(t *testing.T) {
		c := base()
		c.Stores[1] = st(2, 12, 100)
		noAction(t, run(t, c), "condition is gone")
	})
}

func hotContext(size, keys int64) *diagnose.Context {
	ev := map[string]any{"store_id": 1, "hot_write_bytes_per_sec": 33554432.0, "total_hot_write_bytes_per_sec": 35000000.0, "share": 0.96,
		"hottest_region_ids": []uint64{12, 10}, "hottest_region_bytes_per_sec": map[string]float64{"12": 30000000, "10": 3000000},
		"hot_write_bytes_by_store": map[string]float64{"1": 33554432, "2": 0, "3": 1445568}}
	return cx(invariant.NameHotWriteStore, "store:1", ev, []pd.StoreInfo{st(1, 40, 100), st(2, 30, 100), st(3, 30, 100)},
		rg(10, 1, 1, 2, 3), sized(rg(12, 1, 1, 2, 3), size, keys))
}

func TestHotWriteStore(t *testing.T) {
	t.Run("split the hottest region", func(t *testing.T) {
		d := run(t, hotContext(96, 900000))
		p := params(t, d, tikv.ActionSplitRegion)
		if p["region_id"] != 12 || !strings.Contains(string(d.ProposedAction.Params), `"policy":"approximate"`) {
			t.Errorf("params %s", d.ProposedAction.Params)
		}
	})
	t.Run("tiny hottest region: page", func(t *testing.T) {
		noAction(t, run(t, hotContext(1, 40)), "tiny", "AUTO_RANDOM")
	})
	t.Run("empty hottest region: page", func(t *testing.T) {
		noAction(t, run(t, hotContext(1, 0)), "tiny")
	})
	t.Run("hottest region gone: next one", func(t *testing.T) {
		c := hotContext(96, 900000)
		c.Regions = c.Regions[:1]
		if p := params(t, run(t, c), tikv.ActionSplitRegion); p["region_id"] != 10 {
			t.Errorf("params %v", p)
		}
	})
	t.Run("operator running", func(t *testing.T) {
		c := hotContext(96, 900000)
		c.Operators = []pd.Operator{{RegionID: 12, Desc: "split-region {split: region 12}", Status: 1}}
		noAction(t, run(t, c), "already runs an operator")
	})
}

func TestRegionOversized(t *testing.T) {
	ev := map[string]any{"region_id": 14, "approximate_size_mib": 124183, "approximate_keys": 900000000, "oversized_regions": 1}
	c := cx(invariant.NameRegionOversized, "region:14", ev, []pd.StoreInfo{st(1, 40, 100), st(2, 30, 100), st(3, 30, 100)},
		pending(sized(rg(14, 1, 1, 2, 3), 124183, 900000000), 3))
	d := run(t, c)
	if p := params(t, d, tikv.ActionSplitRegion); p["region_id"] != 14 {
		t.Errorf("params %v", p)
	}
	if d.ProposedAction.Urgency != action.Soon || !strings.Contains(d.ProposedAction.Rationale, "policy scan") {
		t.Errorf("proposal %+v", d.ProposedAction)
	}
	c.Regions = nil
	noAction(t, run(t, c), "no longer known")
}

// offlineCluster: store 4 Offline with 30 regions, stores 1-3 as given.
func offlineCluster(up ...pd.StoreInfo) *diagnose.Context {
	ev := map[string]any{"store_id": 4, "cannot_finish": true, "max_replicas": 3, "unchanged_seconds": 1900.0}
	stores := append(up, st(4, 0, 30, state(pd.StateOffline)))
	return cx(invariant.NameStoreOfflineStuck, "store:4", ev, stores, rg(20, 1, 1, 2, 4))
}

func TestStoreOfflineStuck(t *testing.T) {
	t.Run("too few Up stores: cancel the drain", func(t *testing.T) {
		d := run(t, offlineCluster(st(1, 50, 100), st(2, 50, 100)))
		if p := params(t, d, tikv.ActionCancelDrain); p["store_id"] != 4 {
			t.Errorf("params %v", p)
		}
		if !strings.Contains(d.ProposedAction.Rationale, "add a TiKV store") || !strings.Contains(strings.Join(d.Risks, " "), "Never force") {
			t.Errorf("rationale %q risks %q", d.ProposedAction.Rationale, d.Risks)
		}
	})
	t.Run("low space leaves too few targets", func(t *testing.T) {
		d := run(t, offlineCluster(st(1, 50, 100), st(2, 50, 100), st(3, 50, 200, avail(50<<30, 2<<40, 1900<<30))))
		params(t, d, tikv.ActionCancelDrain)
		if !strings.Contains(d.RootCause, "with free space") {
			t.Errorf("root cause %q", d.RootCause)
		}
	})
	t.Run("force-removed store", func(t *testing.T) {
		c := offlineCluster(st(1, 50, 100), st(2, 50, 100))
		c.Stores[2].Store.PhysicallyDestroyed = true
		noAction(t, run(t, c), "physically destroyed")
	})
	t.Run("enough stores, still leading: evict leaders (case 12)", func(t *testing.T) {
		c := offlineCluster(st(1, 50, 100), st(2, 50, 100), st(3, 50, 100))
		c.Stores[3].Status.LeaderCount = 9
		if p := params(t, run(t, c), tikv.ActionEvictLeader); p["store_id"] != 4 {
			t.Errorf("params %v", p)
		}
	})
	t.Run("enough stores, quorum lost", func(t *testing.T) {
		c := offlineCluster(st(1, 50, 100), st(2, 50, 100, state(pd.StateDown)), st(3, 50, 100),
			st(5, 0, 10, state(pd.StateDown)), st(6, 3, 10))
		c.Regions = []pd.Region{rg(20, 1, 1, 2, 4), rg(21, 4, 2, 4, 5)}
		noAction(t, run(t, c), "regions 21 lost their quorum")
	})
	t.Run("drain finished", func(t *testing.T) {
		c := offlineCluster(st(1, 50, 100), st(2, 50, 100))
		c.Stores = c.Stores[:2]
		noAction(t, run(t, c), "no longer stuck")
	})
}

func TestUpStoresBelowReplicas(t *testing.T) {
	ev := map[string]any{"max_replicas": 3, "up_tikv_stores": 2}
	t.Run("cancel the drain of the fullest Offline store", func(t *testing.T) {
		c := cx(invariant.NameUpStoresBelowReplicas, "cluster", ev, []pd.StoreInfo{
			st(1, 50, 100), st(2, 50, 100), st(3, 0, 10, state(pd.StateOffline)), st(4, 0, 60, state(pd.StateOffline)), st(5, 0, 0, tiflash)})
		if p := params(t, run(t, c), tikv.ActionCancelDrain); p["store_id"] != 4 {
			t.Errorf("params %v", p)
		}
	})
	t.Run("no Offline store: page", func(t *testing.T) {
		c := cx(invariant.NameUpStoresBelowReplicas, "cluster", ev, []pd.StoreInfo{
			st(1, 50, 100), st(2, 50, 100), st(3, 0, 100, state(pd.StateDown), heartbeatAgo(2*time.Hour))})
		noAction(t, run(t, c), "add TiKV stores", "Down")
	})
}

func TestRegionOfflinePeer(t *testing.T) {
	ev := map[string]any{"quorum_at_risk_regions": 3, "sample_region_ids": []uint64{30}, "offline_store_ids": []uint64{4, 5}}
	stores := []pd.StoreInfo{st(1, 50, 100), st(2, 50, 100), st(3, 50, 100),
		st(4, 0, 12, state(pd.StateOffline)), st(5, 0, 40, state(pd.StateOffline))}
	d := run(t, cx(invariant.NameRegionOfflinePeer, "cluster", ev, stores, rg(30, 1, 1, 4, 5)))
	if p := params(t, d, tikv.ActionCancelDrain); p["store_id"] != 5 {
		t.Errorf("params %v, want the Offline store with most regions", p)
	}
	one := cx(invariant.NameRegionOfflinePeer, "cluster", ev, stores[:4], rg(30, 1, 1, 4))
	noAction(t, run(t, one), "keep store")
}

func TestStoreGone(t *testing.T) {
	tests := []struct {
		name    string
		store   pd.StoreInfo
		want    []string
		regions []pd.Region
	}{
		{invariant.NameStoreDisconnected, st(3, 10, 100, state(pd.StateDisconnected), heartbeatAgo(45*time.Second)),
			[]string{"does nothing yet", "45s ago", "10.0.0.3:20160"}, nil},
		{invariant.NameStoreUnhealthy, st(3, 0, 100, state(pd.StateDisconnected), heartbeatAgo(15*time.Minute)),
			[]string{"After 10 minutes", "15m0s ago"}, nil},
		{invariant.NameStoreDown, st(3, 0, 100, state(pd.StateDown), heartbeatAgo(40*time.Minute)),
			[]string{"runs no replica-repair operator now: it is not re-creating", "40m0s ago"}, nil},
		{invariant.NameStoreDown, st(3, 0, 100, state(pd.StateDown), heartbeatAgo(40*time.Minute)),
			[]string{"Regions 40 have lost their majority", "Stores 2 are not heartbeating either"},
			[]pd.Region{rg(40, 1, 1, 2, 3), rg(41, 1, 1, 3, 4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stores := []pd.StoreInfo{st(1, 50, 100), st(2, 50, 100), tt.store, st(4, 50, 100)}
			if len(tt.regions) > 0 {
				stores[1] = st(2, 0, 100, state(pd.StateDown), heartbeatAgo(time.Hour))
			}
			c := cx(tt.name, "store:3", map[string]any{"store_id": 3}, stores, tt.regions...)
			noAction(t, run(t, c), tt.want...)
		})
	}
	t.Run("disconnected ticket, store Down since", func(t *testing.T) {
		c := cx(invariant.NameStoreDisconnected, "store:3", map[string]any{"store_id": 3},
			[]pd.StoreInfo{st(1, 50, 100), st(2, 50, 100), st(3, 0, 100, state(pd.StateDown), heartbeatAgo(35*time.Minute))})
		d := run(t, c)
		noAction(t, d, "the store is Down")
		if !strings.HasPrefix(d.Summary, "store 3 is Down") {
			t.Errorf("summary %q", d.Summary)
		}
	})
	t.Run("back up", func(t *testing.T) {
		c := cx(invariant.NameStoreDown, "store:3", map[string]any{"store_id": 3}, []pd.StoreInfo{st(1, 50, 100), st(3, 5, 100)})
		noAction(t, run(t, c), "back Up")
	})
}

func TestStoreSlow(t *testing.T) {
	ev := map[string]any{"store_id": 2, "slow_score": 85, "threshold": 80}
	stores := func(mods ...func(*pd.StoreInfo)) []pd.StoreInfo {
		return []pd.StoreInfo{st(1, 30, 100), st(2, 30, 100, append([]func(*pd.StoreInfo){slowScore(85)}, mods...)...), st(3, 30, 100)}
	}
	t.Run("one slow store still leading: evict its leaders", func(t *testing.T) {
		d := run(t, cx(invariant.NameStoreSlow, "store:2", ev, stores()))
		if p := params(t, d, tikv.ActionEvictLeader); p["store_id"] != 2 {
			t.Errorf("params %v", p)
		}
		if !strings.Contains(d.ProposedAction.Rationale, "below the 100") || !strings.Contains(strings.Join(d.Risks, " "), "remove_evict_leader") {
			t.Errorf("rationale %q risks %q", d.ProposedAction.Rationale, d.Risks)
		}
	})
	t.Run("two slow stores: page", func(t *testing.T) {
		s := stores()
		s[2] = st(3, 30, 100, slowScore(90))
		noAction(t, run(t, cx(invariant.NameStoreSlow, "store:2", ev, s)), "shared cause")
	})
	t.Run("already without leaders", func(t *testing.T) {
		s := stores(func(s *pd.StoreInfo) { s.Status.LeaderCount = 0 })
		noAction(t, run(t, cx(invariant.NameStoreSlow, "store:2", ev, s)), "already leads no region")
	})
	t.Run("already evicted", func(t *testing.T) {
		c := cx(invariant.NameStoreSlow, "store:2", ev, stores())
		c.EvictLeaderStores = []uint64{2}
		noAction(t, run(t, c), "already evicted")
	})
}

func TestStoreLowSpace(t *testing.T) {
	ev := map[string]any{"store_id": 1, "available_ratio": 0.1, "low_space_ratio": 0.8}
	t.Run("every store low", func(t *testing.T) {
		low := avail(100<<30, 1<<40, 900<<30)
		c := cx(invariant.NameStoreLowSpace, "store:1", ev, []pd.StoreInfo{st(1, 30, 300, low), st(2, 30, 300, low), st(3, 30, 300, avail(150<<30, 1<<40, 850<<30))})
		d := run(t, c)
		noAction(t, d, "every store is low", "store 1 (Up): 100GiB of 1TiB available (9.8%)")
		if d.Confidence != diagnose.ConfidenceHigh || !strings.Contains(strings.Join(d.Risks, " "), "Do not raise low-space-ratio") {
			t.Errorf("confidence %s risks %q", d.Confidence, d.Risks)
		}
	})
	t.Run("other data on the disk", func(t *testing.T) {
		c := cx(invariant.NameStoreLowSpace, "store:1", ev, []pd.StoreInfo{st(1, 30, 300, avail(100<<30, 1<<40, 300<<30)), st(2, 30, 300), st(3, 30, 300)})
		noAction(t, run(t, c), "used by something other than TiKV")
	})
	t.Run("TiFlash store", func(t *testing.T) {
		c := cx(invariant.NameStoreLowSpace, "store:4", map[string]any{"store_id": 4}, []pd.StoreInfo{st(1, 30, 300), st(2, 30, 300), st(3, 30, 300),
			st(4, 0, 300, tiflash, avail(10<<30, 1<<40, 1000<<30))})
		noAction(t, run(t, c), "TiFlash capacity")
	})
	t.Run("room elsewhere: PD's balancer", func(t *testing.T) {
		c := cx(invariant.NameStoreLowSpace, "store:1", ev, []pd.StoreInfo{st(1, 30, 300, avail(100<<30, 1<<40, 900<<30)), st(2, 30, 300), st(3, 30, 300)})
		noAction(t, run(t, c), "balance-region scheduler (running)")
	})
}

func TestPageOnly(t *testing.T) {
	stores := []pd.StoreInfo{st(1, 30, 100), st(2, 30, 100), st(3, 30, 100)}
	tests := []struct {
		name, subject string
		ev            map[string]any
		want          string
	}{
		{invariant.NameClusterSpaceUsed, "cluster", map[string]any{"used_ratio": 0.85, "used_bytes": 100, "capacity_bytes": 120}, "plan capacity"},
		{invariant.NameStoreCapacitySuspect, "store:2", map[string]any{"store_id": 2, "reason": "capacity 0 B"}, "crashed"},
		{invariant.NameTombstonePileup, "cluster", map[string]any{"tombstone_count": 5, "tombstone_store_ids": []uint64{7, 8, 9, 10, 11}, "duplicate_addresses": []string{"10.0.0.9:20160"}}, "remove-tombstone"},
		{invariant.NameRegionDownPeer, "cluster", map[string]any{"region_count": 3, "sample_region_ids": []uint64{50}, "peers_by_store": map[string]int{"2": 3}, "top_store_id": 2}, "PD will not repair these peers"},
		{invariant.NameRegionPendingPeer, "cluster", map[string]any{"region_count": 130, "sample_region_ids": []uint64{50}, "peers_by_store": map[string]int{"2": 130}, "top_store_id": 2}, "store 2"},
		{invariant.NameRegionMissPeer, "cluster", map[string]any{"region_count": 3, "sample_region_ids": []uint64{50}}, "placement rules"},
		{invariant.NamePDUnhealthy, "cluster", map[string]any{}, "PD members"},
		{invariant.NamePDNoLeader, "cluster", map[string]any{}, "majority of PD members"},
		{invariant.NamePDUnreachable, "cluster", map[string]any{}, "PD answers again"},
		{"some_future_invariant", "cluster", map[string]any{}, "no runbook"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noAction(t, run(t, cx(tt.name, tt.subject, tt.ev, stores, rg(50, 1, 1, 2, 3))), tt.want)
		})
	}
}

func TestRegionMissPeerLimitZero(t *testing.T) {
	c := cx(invariant.NameRegionMissPeer, "cluster", map[string]any{"region_count": 40, "sample_region_ids": []uint64{50}},
		[]pd.StoreInfo{st(1, 30, 100), st(2, 30, 100), st(3, 30, 100)}, rg(50, 1, 1, 2))
	c.Schedule.ReplicaScheduleLimit = 0
	if p := params(t, run(t, c), tikv.ActionSetReplicaScheduleLimit); p["limit"] != 64 {
		t.Errorf("params %v", p)
	}
}

func TestRegionExtraPeer(t *testing.T) {
	ev := map[string]any{"region_count": 1, "sample_region_ids": []uint64{60}}
	stores := []pd.StoreInfo{st(1, 30, 100), st(2, 30, 100), st(3, 30, 100), st(4, 0, 5), st(5, 0, 5, tiflash)}
	t.Run("orphan learner on a TiKV store", func(t *testing.T) {
		d := run(t, cx(invariant.NameRegionExtraPeer, "cluster", ev, stores, learner(learner(rg(60, 1, 1, 2, 3), 5), 4)))
		if p := params(t, d, tikv.ActionRemovePeer); p["region_id"] != 60 || p["store_id"] != 4 {
			t.Errorf("params %v", p)
		}
	})
	t.Run("TiFlash learner only", func(t *testing.T) {
		noAction(t, run(t, cx(invariant.NameRegionExtraPeer, "cluster", ev, stores, learner(rg(60, 1, 1, 2, 3), 5))), "no sample region")
	})
	t.Run("a voter is down: keep the learner", func(t *testing.T) {
		r := down(learner(rg(60, 1, 1, 2, 3), 4), 2)
		r = down(r, 3)
		noAction(t, run(t, cx(invariant.NameRegionExtraPeer, "cluster", ev, stores, r)), "no sample region")
	})
}

func TestDiagnoseErrors(t *testing.T) {
	b := rules.New(rules.Options{})
	if _, err := b.Diagnose(context.Background(), nil); err == nil {
		t.Error("nil context accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Diagnose(ctx, leaderCluster()); err == nil {
		t.Error("ended context accepted")
	}
	// Malformed evidence is read leniently.
	c := leaderCluster()
	c.Ticket.Evidence = json.RawMessage(`not json`)
	run(t, c)
}
