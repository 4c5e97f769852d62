package tikv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
)

type storeParams struct {
	StoreID uint64 `json:"store_id"`
}

// loadStore reads one store, recording the store_exists check; nil when
// unknown.
func loadStore(ctx context.Context, c *pd.Client, p *plan, id uint64) (*pd.StoreInfo, error) {
	s, err := c.Store(ctx, id)
	if errors.Is(err, pd.ErrStoreNotFound) {
		p.check("store_exists", false, "store %d not found in PD", id)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p.check("store_exists", true, "store %d (%s) is %s with %d regions, %d leaders", id, s.Store.Address, s.Store.StateName, s.Status.RegionCount, s.Status.LeaderCount)
	return s, nil
}

func storeStateVerifier(c *pd.Client, id uint64, want func(state string) bool, wantText string) func(context.Context) (verdict, error) {
	return func(ctx context.Context) (verdict, error) {
		s, err := c.Store(ctx, id)
		if err != nil {
			return verdict{}, err
		}
		return verdict{
			done: want(s.Store.StateName),
			msg:  fmt.Sprintf("store %d is %s (want %s), %d regions, %d leaders", id, s.Store.StateName, wantText, s.Status.RegionCount, s.Status.LeaderCount),
			observed: map[string]any{
				"store_id": id, "state_name": s.Store.StateName, "node_state": s.Store.NodeState,
				"region_count": s.Status.RegionCount, "leader_count": s.Status.LeaderCount,
			},
		}, nil
	}
}

func drainStore() *pdAction {
	spec := action.Spec{
		Name: ActionDrainStore,
		Description: "Decommission a store: DELETE /pd/api/v1/store/{id}. PD sets it Offline, moves every replica away, then makes it " +
			"Tombstone by itself; a Tombstone store id never comes back. Never sends force.",
		Params:     []action.Param{idParam("store_id", "store to decommission")},
		Risk:       action.RiskHigh,
		Reversible: true,
		Rollback:   "cancel_drain(store_id) while the store is still Offline; irreversible once PD has made it Tombstone (automatic when its region count reaches 0)",
		Targets:    []string{"store_id"},
		Capacity:   true,
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm storeParams) (*plan, error) {
		p := &plan{}
		s, err := loadStore(ctx, c, p, prm.StoreID)
		if err != nil || s == nil {
			return p, err
		}
		state := s.Store.StateName
		switch {
		case !knownState(state):
			p.check("store_state_known", false, "store %d state_name %q is not one PD renders (from %s)", prm.StoreID, state, endpointStores)
			return p, nil
		case state == pd.StateOffline:
			p.check("store_not_draining", false, "store %d is already Offline (being drained); cancel_drain undoes it", prm.StoreID)
		case state == pd.StateTombstone:
			p.check("store_not_removed", false, "store %d is already Tombstone", prm.StoreID)
		default:
			p.check("store_drainable", true, "store %d is %s", prm.StoreID, state)
		}
		p.check("not_physically_destroyed", !s.Store.PhysicallyDestroyed, "store %d physically_destroyed=%v", prm.StoreID, s.Store.PhysicallyDestroyed)
		stores, err := c.Stores(ctx)
		if err != nil {
			return nil, err
		}
		rep, ok, err := loadReplication(ctx, c, p)
		if err != nil {
			return nil, err
		}
		left := availableTiKVStores(stores, prm.StoreID)
		if ok {
			p.check("replicas_remain_placeable", uint64(len(left)) >= rep.maxReplicas,
				"Up TiKV stores left after the drain: %d %v (TiFlash, Offline/being drained, Disconnected and Down stores do not count); max-replicas is %d",
				len(left), left, rep.maxReplicas)
			checkIsolation(p, stores, left, rep)
		}
		if s.IsTiFlash() {
			others := 0
			for i := range stores {
				o := &stores[i]
				if o.Store.ID != prm.StoreID && o.IsTiFlash() && o.Store.StateName == pd.StateUp && o.Store.NodeState != pd.NodeRemoving {
					others++
				}
			}
			p.check("tiflash_replicas_remain", others > 0 || s.Status.RegionCount == 0,
				"store %d is a TiFlash store holding %d TiFlash replicas; other Up TiFlash stores: %d (draining the only one loses every TiFlash replica)",
				prm.StoreID, s.Status.RegionCount, others)
		} else if err := checkDrainSpace(ctx, c, p, stores, left, s); err != nil {
			return nil, err
		}
		evicting, err := evictLeaderSet(ctx, c)
		if err != nil {
			return nil, err
		}
		leaderHomes := 0
		for _, id := range left {
			if !evicting[id] {
				leaderHomes++
			}
		}
		p.check("leaders_placeable", leaderHomes > 0, "%d of the remaining Up TiKV stores accept leaders (not under evict-leader)", leaderHomes)
		p.warn("irreversible once Tombstone: PD makes store %d Tombstone by itself as soon as it holds no region (checked every 10 s); until then cancel_drain returns it to Up", prm.StoreID)
		if s.Status.RegionCount == 0 {
			p.warn("store %d holds no region, so it becomes Tombstone within about 10 s: there will be no time to cancel", prm.StoreID)
		}
		if s.IsTiFlash() {
			p.warn("store %d is a TiFlash store: its columnar replicas are rebuilt on the other TiFlash stores", prm.StoreID)
		}
		p.previous = map[string]any{"state_name": state}
		id := prm.StoreID
		p.steps = []step{{
			req:  action.Request{Method: "DELETE", Path: "/pd/api/v1/store/" + strconv.FormatUint(id, 10)},
			send: func(ctx context.Context) error { return c.DeleteStore(ctx, id) },
		}}
		p.summary = fmt.Sprintf("set store %d Offline and move its %d regions away (decommission, no force)", id, s.Status.RegionCount)
		p.verify = storeStateVerifier(c, id, func(st string) bool { return st == pd.StateOffline || st == pd.StateTombstone }, "Offline")
		return p, nil
	})
}

