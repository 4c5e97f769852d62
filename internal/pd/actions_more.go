package pd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Routes used by the catalog's actions (PD v8.1 server/api/router.go).
const (
	routeLabelProperty     = apiPrefix + "/config/label-property"
	routePlacementRules    = apiPrefix + "/config/rules"
	routeStoresLimit       = apiPrefix + "/stores/limit"
	routeStoreLimit        = apiPrefix + "/store/{id}/limit"
	routeRemoveTombstone   = apiPrefix + "/stores/remove-tombstone"
	routeRegionSiblings    = apiPrefix + "/regions/sibling/{id}"
	routeSchedulerConfig   = apiPrefix + "/scheduler-config/{name}/list"
	routeSchedulerConfigup = apiPrefix + "/scheduler-config/{name}/config"
)

// ScheduleConfigRaw returns GET /pd/api/v1/config/schedule as raw JSON
// members keyed by PD's key ("leader-schedule-limit", "low-space-ratio",
// ...), so that a caller can tell a missing key from a zero value. PD
// answering null yields an empty map, not an error.
func (c *Client) ScheduleConfigRaw(ctx context.Context) (map[string]json.RawMessage, error) {
	return c.rawObject(ctx, routeScheduleConfig, routeScheduleConfig)
}

// ReplicationConfigRaw returns GET /pd/api/v1/config/replicate as raw JSON
// members ("max-replicas", "location-labels", "isolation-level",
// "enable-placement-rules"); null yields an empty map.
func (c *Client) ReplicationConfigRaw(ctx context.Context) (map[string]json.RawMessage, error) {
	return c.rawObject(ctx, routeReplicateConfig, routeReplicateConfig)
}

func (c *Client) rawObject(ctx context.Context, route, path string) (map[string]json.RawMessage, error) {
	var out map[string]json.RawMessage
	if err := c.get(ctx, route, path, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string]json.RawMessage{}
	}
	return out, nil
}

// LabelProperty returns GET /pd/api/v1/config/label-property: label
// properties by type, e.g. {"reject-leader": [{"key":"zone","value":"z1"}]}
// (PD v8.1 server/config LabelPropertyConfig). A store carrying one of the
// "reject-leader" labels never holds leaders.
func (c *Client) LabelProperty(ctx context.Context) (map[string][]Label, error) {
	var out map[string][]Label
	if err := c.get(ctx, routeLabelProperty, routeLabelProperty, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string][]Label{}
	}
	return out, nil
}

// LabelConstraint is one label constraint of a placement rule; Op is in,
// notIn, exists or notExists.
type LabelConstraint struct {
	Key    string   `json:"key"`
	Op     string   `json:"op"`
	Values []string `json:"values,omitempty"`
}

// PlacementRule is one entry of GET /pd/api/v1/config/rules (PD v8.1
// pkg/schedule/placement/rule.go). Role is voter, leader, follower or
// learner; StartKey and EndKey are hex.
type PlacementRule struct {
	GroupID          string            `json:"group_id"`
	ID               string            `json:"id"`
	StartKey         string            `json:"start_key"`
	EndKey           string            `json:"end_key"`
	Role             string            `json:"role"`
	IsWitness        bool              `json:"is_witness,omitempty"`
	Count            int               `json:"count"`
	LabelConstraints []LabelConstraint `json:"label_constraints,omitempty"`
	LocationLabels   []string          `json:"location_labels,omitempty"`
	IsolationLevel   string            `json:"isolation_level,omitempty"`
}

