package pd

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ScheduleConfig is the part of GET /pd/api/v1/config/schedule the operator
// uses (PD v8.1 pkg/schedule/config/config.go). Durations are Go duration
// strings.
type ScheduleConfig struct {
	LeaderScheduleLimit    uint64   `json:"leader-schedule-limit"`
	RegionScheduleLimit    uint64   `json:"region-schedule-limit"`
	ReplicaScheduleLimit   uint64   `json:"replica-schedule-limit"`
	MergeScheduleLimit     uint64   `json:"merge-schedule-limit"`
	HotRegionScheduleLimit uint64   `json:"hot-region-schedule-limit"`
	MaxStoreDownTime       Duration `json:"max-store-down-time"`
	// LowSpaceRatio: a store is low on space when available/capacity <
	// 1 - LowSpaceRatio. Default 0.8.
	LowSpaceRatio float64 `json:"low-space-ratio"`
	// HighSpaceRatio must stay below LowSpaceRatio. Default 0.7.
	HighSpaceRatio     float64 `json:"high-space-ratio"`
	MaxMergeRegionSize uint64  `json:"max-merge-region-size"` // MiB
	MaxMergeRegionKeys uint64  `json:"max-merge-region-keys"`
	// HaltScheduling is "true" or "false" (PD renders ,string bools).
	HaltScheduling string `json:"halt-scheduling,omitempty"`
}

// ReplicationConfig is GET /pd/api/v1/config/replicate.
type ReplicationConfig struct {
	MaxReplicas          uint64 `json:"max-replicas"`
	LocationLabels       string `json:"location-labels"`
	EnablePlacementRules string `json:"enable-placement-rules"`
	// IsolationLevel is the location label replicas must be isolated at
	// ("zone"; empty = none). PD >= 4.0; absent before.
	IsolationLevel string `json:"isolation-level,omitempty"`
}

// HotPeerStat is one hot peer in GET /pd/api/v1/hotspot/regions/{write,read}.
type HotPeerStat struct {
	StoreID   uint64  `json:"store_id"`
	RegionID  uint64  `json:"region_id"`
	IsLeader  bool    `json:"is_leader"`
	IsLearner bool    `json:"is_learner"`
	HotDegree int     `json:"hot_degree"`
	ByteRate  float64 `json:"flow_bytes"` // bytes/s
	KeyRate   float64 `json:"flow_keys"`  // keys/s
	QueryRate float64 `json:"flow_query"`
	AntiCount int     `json:"anti_count"`
}

// HotPeersStat is the per-store summary in a hotspot answer.
type HotPeersStat struct {
	StoreByteRate  float64       `json:"store_bytes"`
	StoreKeyRate   float64       `json:"store_keys"`
	StoreQueryRate float64       `json:"store_query"`
	TotalBytesRate float64       `json:"total_flow_bytes"`
	TotalKeysRate  float64       `json:"total_flow_keys"`
	Count          int           `json:"regions_count"`
	Stats          []HotPeerStat `json:"statistics"`
}

// HotRegions is the body of GET /pd/api/v1/hotspot/regions/{write,read},
// keyed by store id (as a decimal string).
type HotRegions struct {
	AsPeer   map[string]HotPeersStat `json:"as_peer"`
	AsLeader map[string]HotPeersStat `json:"as_leader"`
}

// HotStores is GET /pd/api/v1/hotspot/stores: per-store rates keyed by store
// id (decimal string); bytes/s, keys/s, queries/s.
type HotStores struct {
	BytesWriteRate map[string]float64 `json:"bytes-write-rate"`
	BytesReadRate  map[string]float64 `json:"bytes-read-rate"`
	KeysWriteRate  map[string]float64 `json:"keys-write-rate"`
	KeysReadRate   map[string]float64 `json:"keys-read-rate"`
	QueryWriteRate map[string]float64 `json:"query-write-rate"`
	QueryReadRate  map[string]float64 `json:"query-read-rate"`
}

// MemberHealth is one entry of GET /pd/api/v1/health.
type MemberHealth struct {
	Name       string   `json:"name"`
	MemberID   uint64   `json:"member_id"`
	ClientURLs []string `json:"client_urls"`
	Health     bool     `json:"health"`
}

// Member is a PD member (pdpb.Member).
type Member struct {
	Name           string   `json:"name"`
	MemberID       uint64   `json:"member_id"`
	PeerURLs       []string `json:"peer_urls"`
	ClientURLs     []string `json:"client_urls"`
	LeaderPriority int      `json:"leader_priority,omitempty"`
	BinaryVersion  string   `json:"binary_version,omitempty"`
	GitHash        string   `json:"git_hash,omitempty"`
}

