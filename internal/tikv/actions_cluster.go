package tikv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
)

// ActionSetAllStoresLimit is the cluster-wide variant of set_store_limit.
const ActionSetAllStoresLimit = "set_all_stores_limit"

// Store limit bounds, operators per minute (PD's default is 15 for TiKV
// stores, 30 for TiFlash; PD v8.1 pkg/schedule/config/config.go:78-80).
const (
	MinStoreLimit = 1
	MaxStoreLimit = 10000
)

func asAPIError(err error, target **pd.APIError) bool { return errors.As(err, target) }

// storeLimitTypes are the store limit types PD accepts (PD v8.1
// pkg/core/storelimit/store_limit.go:48-52).
var storeLimitTypes = []string{"add-peer", "remove-peer"}

func limitOf(l pd.StoreLimit, typ string) float64 {
	if typ == "add-peer" {
		return l.AddPeer
	}
	return l.RemovePeer
}

// loadStoreLimits reads GET /pd/api/v1/stores/limit, turning PD's refusal
// (v8.5 answers 400 when store-limit-version is not v1) into a failed
// check.
func loadStoreLimits(ctx context.Context, c *pd.Client, p *plan) (map[uint64]pd.StoreLimit, error) {
	limits, err := c.StoreLimits(ctx)
	var apiErr *pd.APIError
	if asAPIError(err, &apiErr) {
		p.check("store_limits_readable", false, "GET /pd/api/v1/stores/limit refused: %s (store-limit-version v2?)", apiErr.Message)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p.check("store_limits_readable", len(limits) > 0, "GET /pd/api/v1/stores/limit lists %d stores", len(limits))
	return limits, nil
}

func storeLimitParams() []action.Param {
	return []action.Param{
		{Name: "type", Type: action.ParamString, Required: true, Enum: storeLimitTypes,
			Description: "add-peer (snapshots a store receives) or remove-peer (peers a store drops)"},
		{Name: "rate", Type: action.ParamNumber, Required: true, Min: floatPtr(MinStoreLimit), Max: floatPtr(MaxStoreLimit),
			Description: "operators per minute (PD default 15 for TiKV)"},
		durationParam("the raised or lowered limit lasts; the executor then restores the previous rate by itself"),
	}
}

type storeLimitParamsT struct {
	StoreID  uint64  `json:"store_id"`
	Type     string  `json:"type"`
	Rate     float64 `json:"rate"`
	Duration string  `json:"duration,omitempty"`
}

func limitVerifier(c *pd.Client, ids []uint64, typ string, rate float64) func(context.Context) (verdict, error) {
	return func(ctx context.Context) (verdict, error) {
		limits, err := c.StoreLimits(ctx)
		if err != nil {
			return verdict{}, err
		}
		seen := map[string]float64{}
		done := true
		for _, id := range ids {
			l, ok := limits[id]
			v := limitOf(l, typ)
			seen[strconv.FormatUint(id, 10)] = v
			if !ok || math.Abs(v-rate) > 1e-6 {
				done = false
			}
		}
		return verdict{done: done, msg: fmt.Sprintf("GET /pd/api/v1/stores/limit shows %s %v", typ, seen), observed: map[string]any{typ: seen}}, nil
	}
}

func setStoreLimit() *pdAction {
	spec := action.Spec{
		Name:        ActionSetStoreLimit,
		Description: "Set one store's add-peer or remove-peer rate limit (POST /pd/api/v1/store/{id}/limit {\"rate\":R,\"type\":T}, pd-ctl store limit): raise it to speed up a drain or repair, lower it to protect a busy store.",
		Params:      append([]action.Param{idParam("store_id", "store whose limit changes")}, storeLimitParams()...),
		Risk:        action.RiskMedium,
		Settle:      SchedulerSettle,
		Reversible:  true,
		Rollback:    "set_store_limit(store_id, type, rate = previous.rate) restores the recorded rate",
		Targets:     []string{"store_id"},
		Capacity:    true,
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm storeLimitParamsT) (*plan, error) {
		p := &plan{}
		if _, ok := checkDuration(p, prm.Duration); !ok {
			return p, nil
		}
		s, err := loadStore(ctx, c, p, prm.StoreID)
		if err != nil || s == nil {
			return p, err
		}
		p.check("store_state_known", knownState(s.Store.StateName), "store %d state_name %q", prm.StoreID, s.Store.StateName)
		p.check("store_not_removed", s.Store.StateName != pd.StateTombstone, "store %d is %s", prm.StoreID, s.Store.StateName)
		limits, err := loadStoreLimits(ctx, c, p)
		if err != nil || limits == nil {
			return p, err
		}
		cur, ok := limits[prm.StoreID]
		if !p.check("store_limit_known", ok, "store %d %s in GET /pd/api/v1/stores/limit", prm.StoreID, map[bool]string{true: "listed", false: "missing"}[ok]) {
			return p, nil
		}
		old := limitOf(cur, prm.Type)
		if old == prm.Rate {
			p.warn("store %d %s limit is already %g", prm.StoreID, prm.Type, old)
		}
		if prm.Rate < old {
			p.warn("lowering store %d's %s limit from %g to %g/min slows PD's repair and drains through it", prm.StoreID, prm.Type, old, prm.Rate)
		}
		p.previous = map[string]any{"store_id": prm.StoreID, "type": prm.Type, "rate": old}
		body := map[string]any{"rate": prm.Rate, "type": prm.Type}
		id := prm.StoreID
		p.steps = []step{{
			req:  action.Request{Method: "POST", Path: "/pd/api/v1/store/" + strconv.FormatUint(id, 10) + "/limit", Body: jsonBody(body)},
			send: func(ctx context.Context) error { return c.SetStoreLimit(ctx, id, prm.Type, prm.Rate) },
		}}
		p.summary = fmt.Sprintf("set store %d %s limit from %g to %g operators/min", id, prm.Type, old, prm.Rate)
		p.verify = limitVerifier(c, []uint64{id}, prm.Type, prm.Rate)
		return p, nil
	})
}