// PlacementRules returns every placement rule (GET /pd/api/v1/config/rules).
// PD answers an error when placement rules are disabled.
func (c *Client) PlacementRules(ctx context.Context) ([]PlacementRule, error) {
	var out []PlacementRule
	if err := c.get(ctx, routePlacementRules, routePlacementRules, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// PausedScheduler is one entry of GET
// /pd/api/v1/schedulers?status=paused&timestamp=true (PD v8.1
// pkg/schedule/handler/handler.go:813-883): times are whole seconds.
type PausedScheduler struct {
	Name     string    `json:"name"`
	PausedAt time.Time `json:"paused_at"`
	ResumeAt time.Time `json:"resume_at"`
}

// PausedSchedulerTimes returns the paused schedulers with when they were
// paused and when PD resumes them by itself.
func (c *Client) PausedSchedulerTimes(ctx context.Context) ([]PausedScheduler, error) {
	var out []PausedScheduler
	if err := c.get(ctx, routeSchedulers, routeSchedulers+"?status=paused&timestamp=true", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DisabledSchedulers returns the names of disabled default schedulers (GET
// /pd/api/v1/schedulers?status=disabled; PD >= 7.x, empty before).
func (c *Client) DisabledSchedulers(ctx context.Context) ([]string, error) {
	var out []string
	if err := c.get(ctx, routeSchedulers, routeSchedulers+"?status=disabled", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// PauseScheduler pauses the scheduler name for delaySeconds (POST
// /pd/api/v1/schedulers/{name} {"delay": N}); 0 resumes it (PD v8.1
// server/api/scheduler.go:282-299). PD answers 500 "scheduler not found"
// for a scheduler it does not run.
func (c *Client) PauseScheduler(ctx context.Context, name string, delaySeconds int64) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("pd: pause scheduler: empty name")
	}
	if delaySeconds < 0 {
		return fmt.Errorf("pd: pause scheduler: negative delay %d", delaySeconds)
	}
	path := routeSchedulers + "/" + url.PathEscape(name)
	_, err := c.do(ctx, http.MethodPost, routeSchedulerByName, path, map[string]any{"delay": delaySeconds}, nil)
	return err
}

// StoreLimit is one store's entry of GET /pd/api/v1/stores/limit, in
// operators per minute.
type StoreLimit struct {
	AddPeer    float64 `json:"add-peer"`
	RemovePeer float64 `json:"remove-peer"`
}

// StoreLimits returns every non-Tombstone store's add-peer and remove-peer
// rate (GET /pd/api/v1/stores/limit; PD v8.5 answers 400 when
// store-limit-version is not v1).
func (c *Client) StoreLimits(ctx context.Context) (map[uint64]StoreLimit, error) {
	var raw map[string]StoreLimit
	if err := c.get(ctx, routeStoresLimit, routeStoresLimit, &raw); err != nil {
		return nil, err
	}
	out := make(map[uint64]StoreLimit, len(raw))
	for k, v := range raw {
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return nil, &DecodeError{Method: http.MethodGet, Path: routeStoresLimit, Err: fmt.Errorf("store id %q: %w", k, err)}
		}
		out[id] = v
	}
	return out, nil
}

// SetStoreLimit sets one store's limit (POST /pd/api/v1/store/{id}/limit
// {"rate": r, "type": "add-peer"|"remove-peer"}); rate is operators per
// minute and must be > 0.
func (c *Client) SetStoreLimit(ctx context.Context, id uint64, typ string, rate float64) error {
	if typ != "add-peer" && typ != "remove-peer" {
		return fmt.Errorf("pd: store limit type %q (want add-peer or remove-peer)", typ)
	}
	if !(rate > 0) {
		return fmt.Errorf("pd: store limit rate %v must be > 0", rate)
	}
	path := storePath(id) + "/limit"
	_, err := c.do(ctx, http.MethodPost, routeStoreLimit, path, map[string]any{"rate": rate, "type": typ}, nil)
	return err
}

// SetAllStoresLimit sets every store's limit (POST /pd/api/v1/stores/limit
// {"rate": r, "type": typ}).
func (c *Client) SetAllStoresLimit(ctx context.Context, typ string, rate float64) error {
	if typ != "add-peer" && typ != "remove-peer" {
		return fmt.Errorf("pd: store limit type %q (want add-peer or remove-peer)", typ)
	}
	if !(rate > 0) {
		return fmt.Errorf("pd: store limit rate %v must be > 0", rate)
	}
	_, err := c.do(ctx, http.MethodPost, routeStoresLimit, routeStoresLimit, map[string]any{"rate": rate, "type": typ}, nil)
	return err
}

// RemoveTombstones deletes the records of Tombstone stores holding no
// region (DELETE /pd/api/v1/stores/remove-tombstone; PD v8.1
// server/cluster/cluster.go:1988-2024 answers an error naming stores it
// skipped).
func (c *Client) RemoveTombstones(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodDelete, routeRemoveTombstone, routeRemoveTombstone, nil, nil)
	return err
}

// RegionSiblings returns the regions adjacent to region id, left first
// (GET /pd/api/v1/regions/sibling/{id}; one entry at either end of the key
// space).
func (c *Client) RegionSiblings(ctx context.Context, id uint64) ([]Region, error) {
	path := apiPrefix + "/regions/sibling/" + strconv.FormatUint(id, 10)
	var out RegionsInfo
	if err := c.get(ctx, routeRegionSiblings, path, &out); err != nil {
		return nil, err
	}
	return out.Regions, nil
}

// SchedulerConfig returns a scheduler's configuration as raw JSON members
// (GET /pd/api/v1/scheduler-config/{name}/list), e.g. for
// balance-hot-region-scheduler "write-leader-priorities": ["query","byte"].
func (c *Client) SchedulerConfig(ctx context.Context, name string) (map[string]json.RawMessage, error) {
	if strings.TrimSpace(name) == "" {
		return nil, errors.New("pd: scheduler config: empty name")
	}
	return c.rawObject(ctx, routeSchedulerConfig, apiPrefix+"/scheduler-config/"+url.PathEscape(name)+"/list")
}

// SetSchedulerConfig sends POST /pd/api/v1/scheduler-config/{name}/config
// with items; PD validates the whole config and answers 400 on an invalid
// value (PD v8.1 pkg/schedule/schedulers/hot_region_config.go:429).
func (c *Client) SetSchedulerConfig(ctx context.Context, name string, items map[string]any) error {
	if strings.TrimSpace(name) == "" || len(items) == 0 {
		return errors.New("pd: set scheduler config: empty name or no item")
	}
	_, err := c.do(ctx, http.MethodPost, routeSchedulerConfigup, apiPrefix+"/scheduler-config/"+url.PathEscape(name)+"/config", items, nil)
	return err
}