func cancelDrain() *pdAction {
	spec := action.Spec{
		Name:        ActionCancelDrain,
		Description: "Cancel the decommission of an Offline store: POST /pd/api/v1/store/{id}/state?state=Up (pd-ctl store cancel-delete).",
		Params:      []action.Param{idParam("store_id", "Offline store to bring back")},
		Risk:        action.RiskLow,
		Reversible:  true,
		Rollback:    "drain_store(store_id)",
		Targets:     []string{"store_id"},
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm storeParams) (*plan, error) {
		p := &plan{}
		s, err := loadStore(ctx, c, p, prm.StoreID)
		if err != nil || s == nil {
			return p, err
		}
		p.check("store_offline", s.Store.StateName == pd.StateOffline, "store %d is %s (must be Offline)", prm.StoreID, s.Store.StateName)
		stores, now, err := c.StoresWithTime(ctx)
		if err != nil {
			return nil, err
		}
		if fresh := findStore(stores, prm.StoreID); fresh != nil {
			checkHeartbeat(p, fresh, now, heartbeatInterval(ctx))
		} else {
			p.check("target_store_heartbeat", false, "store %d missing from %s", prm.StoreID, endpointStores)
		}
		p.check("not_physically_destroyed", !s.Store.PhysicallyDestroyed, "store %d physically_destroyed=%v (PD refuses to bring such a store back)", prm.StoreID, s.Store.PhysicallyDestroyed)
		p.previous = map[string]any{"state_name": s.Store.StateName}
		id := prm.StoreID
		p.steps = []step{{
			req:  action.Request{Method: "POST", Path: "/pd/api/v1/store/" + strconv.FormatUint(id, 10) + "/state?state=Up"},
			send: func(ctx context.Context) error { return c.SetStoreState(ctx, id, pd.StateUp) },
		}}
		p.summary = fmt.Sprintf("return store %d from Offline to Up (stop its decommission)", id)
		p.verify = storeStateVerifier(c, id, func(st string) bool {
			return st == pd.StateUp || st == pd.StateDisconnected || st == pd.StateDown
		}, "Up")
		return p, nil
	})
}

