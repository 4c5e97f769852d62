package tikv

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// StoreHeartbeatInterval is TiKV's default store heartbeat interval:
// raftstore.pd-store-heartbeat-tick-interval = 10s (TiKV v8.5.7
// components/raftstore/src/store/config.rs:562; the region heartbeat,
// pd-heartbeat-tick-interval, is 60s). A target store must have sent a
// heartbeat within MaxHeartbeatIntervals of them.
const StoreHeartbeatInterval = 10 * time.Second

// MaxHeartbeatIntervals is how many store-heartbeat intervals a target
// store's last heartbeat may be old: two, i.e. 20 s at TiKV's default,
// which is also when PD itself starts showing the store Disconnected
// (PD v8.1 pkg/core/store.go storeDisconnectDuration).
const MaxHeartbeatIntervals = 2

// Endpoints named in fail-closed check details.
const (
	endpointSchedule  = "GET /pd/api/v1/config/schedule"
	endpointReplicate = "GET /pd/api/v1/config/replicate"
	endpointStores    = "GET /pd/api/v1/stores"
)

// knownStates are the state_name values PD renders (PD v8.1
// pkg/response/store.go:136-142); any other value is an unknown state and
// every check that needs the state refuses.
var knownStates = map[string]bool{
	pd.StateUp: true, pd.StateDisconnected: true, pd.StateDown: true, pd.StateOffline: true, pd.StateTombstone: true,
}

// knownState reports whether PD's state_name is one of the five it
// renders.
func knownState(s string) bool { return knownStates[s] }

// configView is one PD config section as raw JSON members, read so that a
// missing, null or unparsable key is told apart from a zero value.
type configView struct {
	endpoint string
	m        map[string]json.RawMessage
}

func (v configView) raw(key string) (json.RawMessage, error) {
	r, ok := v.m[key]
	if !ok || strings.TrimSpace(string(r)) == "null" {
		return nil, fmt.Errorf("%s missing from %s", key, v.endpoint)
	}
	return r, nil
}

// uint returns a non-negative integer key.
func (v configView) uint(key string) (uint64, error) {
	r, err := v.raw(key)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(r)), 10, 64)
	if err != nil {
		var f float64
		if json.Unmarshal(r, &f) == nil && f >= 0 && f == float64(uint64(f)) {
			return uint64(f), nil
		}
		return 0, fmt.Errorf("%s in %s is not a non-negative integer: %.40s", key, v.endpoint, string(r))
	}
	return n, nil
}

// positive returns an integer key that must be at least 1.
func (v configView) positive(key string) (uint64, error) {
	n, err := v.uint(key)
	if err == nil && n == 0 {
		return 0, fmt.Errorf("%s is 0 in %s", key, v.endpoint)
	}
	return n, err
}

// ratio returns a number key that must lie in (0, 1].
func (v configView) ratio(key string) (float64, error) {
	r, err := v.raw(key)
	if err != nil {
		return 0, err
	}
	var f float64
	if err := json.Unmarshal(r, &f); err != nil {
		return 0, fmt.Errorf("%s in %s is not a number: %.40s", key, v.endpoint, string(r))
	}
	if !(f > 0 && f <= 1) {
		return 0, fmt.Errorf("%s is %g in %s (want 0 < ratio <= 1)", key, f, v.endpoint)
	}
	return f, nil
}

// str returns a string key; missing is "" with ok=false (not an error:
// optional keys such as isolation-level are absent on old PDs).
func (v configView) str(key string) (string, bool) {
	r, ok := v.m[key]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(r, &s) != nil {
		return "", false
	}
	return s, true
}

func scheduleView(ctx context.Context, c *pd.Client) (configView, error) {
	m, err := c.ScheduleConfigRaw(ctx)
	return configView{endpoint: endpointSchedule, m: m}, err
}

func replicateView(ctx context.Context, c *pd.Client) (configView, error) {
	m, err := c.ReplicationConfigRaw(ctx)
	return configView{endpoint: endpointReplicate, m: m}, err
}

// replication is what the safety checks read from GET
// /pd/api/v1/config/replicate.
type replication struct {
	maxReplicas    uint64
	locationLabels []string
	isolationLevel string
}

// loadReplication reads the replicate config and records the
// max_replicas_known check: max-replicas missing, null, 0 or unparsable
// refuses (ok=false) and names the input.
func loadReplication(ctx context.Context, c *pd.Client, p *plan) (replication, bool, error) {
	v, err := replicateView(ctx, c)
	if err != nil {
		return replication{}, false, err
	}
	var r replication
	n, err := v.positive("max-replicas")
	if !p.check("max_replicas_known", err == nil, "%s", errText(err, fmt.Sprintf("max-replicas is %d", n))) {
		return r, false, nil
	}
	r.maxReplicas = n
	if s, ok := v.str("location-labels"); ok {
		for _, l := range strings.Split(s, ",") {
			if l = strings.TrimSpace(l); l != "" {
				r.locationLabels = append(r.locationLabels, l)
			}
		}
	}
	r.isolationLevel, _ = v.str("isolation-level")
	return r, true, nil
}

func errText(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// heartbeatAge returns how old store s's last heartbeat is at PD's time
// now, and whether it is known. PD's Date header has one-second resolution,
// so now is taken at the end of its second (the age is never
// under-estimated); a zero now falls back to the local clock.
func heartbeatAge(s *pd.StoreInfo, now time.Time) (time.Duration, bool) {
	if now.IsZero() {
		now = time.Now()
	} else {
		now = now.Add(time.Second)
	}
	var last time.Time
	switch {
	case s.Store.LastHeartbeat > 0:
		last = time.Unix(0, s.Store.LastHeartbeat)
	case !s.Status.LastHeartbeatTS.IsZero() && s.Status.LastHeartbeatTS.Unix() > 0:
		last = s.Status.LastHeartbeatTS
	default:
		return 0, false
	}
	age := now.Sub(last)
	if age < 0 {
		age = 0
	}
	return age, true
}

// checkHeartbeat records target_store_heartbeat: store s's last heartbeat
// must be younger than MaxHeartbeatIntervals store-heartbeat intervals at
// PD's time now. A missing last_heartbeat refuses.
func checkHeartbeat(p *plan, s *pd.StoreInfo, now time.Time, interval time.Duration) bool {
	maxAge := time.Duration(MaxHeartbeatIntervals) * interval
	age, ok := heartbeatAge(s, now)
	if !ok {
		return p.check("target_store_heartbeat", false, "store %d: last_heartbeat missing from %s", s.Store.ID, endpointStores)
	}
	return p.check("target_store_heartbeat", age < maxAge,
		"store %d last heartbeat %v ago (must be younger than %d store-heartbeat intervals = %v; state_name %s)",
		s.Store.ID, age.Round(100*time.Millisecond), MaxHeartbeatIntervals, maxAge, s.Store.StateName)
}

type cfgKey struct{}

// withConfig makes the catalog's configuration visible to plan functions.
func withConfig(ctx context.Context, cfg *catalogConfig) context.Context {
	return context.WithValue(ctx, cfgKey{}, cfg)
}

// heartbeatInterval is the store heartbeat interval the catalog assumes
// (WithStoreHeartbeatInterval), StoreHeartbeatInterval by default.
func heartbeatInterval(ctx context.Context) time.Duration {
	if cfg, ok := ctx.Value(cfgKey{}).(*catalogConfig); ok && cfg.heartbeatInterval > 0 {
		return cfg.heartbeatInterval
	}
	return StoreHeartbeatInterval
}
