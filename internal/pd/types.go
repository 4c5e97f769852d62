// Package pd is a typed client for PD's HTTP API (/pd/api/v1), the only way
// the operator reads and changes a TiKV cluster.
//
// The types follow what PD renders (PD v8.1, commit 7179657d129b,
// pkg/response/store.go and pkg/response/region.go) and accept older shapes
// down to PD 2.x: zero values omitted, sizes as human strings ("17 GiB",
// "1.953TiB"), the deprecated numeric store state omitted for Up, and a
// region leader object without a store id meaning "no leader".
package pd

import (
	"time"
)

// Store state names as PD renders them in state_name. Disconnected and Down
// are derived from the last heartbeat; the persisted state is still Up.
const (
	StateUp           = "Up"
	StateDisconnected = "Disconnected"
	StateDown         = "Down"
	StateOffline      = "Offline"
	StateTombstone    = "Tombstone"
)

// Node states (metapb.NodeState), rendered as an int omitted when 0.
const (
	NodePreparing = 0
	NodeServing   = 1
	NodeRemoving  = 2
	NodeRemoved   = 3
)

// Label is a store label (metapb.StoreLabel).
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// StoreMeta is the "store" half of GET /pd/api/v1/stores entries
// (metapb.Store plus state_name).
type StoreMeta struct {
	ID            uint64  `json:"id"`
	Address       string  `json:"address"`
	State         int     `json:"state,omitempty"` // deprecated: 0 Up (omitted), 1 Offline, 2 Tombstone
	Labels        []Label `json:"labels,omitempty"`
	Version       string  `json:"version,omitempty"`
	PeerAddress   string  `json:"peer_address,omitempty"`
	StatusAddress string  `json:"status_address,omitempty"`
	GitHash       string  `json:"git_hash,omitempty"`
	// StartTimestamp is the store process start, unix seconds.
	StartTimestamp int64  `json:"start_timestamp,omitempty"`
	DeployPath     string `json:"deploy_path,omitempty"`
	// LastHeartbeat is the last store heartbeat, unix nanoseconds.
	LastHeartbeat       int64 `json:"last_heartbeat,omitempty"`
	PhysicallyDestroyed bool  `json:"physically_destroyed,omitempty"`
	// NodeState is 0 Preparing (omitted), 1 Serving, 2 Removing, 3 Removed
	// (PD >= 5.x; absent before).
	NodeState int `json:"node_state,omitempty"`
	// StateName is Up, Disconnected, Down, Offline or Tombstone.
	StateName string `json:"state_name"`
}

// SlowTrend is PD's slow-trend statistics of a store (PD >= 6.x).
type SlowTrend struct {
	CauseValue  float64 `json:"cause_value"`
	CauseRate   float64 `json:"cause_rate"`
	ResultValue float64 `json:"result_value"`
	ResultRate  float64 `json:"result_rate"`
}

// StoreStatus is the "status" half of a store entry. Sizes are bytes
// (parsed from PD's strings, 4 significant digits); leader_size and
// region_size are MiB as PD reports them.
type StoreStatus struct {
	Capacity  ByteSize `json:"capacity"`
	Available ByteSize `json:"available"`
	UsedSize  ByteSize `json:"used_size"`

	LeaderCount  int     `json:"leader_count"`
	LeaderWeight float64 `json:"leader_weight"`
	LeaderScore  float64 `json:"leader_score"`
	LeaderSize   int64   `json:"leader_size"` // MiB
	RegionCount  int     `json:"region_count"`
	RegionWeight float64 `json:"region_weight"`
	RegionScore  float64 `json:"region_score"`
	RegionSize   int64   `json:"region_size"` // MiB

	LearnerCount     int `json:"learner_count,omitempty"`
	WitnessCount     int `json:"witness_count,omitempty"`
	PendingPeerCount int `json:"pending_peer_count,omitempty"` // PD >= 8.5

	// SlowScore is TiKV's disk slow score, 1..100; 0 means not reported.
	SlowScore          uint64     `json:"slow_score,omitempty"`
	SlowTrend          *SlowTrend `json:"slow_trend,omitempty"`
	SendingSnapCount   int        `json:"sending_snap_count,omitempty"`
	ReceivingSnapCount int        `json:"receiving_snap_count,omitempty"`
	IsBusy             bool       `json:"is_busy,omitempty"`

	StartTS         time.Time `json:"start_ts"`
	LastHeartbeatTS time.Time `json:"last_heartbeat_ts"`
	Uptime          Duration  `json:"uptime"`
}

