package tikv

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
)

func checkByName(res action.DryRunResult, name string) (action.Check, bool) {
	for _, c := range res.Preconditions {
		if c.Name == name {
			return c, true
		}
	}
	return action.Check{}, false
}

// TestNewActionsRealCluster runs the scheduler, store-limit and merge
// actions against a real PD + simulator and asserts their effect in PD.
func TestNewActionsRealCluster(t *testing.T) {
	e := newActionEnv(t)
	ctx := context.Background()
	const bl = "balance-leader-scheduler"

	t.Run("schedulers", func(t *testing.T) {
		e.t = t
		names, _ := e.c.Schedulers(ctx)
		if slices.Contains(names, bl) {
			t.Fatalf("env should start without %s: %v", bl, names)
		}
		e.refused(ActionResumeScheduler, params("name", bl), "does not list "+bl)
		e.refused(ActionAddScheduler, params("name", "shuffle-leader-scheduler"), "is not one of")
		e.refused(ActionResumeScheduler, params("name", "Bad/Name"), "must be lowercase")
		res := e.dryRun(ActionAddScheduler, params("name", bl))
		if len(res.Requests) != 1 || res.Requests[0].String() != `POST /pd/api/v1/schedulers {"name":"balance-leader-scheduler"}` {
			t.Errorf("add requests %v", res.Requests)
		}
		e.execute(ActionAddScheduler, params("name", bl))
		if names, _ := e.c.Schedulers(ctx); !slices.Contains(names, bl) {
			t.Fatalf("after add_scheduler: %v", names)
		}
		e.refused(ActionAddScheduler, params("name", bl), "already lists")
		e.refused(ActionResumeScheduler, params("name", bl), "paused: false")

		// As the demo does: paused for ten years by hand, then resumed by
		// the action the rules diagnosis proposes.
		if err := e.tc.PauseScheduler(ctx, bl, 10*365*24*time.Hour); err != nil {
			t.Fatal(err)
		}
		res = e.dryRun(ActionResumeScheduler, params("name", bl))
		if !res.Valid || len(res.Requests) != 1 || res.Requests[0].String() != `POST /pd/api/v1/schedulers/balance-leader-scheduler {"delay":0}` {
			t.Errorf("resume dry run %+v", res)
		}
		out := e.execute(ActionResumeScheduler, params("name", bl))
		if paused, _ := e.c.PausedSchedulers(ctx); slices.Contains(paused, bl) {
			t.Errorf("still paused after resume: %v", paused)
		}
		resumeAt, ok := out.Previous["resume_at"].(int64)
		if out.Previous["paused"] != true || !ok || time.Until(time.Unix(resumeAt, 0)) < 300*24*time.Hour {
			t.Errorf("previous = %v", out.Previous)
		}

		// pause_scheduler: PD shows it paused until now+delay; the
		// previous value says it was not paused, so resume reverts it.
		e.refused(ActionPauseScheduler, params("name", bl, "delay_seconds", 0), "below the minimum 1")
		e.refused(ActionPauseScheduler, params("name", bl, "delay_seconds", 86401), "above the maximum")
		before := time.Now()
		out = e.execute(ActionPauseScheduler, params("name", bl, "delay_seconds", 600))
		times, err := e.c.PausedSchedulerTimes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(times, func(p pd.PausedScheduler) bool { return p.Name == bl })
		if i < 0 || times[i].ResumeAt.Before(before.Add(598*time.Second)) || times[i].ResumeAt.After(time.Now().Add(601*time.Second)) {
			t.Errorf("paused schedulers %+v after pausing for 600 s", times)
		}
		if out.Previous["paused"] != false {
			t.Errorf("previous %v", out.Previous)
		}
		e.execute(ActionResumeScheduler, params("name", bl))

		// remove_scheduler and its rollback add_scheduler.
		e.refused(ActionRemoveScheduler, params("name", "evict-leader-scheduler-1"), "remove_evict_leader")
		e.refused(ActionRemoveScheduler, params("name", "shuffle-region-scheduler"), "does not list")
		e.execute(ActionRemoveScheduler, params("name", bl))
		if names, _ := e.c.Schedulers(ctx); slices.Contains(names, bl) {
			t.Errorf("after remove_scheduler: %v", names)
		}
	})

	t.Run("hot_region_config", func(t *testing.T) {
		e.t = t
		const hot = HotRegionScheduler
		e.refused(ActionSetHotRegionConfig, params("rank_formula_version", "v1"), "is the scheduler running")
		e.execute(ActionAddScheduler, params("name", hot))
		e.refused(ActionSetHotRegionConfig, params(), "0 of write_leader_priorities")
		e.refused(ActionSetHotRegionConfig, params("write_leader_priorities", []string{"byte"}), "two distinct dimensions")
		e.refused(ActionSetHotRegionConfig, params("write_leader_priorities", []string{"byte", "byte"}), "two distinct dimensions")
		e.refused(ActionSetHotRegionConfig, params("rank_formula_version", "v3"), "is not one of")
		cur, err := e.c.SchedulerConfig(ctx, hot)
		if err != nil {
			t.Fatal(err)
		}
		p := params("write_leader_priorities", []string{"key", "byte"}, "rank_formula_version", "v1", "strict_picking_store", "false")
		out := e.execute(ActionSetHotRegionConfig, p)
		now, _ := e.c.SchedulerConfig(ctx, hot)
		if compactJSON(now["write-leader-priorities"]) != `["key","byte"]` || string(now["rank-formula-version"]) != `"v1"` || string(now["strict-picking-store"]) != `"false"` {
			t.Errorf("hot config after the change: %s %s %s", now["write-leader-priorities"], now["rank-formula-version"], now["strict-picking-store"])
		}
		// Roll back with the recorded previous values.
		prev := out.Previous
		e.execute(ActionSetHotRegionConfig, params("write_leader_priorities", prev["write-leader-priorities"],
			"rank_formula_version", prev["rank-formula-version"], "strict_picking_store", prev["strict-picking-store"]))
		now, _ = e.c.SchedulerConfig(ctx, hot)
		for _, k := range []string{"write-leader-priorities", "rank-formula-version", "strict-picking-store"} {
			if compactJSON(now[k]) != compactJSON(cur[k]) {
				t.Errorf("%s = %s after rollback, want %s", k, now[k], cur[k])
			}
		}
		e.execute(ActionRemoveScheduler, params("name", hot))
	})

	t.Run("store_limits", func(t *testing.T) {
		e.t = t
		id := e.tc.Sim.StoreIDs()[0]
		e.refused(ActionSetStoreLimit, params("store_id", 999, "type", "add-peer", "rate", 30), "store 999 not found")
		e.refused(ActionSetStoreLimit, params("store_id", id, "type", "both", "rate", 30), "is not one of")
		e.refused(ActionSetStoreLimit, params("store_id", id, "type", "add-peer", "rate", 0), "below the minimum 1")
		res := e.dryRun(ActionSetStoreLimit, params("store_id", id, "type", "add-peer", "rate", 30))
		want := fmt.Sprintf(`POST /pd/api/v1/store/%d/limit {"rate":30,"type":"add-peer"}`, id)
		if len(res.Requests) != 1 || res.Requests[0].String() != want {
			t.Errorf("requests %v, want %s", res.Requests, want)
		}
		out := e.execute(ActionSetStoreLimit, params("store_id", id, "type", "add-peer", "rate", 30))
		limits, _ := e.c.StoreLimits(ctx)
		if limits[id].AddPeer != 30 {
			t.Errorf("limits after set: %+v", limits)
		}
		old := out.Previous["rate"].(float64)
		e.execute(ActionSetStoreLimit, params("store_id", id, "type", "add-peer", "rate", old))
		if limits, _ := e.c.StoreLimits(ctx); limits[id].AddPeer != old {
			t.Errorf("limit after rollback %+v, want %g", limits[id], old)
		}

		out = e.execute(ActionSetAllStoresLimit, params("type", "remove-peer", "rate", 40))
		limits, _ = e.c.StoreLimits(ctx)
		for _, s := range e.tc.Sim.StoreIDs() {
			if limits[s].RemovePeer != 40 {
				t.Errorf("store %d remove-peer %g after set_all_stores_limit", s, limits[s].RemovePeer)
			}
		}
		rate, same := out.Previous["rate"].(float64)
		if !same {
			t.Fatalf("previous %v: stores had different remove-peer limits", out.Previous)
		}
		e.execute(ActionSetAllStoresLimit, params("type", "remove-peer", "rate", rate))
		limits, _ = e.c.StoreLimits(ctx)
		for _, s := range e.tc.Sim.StoreIDs() {
			if limits[s].RemovePeer != rate {
				t.Errorf("store %d remove-peer %g after rollback, want %g", s, limits[s].RemovePeer, rate)
			}
		}
	})

	t.Run("merge_region", func(t *testing.T) {
		e.t = t
		r, _ := e.pickRegion()
		e.execute(ActionSplitRegion, params("region_id", r.ID, "policy", "approximate"))
		parts, err := e.c.ScanRegions(ctx, r.StartKey, r.EndKey, 16)
		if err != nil || len(parts) != 2 {
			t.Fatalf("split: %s, %v", regionIDs(parts), err)
		}
		left, right := parts[0], parts[1]
		other, _ := e.pickRegion(left.ID, right.ID)
		e.refused(ActionMergeRegion, params("source_region_id", left.ID, "target_region_id", left.ID), "source")
		if other.StartKey != left.EndKey && other.EndKey != left.StartKey {
			e.refused(ActionMergeRegion, params("source_region_id", left.ID, "target_region_id", other.ID), "source [")
		}
		setSizes := func(mib uint64) {
			for _, id := range []uint64{left.ID, right.ID} {
				if err := e.tc.Sim.SetRegionSize(id, mib<<20, mib*10000); err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, 20*time.Second, "sizes visible in PD", func() (bool, string) {
				a, b := e.region(left.ID), e.region(right.ID)
				return a.ApproximateSize == int64(mib) && b.ApproximateSize == int64(mib), fmt.Sprintf("%d and %d MiB", a.ApproximateSize, b.ApproximateSize)
			})
		}
		setSizes(64)
		e.refused(ActionMergeRegion, params("source_region_id", left.ID, "target_region_id", right.ID), "approximate size 64 MiB (max-merge-region-size 20 MiB)")
		setSizes(4)
		out := e.execute(ActionMergeRegion, params("source_region_id", left.ID, "target_region_id", right.ID))
		merged := e.region(right.ID)
		t.Logf("merge outcome: %s", out.Message)
		if merged.StartKey != r.StartKey || merged.EndKey != r.EndKey {
			t.Errorf("target covers [%q,%q), want [%q,%q)", merged.StartKey, merged.EndKey, r.StartKey, r.EndKey)
		}
	})
}

