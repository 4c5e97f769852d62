package tikv

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
)

// MaxScheduleLimit bounds the schedule-limit actions' parameter. PD has no
// upper bound; this one stops a typo or a model's guess from unleashing
// unbounded scheduling (PD's largest default, region-schedule-limit, is
// 2048).
const MaxScheduleLimit = 100000

// configStep is the single POST /pd/api/v1/config step of a config action.
func configStep(c *pd.Client, items map[string]any) step {
	return step{
		req:  action.Request{Method: "POST", Path: "/pd/api/v1/config", Body: jsonBody(items)},
		send: func(ctx context.Context) error { return c.SetConfig(ctx, items) },
	}
}

// scheduleLimitValue reads one of the three limits from the schedule config.
func scheduleLimitValue(sc *pd.ScheduleConfig, key string) uint64 {
	switch key {
	case "leader-schedule-limit":
		return sc.LeaderScheduleLimit
	case "region-schedule-limit":
		return sc.RegionScheduleLimit
	case "replica-schedule-limit":
		return sc.ReplicaScheduleLimit
	}
	return 0
}

type limitParams struct {
	Limit uint64 `json:"limit"`
}

// scheduleLimit builds set_leader_schedule_limit, set_region_schedule_limit
// and set_replica_schedule_limit: POST /pd/api/v1/config {key: limit},
// verified through GET /pd/api/v1/config/schedule.
func scheduleLimit(name, key, what string) *pdAction {
	spec := action.Spec{
		Name:        name,
		Description: fmt.Sprintf("Set PD's %s: %s. 0 stops that kind of scheduling.", key, what),
		Params: []action.Param{{
			Name: "limit", Type: action.ParamInteger, Required: true, Min: floatPtr(0), Max: floatPtr(MaxScheduleLimit),
			Description: fmt.Sprintf("new %s, a non-negative integer", key),
		}},
		Risk:       action.RiskMedium,
		Reversible: true,
		Rollback:   fmt.Sprintf("%s with limit = the previous value recorded in previous[%q]", name, key),
	}
	return &pdAction{spec: spec, plan: func(ctx context.Context, c *pd.Client, raw json.RawMessage) (*plan, error) {
		var prm limitParams
		if err := action.DecodeParams(spec, raw, &prm); err != nil {
			return invalidParams(err), nil
		}
		sc, err := c.ScheduleConfig(ctx)
		if err != nil {
			return nil, err
		}
		p := &plan{}
		old := scheduleLimitValue(sc, key)
		p.check("config_readable", true, "current %s is %d", key, old)
		if old == prm.Limit {
			p.warn("%s is already %d: the request changes nothing", key, old)
		}
		if prm.Limit == 0 {
			p.warn("%s 0 stops this kind of scheduling until raised again", key)
		}
		p.previous = map[string]any{key: old}
		p.steps = []step{configStep(c, map[string]any{key: prm.Limit})}
		p.summary = fmt.Sprintf("set %s from %d to %d", key, old, prm.Limit)
		p.verify = func(ctx context.Context) (verdict, error) {
			now, err := c.ScheduleConfig(ctx)
			if err != nil {
				return verdict{}, err
			}
			v := scheduleLimitValue(now, key)
			return verdict{
				done:     v == prm.Limit,
				msg:      fmt.Sprintf("GET /pd/api/v1/config/schedule shows %s = %d", key, v),
				observed: map[string]any{key: v},
			}, nil
		}
		return p, nil
	}}
}

type lowSpaceParams struct {
	Percent float64 `json:"percent"`
}

// lowSpaceThreshold builds set_low_space_threshold: POST /pd/api/v1/config
// {"low-space-ratio": percent/100}. PD treats a store as low on space when
// available/capacity < 1 - low-space-ratio, and requires
// high-space-ratio < low-space-ratio <= 1.
func lowSpaceThreshold() *pdAction {
	spec := action.Spec{
		Name: ActionSetLowSpaceThreshold,
		Description: "Set PD's low-space-ratio to percent/100: a store counts as low on space (no new replicas, region score penalty) " +
			"when its used share exceeds it. It must stay above high-space-ratio (default 0.7).",
		Params: []action.Param{{
			Name: "percent", Type: action.ParamNumber, Required: true, Min: floatPtr(0), Max: floatPtr(100),
			Description: "used-space percentage at which a store is low on space, 0-100 (PD default 80)",
		}},
		Risk:       action.RiskMedium,
		Reversible: true,
		Rollback:   "set_low_space_threshold with percent = previous[\"low-space-ratio\"] * 100",
	}
	return &pdAction{spec: spec, plan: func(ctx context.Context, c *pd.Client, raw json.RawMessage) (*plan, error) {
		var prm lowSpaceParams
		if err := action.DecodeParams(spec, raw, &prm); err != nil {
			return invalidParams(err), nil
		}
		sc, err := c.ScheduleConfig(ctx)
		if err != nil {
			return nil, err
		}
		p := &plan{}
		ratio := math.Round(prm.Percent*1e4) / 1e6 // percent/100, rounded to 6 decimals
		p.check("above_high_space_ratio", ratio > sc.HighSpaceRatio,
			"low-space-ratio %g must be larger than high-space-ratio %g", ratio, sc.HighSpaceRatio)
		p.check("at_most_one", ratio <= 1, "low-space-ratio %g must be at most 1", ratio)
		if ratio == sc.LowSpaceRatio {
			p.warn("low-space-ratio is already %g: the request changes nothing", ratio)
		}
		if ratio > 0.95 {
			p.warn("low-space-ratio %g lets stores fill to %g%% before PD reacts; TiKV refuses writes when its disk is full", ratio, ratio*100)
		}
		p.previous = map[string]any{"low-space-ratio": sc.LowSpaceRatio}
		p.steps = []step{configStep(c, map[string]any{"low-space-ratio": ratio})}
		p.summary = fmt.Sprintf("set low-space-ratio from %g to %g", sc.LowSpaceRatio, ratio)
		p.verify = func(ctx context.Context) (verdict, error) {
			now, err := c.ScheduleConfig(ctx)
			if err != nil {
				return verdict{}, err
			}
			return verdict{
				done:     math.Abs(now.LowSpaceRatio-ratio) < 1e-9,
				msg:      fmt.Sprintf("GET /pd/api/v1/config/schedule shows low-space-ratio = %g", now.LowSpaceRatio),
				observed: map[string]any{"low-space-ratio": now.LowSpaceRatio},
			}, nil
		}
		return p, nil
	}}
}