type allLimitParams struct {
	Type     string  `json:"type"`
	Rate     float64 `json:"rate"`
	Duration string  `json:"duration,omitempty"`
}

func setAllStoresLimit() *pdAction {
	spec := action.Spec{
		Name:        ActionSetAllStoresLimit,
		Description: "Set every store's add-peer or remove-peer rate limit (POST /pd/api/v1/stores/limit {\"rate\":R,\"type\":T}, pd-ctl store limit all).",
		Params:      storeLimitParams(),
		Risk:        action.RiskMedium,
		Settle:      SchedulerSettle,
		Reversible:  true,
		Rollback:    "set_store_limit(store_id, type, rate) for each store in previous.rates (store id -> rate), or set_all_stores_limit(type, rate) when they were all equal (previous.rate)",
		Capacity:    true,
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm allLimitParams) (*plan, error) {
		p := &plan{}
		if _, ok := checkDuration(p, prm.Duration); !ok {
			return p, nil
		}
		limits, err := loadStoreLimits(ctx, c, p)
		if err != nil || limits == nil {
			return p, err
		}
		rates := map[string]float64{}
		ids := make([]uint64, 0, len(limits))
		var first float64
		same := true
		for id := range limits {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for i, id := range ids {
			v := limitOf(limits[id], prm.Type)
			rates[strconv.FormatUint(id, 10)] = v
			if i == 0 {
				first = v
			} else if v != first {
				same = false
			}
			if prm.Rate < v {
				p.warn("store %d's %s limit drops from %g to %g/min", id, prm.Type, v, prm.Rate)
			}
		}
		p.previous = map[string]any{"type": prm.Type, "rates": rates}
		if same {
			p.previous["rate"] = first
		}
		body := map[string]any{"rate": prm.Rate, "type": prm.Type}
		p.steps = []step{{
			req:  action.Request{Method: "POST", Path: "/pd/api/v1/stores/limit", Body: jsonBody(body)},
			send: func(ctx context.Context) error { return c.SetAllStoresLimit(ctx, prm.Type, prm.Rate) },
		}}
		p.summary = fmt.Sprintf("set the %s limit of all %d stores to %g operators/min", prm.Type, len(ids), prm.Rate)
		p.verify = limitVerifier(c, ids, prm.Type, prm.Rate)
		return p, nil
	})
}

