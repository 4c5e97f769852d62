package tikv

import (
	"context"
	"encoding/json"
	"errors"
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
	minLimit, risk, capacity := 0.0, action.RiskMedium, false
	desc := fmt.Sprintf("Set PD's %s: %s. 0 stops that kind of scheduling.", key, what)
	if key == "replica-schedule-limit" {
		// 0 would stop PD re-replicating a lost store's data: refused, and
		// lowering it slows repair, so the action is high risk and
		// serialised with the other capacity-reducing actions.
		minLimit, risk, capacity = 1, action.RiskHigh, true
		desc = fmt.Sprintf("Set PD's %s: %s. Minimum 1: 0 would stop PD repairing lost replicas.", key, what)
	}
	spec := action.Spec{
		Name:        name,
		Description: desc,
		Params: []action.Param{{
			Name: "limit", Type: action.ParamInteger, Required: true, Min: floatPtr(minLimit), Max: floatPtr(MaxScheduleLimit),
			Description: fmt.Sprintf("new %s, an integer >= %g", key, minLimit),
		}},
		Risk:       risk,
		Reversible: true,
		Rollback:   fmt.Sprintf("%s with limit = the previous value recorded in previous[%q]", name, key),
		Capacity:   capacity,
	}
	return &pdAction{spec: spec, plan: func(ctx context.Context, c *pd.Client, raw json.RawMessage) (*plan, error) {
		var prm limitParams
		if err := action.DecodeParams(spec, raw, &prm); err != nil {
			return invalidParams(err), nil
		}
		v, err := scheduleView(ctx, c)
		if err != nil {
			return nil, err
		}
		p := &plan{}
		old, err := v.uint(key)
		if !p.check("config_readable", err == nil, "%s", errText(err, fmt.Sprintf("current %s is %d", key, old))) {
			return p, nil
		}
		if old == prm.Limit {
			p.warn("%s is already %d: the request changes nothing", key, old)
		}
		if prm.Limit == 0 {
			p.warn("%s 0 stops this kind of scheduling until raised again", key)
		}
		if capacity && prm.Limit < old {
			p.warn("lowering %s from %d to %d slows PD's repair of missing replicas", key, old, prm.Limit)
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
		v, err := scheduleView(ctx, c)
		if err != nil {
			return nil, err
		}
		p := &plan{}
		high, herr := v.raw("high-space-ratio")
		var highRatio float64
		if herr == nil {
			if e := json.Unmarshal(high, &highRatio); e != nil || highRatio < 0 || highRatio > 1 {
				herr = fmt.Errorf("high-space-ratio in %s is not a ratio in [0, 1]: %.40s", endpointSchedule, string(high))
			}
		}
		oldRatio, lerr := v.ratio("low-space-ratio")
		if !p.check("config_readable", herr == nil && lerr == nil, "%s", errText(errors.Join(herr, lerr),
			fmt.Sprintf("low-space-ratio %g, high-space-ratio %g", oldRatio, highRatio))) {
			return p, nil
		}
		ratio := math.Round(prm.Percent*1e4) / 1e6 // percent/100, rounded to 6 decimals
		p.check("above_high_space_ratio", ratio > highRatio,
			"low-space-ratio %g must be larger than high-space-ratio %g", ratio, highRatio)
		p.check("at_most_one", ratio <= 1, "low-space-ratio %g must be at most 1", ratio)
		if ratio == oldRatio {
			p.warn("low-space-ratio is already %g: the request changes nothing", ratio)
		}
		if ratio > 0.95 {
			p.warn("low-space-ratio %g lets stores fill to %g%% before PD reacts; TiKV refuses writes when its disk is full", ratio, ratio*100)
		}
		p.previous = map[string]any{"low-space-ratio": oldRatio}
		p.steps = []step{configStep(c, map[string]any{"low-space-ratio": ratio})}
		p.summary = fmt.Sprintf("set low-space-ratio from %g to %g", oldRatio, ratio)
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