// TestDrainAndHeartbeatRealCluster uses a cluster with location labels
// (zone z1, z2, z3, z3; isolation-level zone) and a 1 s store heartbeat,
// for the drain's isolation and space checks and the target heartbeat.
func TestDrainAndHeartbeatRealCluster(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{
		Stores: 4, Regions: 4, StoreHeartbeat: time.Second,
		StoreLabels:       []map[string]string{{"zone": "z1"}, {"zone": "z2"}, {"zone": "z3"}, {"zone": "z3"}},
		Replication:       map[string]any{"max-replicas": 3, "location-labels": []string{"zone"}, "isolation-level": "zone"},
		DisableSchedulers: []string{"balance-region", "balance-leader", "hot-region"},
	})
	proxyURL, rec := startRecorder(t, tc.PDURL)
	direct := newClient(t, tc.PDURL)
	cat := NewCatalog(newClient(t, proxyURL), WithVerifyTimeout(30*time.Second), WithPollInterval(100*time.Millisecond),
		WithStoreHeartbeatInterval(time.Second))
	e := &actionEnv{t: t, tc: tc, c: direct, cat: cat, rec: rec}
	ids := tc.Sim.StoreIDs()
	zone := map[uint64]string{}
	for _, id := range ids {
		zone[id] = e.store(id).Label("zone")
	}
	var z1 uint64
	var z3 []uint64
	for _, id := range ids {
		switch zone[id] {
		case "z1":
			z1 = id
		case "z3":
			z3 = append(z3, id)
		}
	}
	if z1 == 0 || len(z3) != 2 {
		t.Fatalf("zones %v", zone)
	}

	t.Run("isolation", func(t *testing.T) {
		e.t = t
		// Draining z1's only store leaves zones z2, z3 for 3 replicas.
		e.refused(ActionDrainStore, params("store_id", z1), "isolation-level zone: the remaining Up TiKV stores span 2 distinct zone values [z2,z3]")
		if res := e.dryRun(ActionDrainStore, params("store_id", z3[0])); !res.Valid {
			t.Errorf("draining one of two z3 stores refused: %s", res.Message)
		}
	})

	t.Run("space", func(t *testing.T) {
		e.t = t
		// The other stores exactly at the low-space threshold (20 % free
		// with low-space-ratio 0.8): taking the drained store's regions
		// pushes them below it.
		capacity := uint64(e.store(z3[0]).Status.Capacity)
		for _, id := range ids {
			if id != z3[0] {
				if err := tc.Sim.SetAvailable(id, capacity/5); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitUntil(t, 10*time.Second, "available visible in PD", func() (bool, string) {
			for _, id := range ids {
				if s := e.store(id); id != z3[0] && uint64(s.Status.Available) > capacity/5+capacity/1000 {
					return false, fmt.Sprintf("store %d available %s", id, s.Status.Available)
				}
			}
			return true, ""
		})
		e.refused(ActionDrainStore, params("store_id", z3[0]), "PD counts a store low on space below 20.0%")
		for _, id := range ids {
			_ = tc.Sim.ResetAvailable(id)
		}
		waitUntil(t, 10*time.Second, "available restored", func() (bool, string) {
			res := e.dryRun(ActionDrainStore, params("store_id", z3[0]))
			return res.Valid, res.Message
		})
	})

	t.Run("stopped_target_still_up", func(t *testing.T) {
		e.t = t
		// A voter's store stops heartbeating; PD keeps showing it Up for
		// 20 s, but its heartbeat is older than two (1 s) intervals.
		var region *pd.Region
		var target uint64
		for _, id := range tc.Sim.RegionIDs() {
			r := e.region(id)
			if f := follower(r); f != 0 && r.HasLeader() {
				region, target = r, f
				break
			}
		}
		if region == nil {
			t.Fatal("no region with a follower")
		}
		if err := tc.Sim.StopStore(target); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tc.Sim.StartStore(target) })
		p := params("region_id", region.ID, "to_store_id", target)
		waitUntil(t, 15*time.Second, "heartbeat check fails", func() (bool, string) {
			res := e.dryRun(ActionTransferLeader, p)
			hb, _ := checkByName(res, "target_store_heartbeat")
			return !hb.Passed && hb.Detail != "", res.Message
		})
		res := e.dryRun(ActionTransferLeader, p)
		up, _ := checkByName(res, "target_store_up")
		hb, _ := checkByName(res, "target_store_heartbeat")
		s := e.store(target)
		if res.Valid || hb.Passed || !strings.Contains(hb.Detail, "must be younger than 2 store-heartbeat intervals = 2s; state_name Up") {
			t.Errorf("dry run %+v", res)
		}
		if s.Store.StateName == pd.StateUp && !up.Passed {
			t.Errorf("target_store_up failed while PD shows Up: %+v", up)
		}
		if s.Store.StateName != pd.StateUp {
			t.Logf("PD already shows store %d %s (the check is still the heartbeat's)", target, s.Store.StateName)
		}
		e.refused(ActionTransferLeader, p, "store-heartbeat intervals")
		if now := e.region(region.ID); now.Leader.StoreID == target {
			t.Errorf("leader moved to the stopped store")
		}
	})
}