type noParams struct{}

func removeTombstones() *pdAction {
	spec := action.Spec{
		Name: ActionRemoveTombstones,
		Description: "Delete the records of Tombstone stores that hold no region (DELETE /pd/api/v1/stores/remove-tombstone, pd-ctl store remove-tombstone). " +
			"Their ids can never come back anyway; PD also deletes them after 30 days.",
		Params:     []action.Param{},
		Risk:       action.RiskLow,
		Reversible: false,
		Rollback:   "none: the records are gone (previous.tombstone_store_ids lists them); a Tombstone store id can never rejoin in any case",
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, _ noParams) (*plan, error) {
		p := &plan{}
		tombs, err := c.Stores(ctx, pd.StateTombstone)
		if err != nil {
			return nil, err
		}
		var ids, busy []uint64
		for _, s := range tombs {
			if s.Store.StateName != pd.StateTombstone {
				continue
			}
			if s.Status.RegionCount > 0 {
				busy = append(busy, s.Store.ID)
				continue
			}
			ids = append(ids, s.Store.ID)
		}
		p.check("tombstones_exist", len(ids) > 0, "Tombstone stores without regions: %v (GET /pd/api/v1/stores/check?state=tombstone)", ids)
		if len(busy) > 0 {
			p.warn("Tombstone stores %v still report regions; PD skips them", busy)
		}
		p.previous = map[string]any{"tombstone_store_ids": ids}
		p.steps = []step{{
			req:  action.Request{Method: "DELETE", Path: "/pd/api/v1/stores/remove-tombstone"},
			send: func(ctx context.Context) error { return c.RemoveTombstones(ctx) },
		}}
		p.summary = fmt.Sprintf("delete the records of Tombstone stores %v", ids)
		p.verify = func(ctx context.Context) (verdict, error) {
			now, err := c.Stores(ctx, pd.StateTombstone)
			if err != nil {
				return verdict{}, err
			}
			var left []uint64
			for _, s := range now {
				if slices.Contains(ids, s.Store.ID) {
					left = append(left, s.Store.ID)
				}
			}
			return verdict{done: len(left) == 0, msg: fmt.Sprintf("Tombstone records still listed: %v", left), observed: map[string]any{"remaining_tombstone_store_ids": left}}, nil
		}
		return p, nil
	})
}

type mergeParams struct {
	SourceRegionID uint64 `json:"source_region_id"`
	TargetRegionID uint64 `json:"target_region_id"`
}

func storeSet(r *pd.Region) []uint64 {
	out := make([]uint64, 0, len(r.Peers))
	for _, p := range r.Peers {
		out = append(out, p.StoreID)
	}
	slices.Sort(out)
	return out
}