// evictLeaderSet returns the stores under evict-leader: those in the
// scheduler's config list and, for PD 3.x, those named by
// evict-leader-scheduler-{id} schedulers.
func evictLeaderSet(ctx context.Context, c *pd.Client) (map[uint64]bool, error) {
	ids, err := c.EvictLeaderStores(ctx)
	if err != nil {
		return nil, err
	}
	names, err := c.Schedulers(ctx)
	if err != nil {
		return nil, err
	}
	set := map[uint64]bool{}
	for _, id := range ids {
		set[id] = true
	}
	for _, id := range evictLeaderNames(names) {
		set[id] = true
	}
	return set, nil
}

// evictLeaderNames extracts store ids from legacy per-store scheduler
// names "evict-leader-scheduler-{id}".
func evictLeaderNames(names []string) []uint64 {
	var out []uint64
	for _, n := range names {
		if rest, ok := strings.CutPrefix(n, pd.EvictLeaderScheduler+"-"); ok {
			if id, err := strconv.ParseUint(rest, 10, 64); err == nil {
				out = append(out, id)
			}
		}
	}
	return out
}

func evictVerifier(c *pd.Client, id uint64, wantPresent bool) func(context.Context) (verdict, error) {
	return func(ctx context.Context) (verdict, error) {
		set, err := evictLeaderSet(ctx, c)
		if err != nil {
			return verdict{}, err
		}
		ids := make([]uint64, 0, len(set))
		for k := range set {
			ids = append(ids, k)
		}
		slices.Sort(ids)
		return verdict{
			done:     set[id] == wantPresent,
			msg:      fmt.Sprintf("evict-leader-scheduler holds stores %v", ids),
			observed: map[string]any{"evict_leader_store_ids": ids},
		}, nil
	}
}

type evictParams struct {
	StoreID  uint64 `json:"store_id"`
	Duration string `json:"duration"`
}

