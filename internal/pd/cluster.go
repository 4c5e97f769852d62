package pd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ClusterStatus returns GET /pd/api/v1/cluster/status.
func (c *Client) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var out ClusterStatus
	if err := c.get(ctx, routeClusterStatus, routeClusterStatus, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health returns the health of every PD member (GET /pd/api/v1/health).
func (c *Client) Health(ctx context.Context) ([]MemberHealth, error) {
	var out []MemberHealth
	if err := c.get(ctx, routeHealth, routeHealth, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Members returns PD's members and leader (GET /pd/api/v1/members). PD
// answers 503 "no leader" while it has none; Members then fails over to the
// next endpoint, and returns the *APIError if none has a leader.
func (c *Client) Members(ctx context.Context) (*Members, error) {
	var out Members
	if err := c.get(ctx, routeMembers, routeMembers, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Leader returns the PD leader (GET /pd/api/v1/leader).
func (c *Client) Leader(ctx context.Context) (*Member, error) {
	var out Member
	if err := c.get(ctx, routeLeader, routeLeader, &out); err != nil {
		return nil, err
	}
	if out.Name == "" && out.MemberID == 0 {
		return nil, errors.New("pd: GET /pd/api/v1/leader: PD has no leader")
	}
	return &out, nil
}

// Version returns PD's version string (GET /pd/api/v1/version), e.g.
// "v8.1.0" (our test build answers "None").
func (c *Client) Version(ctx context.Context) (string, error) {
	var out struct {
		Version string `json:"version"`
	}
	if err := c.get(ctx, routeVersion, routeVersion, &out); err != nil {
		return "", err
	}
	return out.Version, nil
}

// Date returns PD's clock: the HTTP Date header of GET /pd/api/v1/version
// (one-second resolution). Comparing store heartbeats with PD's clock rather
// than the local one avoids clock skew. It fails when the header is absent
// or malformed.
func (c *Client) Date(ctx context.Context) (time.Time, error) {
	resp, err := c.do(ctx, http.MethodGet, routeVersion, routeVersion, nil, nil)
	if err != nil {
		return time.Time{}, err
	}
	return dateHeader(resp.header, routeVersion)
}

func dateHeader(h http.Header, path string) (time.Time, error) {
	v := h.Get("Date")
	if v == "" {
		return time.Time{}, &DecodeError{Method: http.MethodGet, Path: path, Err: errors.New("no Date header")}
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return time.Time{}, &DecodeError{Method: http.MethodGet, Path: path, Err: fmt.Errorf("date header %q: %w", v, err)}
	}
	return t, nil
}

// Config returns PD's whole configuration (GET /pd/api/v1/config) as a
// generic JSON map (numbers are float64).
func (c *Client) Config(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	if err := c.get(ctx, routeConfig, routeConfig, &out); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, &DecodeError{Method: http.MethodGet, Path: routeConfig, Err: errors.New("null config")}
	}
	return out, nil
}

// ScheduleConfig returns GET /pd/api/v1/config/schedule.
func (c *Client) ScheduleConfig(ctx context.Context) (*ScheduleConfig, error) {
	var out ScheduleConfig
	if err := c.get(ctx, routeScheduleConfig, routeScheduleConfig, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReplicationConfig returns GET /pd/api/v1/config/replicate (max-replicas,
// location-labels, placement rules).
func (c *Client) ReplicationConfig(ctx context.Context) (*ReplicationConfig, error) {
	var out ReplicationConfig
	if err := c.get(ctx, routeReplicateConfig, routeReplicateConfig, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetConfig sends POST /pd/api/v1/config with items as a flat JSON object
// ({"leader-schedule-limit": 4}), what pd-ctl config set does. PD rejects an
// unknown key with 400 "config item X not found" (unlike POST
// /config/schedule, which ignores it), so a typo cannot pass silently.
// Values must have PD's JSON types: numbers for limits and ratios, strings
// for durations ("30m") and booleans ("true").
func (c *Client) SetConfig(ctx context.Context, items map[string]any) error {
	if len(items) == 0 {
		return errors.New("pd: set config: no item given")
	}
	for k := range items {
		if strings.TrimSpace(k) == "" {
			return errors.New("pd: set config: empty key")
		}
	}
	_, err := c.do(ctx, http.MethodPost, routeConfig, routeConfig, items, nil)
	return err
}

// Operators returns the running operators (GET /pd/api/v1/operators?object).
func (c *Client) Operators(ctx context.Context) ([]Operator, error) {
	var out []Operator
	if err := c.get(ctx, routeOperators, routeOperators+"?object", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RegionOperator returns the running or recently finished operator of a
// region (GET /pd/api/v1/operators/{region_id}; finished operators are kept
// 10 minutes). It returns an error wrapping ErrOperatorNotFound when there
// is none (PD answers 500 "operator not found").
func (c *Client) RegionOperator(ctx context.Context, regionID uint64) (*RegionOperator, error) {
	path := routeOperators + "/" + strconv.FormatUint(regionID, 10)
	resp, err := c.do(ctx, http.MethodGet, routeOperatorRegion, path, nil, nil)
	if err != nil {
		return nil, err
	}
	op, err := ParseRegionOperator(resp.body)
	if err != nil {
		return nil, &DecodeError{Method: http.MethodGet, Path: path, Err: err}
	}
	return op, nil
}

// CreateOperator sends POST /pd/api/v1/operators with body, e.g.
// {"name":"transfer-leader","region_id":2,"to_store_id":5}. Ids must be JSON
// numbers. A nil error only means PD queued the operator; follow it with
// RegionOperator. PD answers 500 for any refusal (e.g. "region has no voter
// in store 5", "failed to add operator, maybe already have one").
func (c *Client) CreateOperator(ctx context.Context, body map[string]any) error {
	if name, _ := body["name"].(string); name == "" {
		return errors.New("pd: create operator: body has no \"name\"")
	}
	_, err := c.do(ctx, http.MethodPost, routeOperators, routeOperators, body, nil)
	return err
}

// DeleteOperator cancels the running operator of a region (DELETE
// /pd/api/v1/operators/{region_id}); an error wrapping ErrOperatorNotFound
// when it has none.
func (c *Client) DeleteOperator(ctx context.Context, regionID uint64) error {
	path := routeOperators + "/" + strconv.FormatUint(regionID, 10)
	_, err := c.do(ctx, http.MethodDelete, routeOperatorRegion, path, nil, nil)
	return err
}

// Schedulers returns the names of the enabled schedulers (GET
// /pd/api/v1/schedulers), e.g. "balance-leader-scheduler",
// "evict-leader-scheduler" (PD >= 4.0 lists it once; PD 3.x lists
// "evict-leader-scheduler-{store id}" per store).
func (c *Client) Schedulers(ctx context.Context) ([]string, error) {
	var out []string
	if err := c.get(ctx, routeSchedulers, routeSchedulers, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// PausedSchedulers returns the names of paused schedulers (GET
// /pd/api/v1/schedulers?status=paused).
func (c *Client) PausedSchedulers(ctx context.Context) ([]string, error) {
	var out []string
	if err := c.get(ctx, routeSchedulers, routeSchedulers+"?status=paused", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// EvictLeaderStores returns the store ids the evict-leader scheduler holds,
// sorted (GET /pd/api/v1/scheduler-config/evict-leader-scheduler/list,
// "store-id-ranges" keys). When the scheduler does not exist PD answers an
// error status; that is an empty list, not an error.
func (c *Client) EvictLeaderStores(ctx context.Context) ([]uint64, error) {
	var out struct {
		StoreIDRanges map[string]json.RawMessage `json:"store-id-ranges"`
	}
	err := c.get(ctx, routeEvictLeaderList, routeEvictLeaderList, &out)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status != http.StatusServiceUnavailable && !errors.Is(err, ErrNotBootstrapped) &&
		(apiErr.Status == http.StatusNotFound || strings.Contains(strings.ToLower(apiErr.Message), "not found")) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ids := make([]uint64, 0, len(out.StoreIDRanges))
	for k := range out.StoreIDRanges {
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return nil, &DecodeError{Method: http.MethodGet, Path: routeEvictLeaderList, Err: fmt.Errorf("store id %q: %w", k, err)}
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// AddScheduler sends POST /pd/api/v1/schedulers with body, e.g.
// {"name":"evict-leader-scheduler","store_id":4}. Adding a store to an
// existing evict-leader scheduler succeeds ("The scheduler has been applied
// to the store.").
func (c *Client) AddScheduler(ctx context.Context, body map[string]any) error {
	if name, _ := body["name"].(string); name == "" {
		return errors.New("pd: add scheduler: body has no \"name\"")
	}
	_, err := c.do(ctx, http.MethodPost, routeSchedulers, routeSchedulers, body, nil)
	return err
}

// RemoveScheduler sends DELETE /pd/api/v1/schedulers/{name}. For
// "evict-leader-scheduler-{id}" PD removes only that store from the
// evict-leader scheduler (and the scheduler with its last store).
func (c *Client) RemoveScheduler(ctx context.Context, name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("pd: remove scheduler: empty name")
	}
	path := routeSchedulers + "/" + url.PathEscape(name)
	_, err := c.do(ctx, http.MethodDelete, routeSchedulerByName, path, nil, nil)
	return err
}

// Checkers are the names POST /pd/api/v1/checker/{name} accepts (PD v8.1
// pkg/schedule/checker/checker_controller.go).
var Checkers = []string{"learner", "replica", "rule", "split", "merge", "joint-state"}

// PauseChecker pauses one of PD's checkers for d (POST
// /pd/api/v1/checker/{name} {"delay": seconds}); d = 0 resumes it. Tests
// use it to keep PD's replica and rule checkers from undoing a peer change;
// d is rounded down to whole seconds.
func (c *Client) PauseChecker(ctx context.Context, name string, d time.Duration) error {
	if !slices.Contains(Checkers, name) {
		return fmt.Errorf("pd: unknown checker %q (want one of %v)", name, Checkers)
	}
	if d < 0 {
		return fmt.Errorf("pd: negative checker pause %v", d)
	}
	body := map[string]any{"delay": int64(d / time.Second)}
	_, err := c.do(ctx, http.MethodPost, routeChecker, apiPrefix+"/checker/"+name, body, nil)
	return err
}