func mergeRegion() *pdAction {
	spec := action.Spec{
		Name: ActionMergeRegion,
		Description: "Merge a small region into its adjacent neighbour (PD operator merge-region). Both must be small (at most max-merge-region-size), " +
			"healthy, and have their peers on the same stores.",
		Params: []action.Param{
			idParam("source_region_id", "region that disappears into the target"),
			idParam("target_region_id", "adjacent region that absorbs it and keeps its id"),
		},
		Risk:       action.RiskMedium,
		Reversible: false,
		Rollback:   "none directly; split_region(target_region_id, policy usekey, keys=[the old boundary, recorded in previous]) splits the range again",
		Targets:    []string{"source_region_id", "target_region_id"},
	}
	return typedAction(spec, func(ctx context.Context, c *pd.Client, prm mergeParams) (*plan, error) {
		p := &plan{}
		if !p.check("distinct_regions", prm.SourceRegionID != prm.TargetRegionID, "source %d and target %d", prm.SourceRegionID, prm.TargetRegionID) {
			return p, nil
		}
		src, err := loadRegion(ctx, c, p, prm.SourceRegionID)
		if err != nil || src == nil {
			return p, err
		}
		dst, err := loadRegion(ctx, c, p, prm.TargetRegionID)
		if err != nil || dst == nil {
			return p, err
		}
		s, t := src.region, dst.region
		adjacent := (s.EndKey != "" && s.EndKey == t.StartKey) || (t.EndKey != "" && t.EndKey == s.StartKey)
		p.check("adjacent", adjacent, "source [%q, %q), target [%q, %q)", s.StartKey, s.EndKey, t.StartKey, t.EndKey)
		ss, ts := storeSet(s), storeSet(t)
		p.check("same_stores", slices.Equal(ss, ts), "source peers on stores %v, target on %v", ss, ts)
		for _, rs := range []*regionState{src, dst} {
			r := rs.region
			q := RegionQuorum(r, rs.stores)
			p.check("region_healthy", q.Healthy == q.Voters && len(r.PendingPeers) == 0 && len(r.DownPeers) == 0 && r.HasLeader() && !inJointConsensus(r),
				"region %d: leader on store %d, %d healthy of %d voters, %d pending, %d down, joint=%v", r.ID, r.Leader.StoreID, q.Healthy, q.Voters, len(r.PendingPeers), len(r.DownPeers), inJointConsensus(r))
		}
		v, err := scheduleView(ctx, c)
		if err != nil {
			return nil, err
		}
		maxSize, err := v.positive("max-merge-region-size")
		if p.check("max_merge_size_known", err == nil, "%s", errText(err, fmt.Sprintf("max-merge-region-size is %d MiB", maxSize))) {
			for _, r := range []*pd.Region{s, t} {
				p.check("region_small", r.ApproximateSize <= int64(maxSize), "region %d approximate size %d MiB (max-merge-region-size %d MiB)", r.ID, r.ApproximateSize, maxSize)
			}
		}
		boundary := s.EndKey
		if t.EndKey == s.StartKey {
			boundary = s.StartKey
		}
		p.previous = map[string]any{"source": regionSummary(s), "target": regionSummary(t), "boundary_key": boundary}
		body := map[string]any{"name": "merge-region", "source_region_id": prm.SourceRegionID, "target_region_id": prm.TargetRegionID}
		p.steps = []step{operatorStep(c, body)}
		p.summary = fmt.Sprintf("merge region %d [%q, %q) into region %d [%q, %q)", s.ID, s.StartKey, s.EndKey, t.ID, t.StartKey, t.EndKey)
		start, end := t.StartKey, t.EndKey
		if s.StartKey < t.StartKey || t.StartKey == s.EndKey {
			start = s.StartKey
		} else {
			end = s.EndKey
		}
		p.verify = func(ctx context.Context) (verdict, error) {
			_, serr := c.Region(ctx, prm.SourceRegionID)
			gone := errors.Is(serr, pd.ErrRegionNotFound)
			if serr != nil && !gone {
				return verdict{}, serr
			}
			now, err := c.Region(ctx, prm.TargetRegionID)
			if err != nil && !errors.Is(err, pd.ErrRegionNotFound) {
				return verdict{}, err
			}
			v := verdict{observed: map[string]any{"source_exists": !gone}}
			if now == nil {
				v.failed, v.msg = true, fmt.Sprintf("target region %d no longer exists", prm.TargetRegionID)
				return v, nil
			}
			v.observed["target"] = regionSummary(now)
			// The target covering both ranges is the merge; PD may keep the
			// source in its cache until its record is overwritten.
			v.done = now.StartKey == start && now.EndKey == end
			v.msg = fmt.Sprintf("source region %d exists: %v; target region %d covers [%q, %q) (want [%q, %q))", prm.SourceRegionID, !gone, now.ID, now.StartKey, now.EndKey, start, end)
			if !v.done {
				if op, err := c.RegionOperator(ctx, prm.SourceRegionID); err == nil && op.Status.Finished() && op.Status != pd.OperatorSuccess && op.Desc != src.ignoreDesc() {
					v.failed = true
					v.msg = fmt.Sprintf("operator %s; %s", op.Status, v.msg)
				}
			}
			return v, nil
		}
		return p, nil
	})
}