func evictLeader() *pdAction {
	spec := action.Spec{
		Name: ActionEvictLeader,
		Description: "Move every Raft leader off a store and keep them off (evict-leader-scheduler), the reversible maintenance drain " +
			"used before restarting a TiKV; replicas stay where they are.",
		Params:     []action.Param{idParam("store_id", "TiKV store to evict leaders from"), durationParam("the maintenance lasts; the executor then removes the eviction by itself")},
		Risk:       action.RiskMedium,
		Reversible: true,
		Rollback:   "remove_evict_leader(store_id) (previous.evicting=false records that the store was not evicting before); a leftover evict-leader scheduler keeps the store leaderless forever, so always remove it after maintenance",
		Targets:    []string{"store_id"},
		Capacity:   true,
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm evictParams) (*plan, error) {
		p := &plan{}
		if _, ok := checkDuration(p, prm.Duration); !ok {
			return p, nil
		}
		s, err := loadStore(ctx, c, p, prm.StoreID)
		if err != nil || s == nil {
			return p, err
		}
		p.check("store_state_known", knownState(s.Store.StateName), "store %d state_name %q (from %s)", prm.StoreID, s.Store.StateName, endpointStores)
		p.check("store_not_removed", s.Store.StateName != pd.StateTombstone, "store %d is %s", prm.StoreID, s.Store.StateName)
		p.check("store_is_tikv", !s.IsTiFlash(), "store %d is %s", prm.StoreID, map[bool]string{true: "a TiFlash store (holds no leaders)", false: "a TiKV store"}[s.IsTiFlash()])
		set, err := evictLeaderSet(ctx, c)
		if err != nil {
			return nil, err
		}
		p.check("not_already_evicting", !set[prm.StoreID], "store %d under evict-leader already: %v", prm.StoreID, set[prm.StoreID])
		stores, err := c.Stores(ctx)
		if err != nil {
			return nil, err
		}
		homes := 0
		for _, id := range availableTiKVStores(stores, prm.StoreID) {
			if !set[id] {
				homes++
			}
		}
		p.check("leaders_placeable", homes > 0, "%d other Up TiKV stores can take the leaders", homes)
		// PD's evict-leader scheduler moves a leader only to a store that
		// already holds a follower of the region (PD
		// pkg/schedule/schedulers/evict_leader.go scheduleEvictLeaderOnce:
		// candidates = GetFollowerStores(region), StoreStateFilter with
		// TransferLeader). A region has max-replicas voters on distinct
		// stores, so every region keeps a leader home only while fewer than
		// max-replicas TiKV stores cannot hold leaders (under evict-leader,
		// or not Up): that counts stores evicted by actions already
		// executed (capacity serialisation makes them sequential).
		rep, ok, err := loadReplication(ctx, c, p)
		if err != nil {
			return nil, err
		}
		if ok {
			unable := map[uint64]bool{prm.StoreID: true}
			up := map[uint64]bool{}
			for _, id := range availableTiKVStores(stores) {
				up[id] = true
			}
			for i := range stores {
				o := &stores[i]
				if o.IsTiFlash() || o.Store.StateName == pd.StateTombstone {
					continue
				}
				if set[o.Store.ID] || !up[o.Store.ID] {
					unable[o.Store.ID] = true
				}
			}
			ids := make([]uint64, 0, len(unable))
			for id := range unable {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			p.check("leader_home_per_region", uint64(len(ids)) < rep.maxReplicas,
				"TiKV stores unable to hold leaders after this eviction: %d %v (under evict-leader or not Up); with max-replicas %d a region whose voters all sit on them keeps no store to move its leader to (PD moves an evicted leader only to a follower's store)",
				len(ids), ids, rep.maxReplicas)
		}
		if s.Status.LeaderCount > 0 {
			p.warn("store %d holds %d leaders; they move to other stores over the next minutes", prm.StoreID, s.Status.LeaderCount)
		}
		p.previous = map[string]any{"leader_count": s.Status.LeaderCount, "evicting": false}
		body := map[string]any{"name": pd.EvictLeaderScheduler, "store_id": prm.StoreID}
		p.steps = []step{{
			req:  action.Request{Method: "POST", Path: "/pd/api/v1/schedulers", Body: jsonBody(body)},
			send: func(ctx context.Context) error { return c.AddScheduler(ctx, body) },
		}}
		p.summary = fmt.Sprintf("add store %d to evict-leader-scheduler (its %d leaders move away)", prm.StoreID, s.Status.LeaderCount)
		p.verify = evictVerifier(c, prm.StoreID, true)
		return p, nil
	})
}

func removeEvictLeader() *pdAction {
	spec := action.Spec{
		Name:        ActionRemoveEvictLeader,
		Description: "Let a store hold leaders again: remove it from evict-leader-scheduler (DELETE /pd/api/v1/schedulers/evict-leader-scheduler-{id}).",
		Params:      []action.Param{idParam("store_id", "store to remove from evict-leader-scheduler")},
		Risk:        action.RiskLow,
		Settle:      SchedulerSettle,
		Reversible:  true,
		Rollback:    "evict_leader(store_id)",
		Targets:     []string{"store_id"},
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm storeParams) (*plan, error) {
		p := &plan{}
		set, err := evictLeaderSet(ctx, c)
		if err != nil {
			return nil, err
		}
		// No store_exists check: leftover schedulers of removed stores are
		// exactly what this cleans up.
		p.check("store_evicting", set[prm.StoreID], "store %d under evict-leader-scheduler: %v", prm.StoreID, set[prm.StoreID])
		name := pd.EvictLeaderScheduler + "-" + strconv.FormatUint(prm.StoreID, 10)
		p.steps = []step{{
			req:  action.Request{Method: "DELETE", Path: "/pd/api/v1/schedulers/" + name},
			send: func(ctx context.Context) error { return c.RemoveScheduler(ctx, name) },
		}}
		p.summary = fmt.Sprintf("remove store %d from evict-leader-scheduler", prm.StoreID)
		p.verify = evictVerifier(c, prm.StoreID, false)
		return p, nil
	})
}
