package tikv

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// StoreState is one store in a captured state.
type StoreState struct {
	ID                  uint64 `json:"id"`
	Address             string `json:"address"`
	StateName           string `json:"state_name"`
	NodeState           int    `json:"node_state"`
	TiFlash             bool   `json:"tiflash,omitempty"`
	PhysicallyDestroyed bool   `json:"physically_destroyed,omitempty"`
	LeaderCount         int    `json:"leader_count"`
	RegionCount         int    `json:"region_count"`
}

// State is what CaptureState records before and after an action, for the
// audit trail. Fields that could not be read are absent and explained in
// Errors.
type State struct {
	// Time is PD's clock (Date header of GET /stores).
	Time   time.Time    `json:"time"`
	Stores []StoreState `json:"stores"`
	// Region is the region the params name (region_id), if any.
	Region *RegionSummary `json:"region,omitempty"`
	// Schedule holds the values the config actions change.
	Schedule map[string]any `json:"schedule,omitempty"`
	// MaxReplicas is replication.max-replicas.
	MaxReplicas uint64 `json:"max_replicas,omitempty"`
	// EvictLeaderStores are the stores under evict-leader-scheduler.
	EvictLeaderStores []uint64 `json:"evict_leader_store_ids"`
	// Schedulers are the enabled schedulers (GET /pd/api/v1/schedulers).
	Schedulers []string `json:"schedulers,omitempty"`
	// PausedSchedulers maps each paused scheduler to when PD resumes it,
	// unix seconds (GET /pd/api/v1/schedulers?status=paused&timestamp=true).
	PausedSchedulers map[string]int64 `json:"paused_schedulers,omitempty"`
	// StoreLimits are the per-store add-peer/remove-peer rates, operators
	// per minute, keyed by store id (GET /pd/api/v1/stores/limit).
	StoreLimits map[string]pd.StoreLimit `json:"store_limits,omitempty"`
	Errors      map[string]string        `json:"errors,omitempty"`
}

// CaptureState reads the cluster state an action may change and renders it
// as JSON (a State): every non-Tombstone store (id, address, state_name,
// node_state, leader and region counts), the region named by params'
// region_id if any, the schedule limits and space ratios, max-replicas and
// the evict-leader stores, the enabled and paused schedulers and the store
// limits. params is the action's params object; anything
// unparseable there only loses the region. It fails only when GET /stores
// fails (the error wraps pd.ErrUnreachable when PD is down).
func CaptureState(ctx context.Context, c *pd.Client, params json.RawMessage) (json.RawMessage, error) {
	stores, now, err := c.StoresWithTime(ctx)
	if err != nil {
		return nil, fmt.Errorf("capture state: %w", err)
	}
	st := State{Time: now, Stores: make([]StoreState, 0, len(stores)), EvictLeaderStores: []uint64{}, Errors: map[string]string{}}
	if st.Time.IsZero() {
		st.Time = time.Now().UTC()
	}
	for i := range stores {
		s := &stores[i]
		st.Stores = append(st.Stores, StoreState{
			ID: s.Store.ID, Address: s.Store.Address, StateName: s.Store.StateName, NodeState: s.Store.NodeState,
			TiFlash: s.IsTiFlash(), PhysicallyDestroyed: s.Store.PhysicallyDestroyed,
			LeaderCount: s.Status.LeaderCount, RegionCount: s.Status.RegionCount,
		})
	}
	var named struct {
		RegionID json.Number `json:"region_id"`
	}
	if len(params) > 0 {
		if err := json.Unmarshal(params, &named); err != nil {
			st.Errors["params"] = err.Error()
		}
	}
	if named.RegionID != "" {
		if id, err := parseID(named.RegionID); err != nil {
			st.Errors["region"] = err.Error()
		} else if r, err := c.Region(ctx, id); err != nil {
			st.Errors["region"] = err.Error()
		} else {
			st.Region = regionSummary(r)
		}
	}
	if sc, err := c.ScheduleConfig(ctx); err != nil {
		st.Errors["schedule"] = err.Error()
	} else {
		st.Schedule = map[string]any{
			"leader-schedule-limit":  sc.LeaderScheduleLimit,
			"region-schedule-limit":  sc.RegionScheduleLimit,
			"replica-schedule-limit": sc.ReplicaScheduleLimit,
			"low-space-ratio":        sc.LowSpaceRatio,
			"high-space-ratio":       sc.HighSpaceRatio,
		}
	}
	if rc, err := c.ReplicationConfig(ctx); err != nil {
		st.Errors["replication"] = err.Error()
	} else {
		st.MaxReplicas = rc.MaxReplicas
	}
	if set, err := evictLeaderSet(ctx, c); err != nil {
		st.Errors["evict_leader"] = err.Error()
	} else {
		for id := range set {
			st.EvictLeaderStores = append(st.EvictLeaderStores, id)
		}
		slices.Sort(st.EvictLeaderStores)
	}
	if names, err := c.Schedulers(ctx); err != nil {
		st.Errors["schedulers"] = err.Error()
	} else {
		st.Schedulers = names
	}
	if paused, err := c.PausedSchedulerTimes(ctx); err != nil {
		st.Errors["paused_schedulers"] = err.Error()
	} else if len(paused) > 0 {
		st.PausedSchedulers = map[string]int64{}
		for _, p := range paused {
			st.PausedSchedulers[p.Name] = p.ResumeAt.Unix()
		}
	}
	if limits, err := c.StoreLimits(ctx); err != nil {
		st.Errors["store_limits"] = err.Error()
	} else {
		st.StoreLimits = map[string]pd.StoreLimit{}
		for id, l := range limits {
			st.StoreLimits[fmt.Sprint(id)] = l
		}
	}
	if len(st.Errors) == 0 {
		st.Errors = nil
	}
	return json.Marshal(st)
}

func parseID(n json.Number) (uint64, error) {
	var id uint64
	if _, err := fmt.Sscan(n.String(), &id); err != nil || id == 0 {
		return 0, fmt.Errorf("region_id %s is not a positive integer", n)
	}
	return id, nil
}