// Members is GET /pd/api/v1/members. Leader is nil when PD has none.
type Members struct {
	Members    []Member `json:"members"`
	Leader     *Member  `json:"leader,omitempty"`
	EtcdLeader *Member  `json:"etcd_leader,omitempty"`
}

// StoreProgress is GET /pd/api/v1/stores/progress?id=N.
type StoreProgress struct {
	Action       string  `json:"action"`
	StoreID      uint64  `json:"store_id"`
	Progress     float64 `json:"progress"`      // 0..1
	CurrentSpeed float64 `json:"current_speed"` // MiB/s
	LeftSeconds  float64 `json:"left_seconds"`
}

// Operator is one entry of GET /pd/api/v1/operators?object.
type Operator struct {
	Desc     string `json:"desc"`
	Brief    string `json:"brief"`
	RegionID uint64 `json:"region_id"`
	Epoch    Epoch  `json:"region_epoch"`
	Kind     int    `json:"kind"`
	Timeout  string `json:"timeout"`
	Status   int    `json:"status"` // 0 CREATED,1 STARTED,2 SUCCESS,3 CANCELED,4 REPLACED,5 EXPIRED,6 TIMEOUT
}

// ClusterStatus is GET /pd/api/v1/cluster/status (PD v8.1
// server/cluster/cluster.go:175). RaftBootstrapTime is the zero time before
// the first TiKV store bootstraps the cluster.
type ClusterStatus struct {
	RaftBootstrapTime time.Time `json:"raft_bootstrap_time"`
	IsInitialized     bool      `json:"is_initialized"`
	ReplicationStatus string    `json:"replication_status"`
}

// OperatorStatus is the status of a region's operator as GET
// /pd/api/v1/operators/{region_id} renders it (pdpb.OperatorStatus names).
type OperatorStatus string

// Operator statuses. PD renders a created but not yet started operator as
// the invalid enum value "5"; ParseRegionOperator maps it to
// OperatorCreated. PD maps its EXPIRED status to TIMEOUT.
const (
	OperatorCreated OperatorStatus = "CREATED"
	OperatorRunning OperatorStatus = "RUNNING"
	OperatorSuccess OperatorStatus = "SUCCESS"
	OperatorTimeout OperatorStatus = "TIMEOUT"
	OperatorCancel  OperatorStatus = "CANCEL"
	OperatorReplace OperatorStatus = "REPLACE"
)

// Finished reports whether the status is final (SUCCESS, TIMEOUT, CANCEL or
// REPLACE).
func (s OperatorStatus) Finished() bool {
	switch s {
	case OperatorSuccess, OperatorTimeout, OperatorCancel, OperatorReplace:
		return true
	}
	return false
}

// RegionOperator is the answer of GET /pd/api/v1/operators/{region_id}: a
// JSON string "status: RUNNING, operator: <description>" (PD v8.1
// pkg/schedule/operator/operator_controller.go:899).
type RegionOperator struct {
	Status OperatorStatus `json:"status"`
	// Desc is PD's rendering of the operator, e.g. `"transfer-leader
	// {transfer leader: store 1 to 2} (kind:admin,leader, region:2(5, 3),
	// ...)"`.
	Desc string `json:"desc"`
}

// ParseRegionOperator parses the body of GET /pd/api/v1/operators/{id}. It
// accepts the JSON string PD sends, and the same text unquoted; anything
// without a "status: X" prefix is an error.
func ParseRegionOperator(body []byte) (*RegionOperator, error) {
	text := strings.TrimSpace(string(body))
	var s string
	if err := json.Unmarshal([]byte(text), &s); err == nil {
		text = s
	} else if strings.HasPrefix(text, `"`) {
		return nil, fmt.Errorf("operator status: %w", err)
	}
	rest, ok := strings.CutPrefix(text, "status: ")
	if !ok {
		return nil, fmt.Errorf("operator status: unexpected text %q", truncate(text, 120))
	}
	status, desc, _ := strings.Cut(rest, ",")
	status = strings.TrimSpace(status)
	desc = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(desc), "operator:"))
	op := &RegionOperator{Status: OperatorStatus(status), Desc: strings.TrimSpace(desc)}
	switch op.Status {
	case OperatorRunning, OperatorSuccess, OperatorTimeout, OperatorCancel, OperatorReplace:
	case "5":
		op.Status = OperatorCreated
	default:
		return nil, fmt.Errorf("operator status: unknown status %q", status)
	}
	return op, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