// TestRemoveTombstonesRealCluster drains a store until PD makes it
// Tombstone, then removes its record.
func TestRemoveTombstonesRealCluster(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Stores: 4, Regions: 2,
		DisableSchedulers: []string{"balance-region", "balance-leader", "hot-region"}})
	proxyURL, rec := startRecorder(t, tc.PDURL)
	cat := NewCatalog(newClient(t, proxyURL), WithVerifyTimeout(30*time.Second), WithPollInterval(100*time.Millisecond))
	e := &actionEnv{t: t, tc: tc, c: newClient(t, tc.PDURL), cat: cat, rec: rec}
	ctx := context.Background()
	if err := tc.SetStoreLimit(ctx, 600); err != nil {
		t.Fatal(err)
	}
	e.refused(ActionRemoveTombstones, nil, "Tombstone stores without regions: []")
	victim := tc.Sim.StoreIDs()[3]
	e.execute(ActionDrainStore, params("store_id", victim))
	waitUntil(t, 90*time.Second, "drained store Tombstone", func() (bool, string) {
		s, err := e.c.Store(ctx, victim)
		if err != nil {
			return false, err.Error()
		}
		return s.Store.StateName == pd.StateTombstone, fmt.Sprintf("%s, %d regions", s.Store.StateName, s.Status.RegionCount)
	})
	res := e.dryRun(ActionRemoveTombstones, nil)
	if len(res.Requests) != 1 || res.Requests[0].String() != "DELETE /pd/api/v1/stores/remove-tombstone" {
		t.Errorf("requests %v", res.Requests)
	}
	out := e.execute(ActionRemoveTombstones, nil)
	if ids, _ := out.Previous["tombstone_store_ids"].([]uint64); !slices.Equal(ids, []uint64{victim}) {
		t.Errorf("previous %v", out.Previous)
	}
	if _, err := e.c.Store(ctx, victim); err == nil {
		t.Errorf("store %d still known to PD after remove_tombstones", victim)
	}
}
