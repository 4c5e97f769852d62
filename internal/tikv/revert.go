package tikv

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// Bounds of the duration param of temporary actions (evict_leader,
// set_store_limit, set_all_stores_limit).
const (
	MinTemporary = time.Second
	MaxTemporary = 7 * 24 * time.Hour
)

// durationParam is the optional duration of a temporary change, a Go
// duration string ("2h", "30m").
func durationParam(what string) action.Param {
	return action.Param{Name: "duration", Type: action.ParamString,
		Description: fmt.Sprintf("optional Go duration (\"30m\", \"2h\"; %s to %s) %s", MinTemporary, MaxTemporary, what)}
}

// checkDuration validates an optional duration param; "" is no duration.
func checkDuration(p *plan, s string) (time.Duration, bool) {
	if s == "" {
		return 0, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinTemporary || d > MaxTemporary {
		p.check("params", false, "duration %q: want a Go duration between %s and %s", s, MinTemporary, MaxTemporary)
		return 0, false
	}
	return d, true
}

// Reverts implements action.Temporary for the actions with a duration
// param: evict_leader reverts with remove_evict_leader (the store was not
// evicting before: its precondition), set_store_limit with set_store_limit
// at previous.rate, set_all_stores_limit with set_all_stores_limit at
// previous.rate when every store had the same rate, else with one
// set_store_limit per store in previous.rates.
func (a *pdAction) Reverts(raw json.RawMessage, out action.Outcome) ([]action.Revert, error) {
	var head struct {
		Duration string `json:"duration"`
	}
	if err := json.Unmarshal(raw, &head); err != nil || head.Duration == "" {
		return nil, nil
	}
	d, err := time.ParseDuration(head.Duration)
	if err != nil {
		return nil, fmt.Errorf("%s: duration %q: %w", a.spec.Name, head.Duration, err)
	}
	var prev struct {
		Evicting *bool              `json:"evicting"`
		Rate     *float64           `json:"rate"`
		Rates    map[string]float64 `json:"rates"`
		Type     string             `json:"type"`
	}
	pb, err := json.Marshal(out.Previous)
	if err == nil {
		err = json.Unmarshal(pb, &prev)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: previous values unreadable: %w", a.spec.Name, err)
	}
	switch a.spec.Name {
	case ActionEvictLeader:
		var prm evictParams
		if err := json.Unmarshal(raw, &prm); err != nil {
			return nil, err
		}
		if prev.Evicting == nil || *prev.Evicting {
			return nil, fmt.Errorf("%s: previous.evicting is not false: nothing to restore", a.spec.Name)
		}
		return []action.Revert{{ActionType: ActionRemoveEvictLeader, Params: jsonBody(map[string]any{"store_id": prm.StoreID}),
			After: d, Expect: jsonBody(map[string]any{"evicting": true}), Restore: jsonBody(map[string]any{"evicting": false})}}, nil
	case ActionSetStoreLimit:
		var prm storeLimitParamsT
		if err := json.Unmarshal(raw, &prm); err != nil {
			return nil, err
		}
		if prev.Rate == nil {
			return nil, fmt.Errorf("%s: previous.rate missing: nothing to restore", a.spec.Name)
		}
		return []action.Revert{storeLimitRevert(prm.StoreID, prm.Type, prm.Rate, *prev.Rate, d)}, nil
	case ActionSetAllStoresLimit:
		var prm allLimitParams
		if err := json.Unmarshal(raw, &prm); err != nil {
			return nil, err
		}
		if len(prev.Rates) == 0 {
			return nil, fmt.Errorf("%s: previous.rates missing: nothing to restore", a.spec.Name)
		}
		if prev.Rate != nil {
			expect, restore := map[string]float64{}, map[string]float64{}
			for id := range prev.Rates {
				expect[id], restore[id] = prm.Rate, *prev.Rate
			}
			return []action.Revert{{ActionType: ActionSetAllStoresLimit, Params: jsonBody(map[string]any{"type": prm.Type, "rate": *prev.Rate}),
				After: d, Expect: jsonBody(map[string]any{"rates": expect}), Restore: jsonBody(map[string]any{"rates": restore})}}, nil
		}
		var out []action.Revert
		for id, r := range prev.Rates {
			sid, err := strconv.ParseUint(id, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: previous.rates key %q: %w", a.spec.Name, id, err)
			}
			out = append(out, storeLimitRevert(sid, prm.Type, prm.Rate, r, d))
		}
		return out, nil
	}
	return nil, nil
}

func storeLimitRevert(id uint64, typ string, set, old float64, d time.Duration) action.Revert {
	return action.Revert{ActionType: ActionSetStoreLimit, Params: jsonBody(map[string]any{"store_id": id, "type": typ, "rate": old}),
		After: d, Expect: jsonBody(map[string]any{"rate": set}), Restore: jsonBody(map[string]any{"rate": old})}
}

// RevertState implements action.RevertTarget for the revert actions:
// remove_evict_leader reads {"evicting": bool} for the store (from the
// evict-leader scheduler's config and legacy per-store schedulers),
// set_store_limit {"rate": R} of the store and type, set_all_stores_limit
// {"rates": {store id: R}} of every store GET /pd/api/v1/stores/limit
// lists.
func (a *pdAction) RevertState(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	switch a.spec.Name {
	case ActionRemoveEvictLeader:
		var prm storeParams
		if err := json.Unmarshal(raw, &prm); err != nil {
			return nil, err
		}
		set, err := evictLeaderSet(ctx, a.c)
		if err != nil {
			return nil, err
		}
		return jsonBody(map[string]any{"evicting": set[prm.StoreID]}), nil
	case ActionSetStoreLimit, ActionSetAllStoresLimit:
		var prm storeLimitParamsT
		if err := json.Unmarshal(raw, &prm); err != nil {
			return nil, err
		}
		limits, err := a.c.StoreLimits(ctx)
		if err != nil {
			return nil, err
		}
		if a.spec.Name == ActionSetAllStoresLimit {
			rates := map[string]float64{}
			for id, l := range limits {
				rates[strconv.FormatUint(id, 10)] = limitOf(l, prm.Type)
			}
			return jsonBody(map[string]any{"rates": rates}), nil
		}
		l, ok := limits[prm.StoreID]
		if !ok {
			return nil, fmt.Errorf("store %d missing from GET /pd/api/v1/stores/limit", prm.StoreID)
		}
		return jsonBody(map[string]any{"rate": limitOf(l, prm.Type)}), nil
	}
	return nil, fmt.Errorf("%s is not a revert action", a.spec.Name)
}

var (
	_ action.Temporary    = (*pdAction)(nil)
	_ action.RevertTarget = (*pdAction)(nil)
)