// StoreInfo is one entry of GET /pd/api/v1/stores, or GET /store/{id}.
type StoreInfo struct {
	Store  StoreMeta   `json:"store"`
	Status StoreStatus `json:"status"`
}

// StoresInfo is the body of GET /pd/api/v1/stores.
type StoresInfo struct {
	Count  int         `json:"count"`
	Stores []StoreInfo `json:"stores"`
}

// Label returns the value of the store label key, or "".
func (s *StoreInfo) Label(key string) string {
	for _, l := range s.Store.Labels {
		if l.Key == key {
			return l.Value
		}
	}
	return ""
}

// IsTiFlash reports whether the store is a TiFlash store (label
// engine=tiflash); TiFlash stores are excluded from TiKV replica and
// balance arithmetic.
func (s *StoreInfo) IsTiFlash() bool { return s.Label("engine") == "tiflash" }

// Epoch is a region epoch (metapb.RegionEpoch).
type Epoch struct {
	ConfVer uint64 `json:"conf_ver"`
	Version uint64 `json:"version"`
}

// Peer is a region peer. RoleName is Voter, Learner, IncomingVoter or
// DemotingVoter (PD >= 4.x; absent before, where IsLearner is the only
// hint).
type Peer struct {
	ID        uint64 `json:"id"`
	StoreID   uint64 `json:"store_id"`
	Role      int    `json:"role,omitempty"`
	RoleName  string `json:"role_name,omitempty"`
	IsLearner bool   `json:"is_learner,omitempty"`
	IsWitness bool   `json:"is_witness,omitempty"`
}

// IsVoter reports whether the peer votes (Voter, IncomingVoter or
// DemotingVoter).
func (p Peer) IsVoter() bool {
	if p.IsLearner || p.RoleName == "Learner" || p.Role == 1 { // metapb.PeerRole_Learner
		return false
	}
	return true
}

// DownPeer is a peer the region leader reports as down.
type DownPeer struct {
	Peer        Peer   `json:"peer"`
	DownSeconds uint64 `json:"down_seconds"`
}

// Region is GET /pd/api/v1/region/id/{id} and an entry of RegionsInfo.
// StartKey and EndKey are uppercase hex (empty = unbounded). A region
// without a leader has Leader.StoreID == 0.
type Region struct {
	ID              uint64     `json:"id"`
	StartKey        string     `json:"start_key"`
	EndKey          string     `json:"end_key"`
	Epoch           Epoch      `json:"epoch"`
	Peers           []Peer     `json:"peers"`
	Leader          Peer       `json:"leader"`
	DownPeers       []DownPeer `json:"down_peers,omitempty"`
	PendingPeers    []Peer     `json:"pending_peers,omitempty"`
	CPUUsage        uint64     `json:"cpu_usage,omitempty"`
	WrittenBytes    uint64     `json:"written_bytes"`
	ReadBytes       uint64     `json:"read_bytes"`
	WrittenKeys     uint64     `json:"written_keys"`
	ReadKeys        uint64     `json:"read_keys"`
	ApproximateSize int64      `json:"approximate_size"` // MiB
	ApproximateKeys int64      `json:"approximate_keys"`
}

// HasLeader reports whether PD knows the region's leader.
func (r *Region) HasLeader() bool { return r.Leader.StoreID != 0 }

// PeerOn returns the region's peer on store id, if any.
func (r *Region) PeerOn(storeID uint64) (Peer, bool) {
	for _, p := range r.Peers {
		if p.StoreID == storeID {
			return p, true
		}
	}
	return Peer{}, false
}

// RegionsInfo is the body of every region list endpoint.
type RegionsInfo struct {
	Count   int      `json:"count"`
	Regions []Region `json:"regions"`
}
