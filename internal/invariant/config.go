package invariant

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Invariant names: stable identifiers used in ticket keys, metrics labels,
// Config.For and Config.Disabled.
const (
	NameStoreDisconnected     = "store_disconnected"
	NameStoreUnhealthy        = "store_unhealthy"
	NameStoreDown             = "store_down"
	NameStoreLowSpace         = "store_low_space"
	NameClusterSpaceUsed      = "cluster_space_used"
	NameStoreCapacitySuspect  = "store_capacity_suspect"
	NameStoreSlow             = "store_slow"
	NameLeaderImbalance       = "leader_imbalance"
	NameRegionImbalance       = "region_imbalance"
	NameStoreNoLeaders        = "store_no_leaders"
	NameRegionMissPeer        = "region_miss_peer"
	NameRegionDownPeer        = "region_down_peer"
	NameRegionPendingPeer     = "region_pending_peer"
	NameRegionOfflinePeer     = "region_offline_peer"
	NameRegionExtraPeer       = "region_extra_peer"
	NameRegionOversized       = "region_oversized"
	NameHotWriteStore         = "hot_write_store"
	NameStoreOfflineStuck     = "store_offline_stuck"
	NameUpStoresBelowReplicas = "up_stores_below_max_replicas"
	NameTombstonePileup       = "tombstone_pileup"
	NamePDUnhealthy           = "pd_unhealthy"
	NamePDNoLeader            = "pd_no_leader"
	// Judgement over time and PD's own work (issue 11 §2).
	NameRegionNoLeader           = "region_no_leader"
	NameRegionDownPeerUnrepaired = "region_down_peer_unrepaired"
	NameOperatorTimeouts         = "operator_timeouts"
	NameRegionPendingPeerStuck   = "region_pending_peer_stuck"
	NameStoreOfflineBlocked      = "store_offline_blocked"
	NameStoreDuplicateAddress    = "store_duplicate_address"
	NameStoreLeaderDrop          = "store_leader_drop"
	NameHostStoresFailing        = "host_stores_failing"
	// NamePDUnreachable is raised by the monitor itself when collecting a
	// snapshot fails; it is not an Invariant, but its pending duration is
	// configured like one (Config.ForOf).
	NamePDUnreachable = "pd_unreachable"
)

// Names returns every built-in invariant name, in evaluation order,
// followed by NamePDUnreachable.
func Names() []string {
	return []string{
		NameStoreDisconnected, NameStoreUnhealthy, NameStoreDown,
		NameStoreLowSpace, NameClusterSpaceUsed, NameStoreCapacitySuspect,
		NameStoreSlow,
		NameLeaderImbalance, NameRegionImbalance, NameStoreNoLeaders,
		NameRegionMissPeer, NameRegionDownPeer, NameRegionPendingPeer,
		NameRegionOfflinePeer, NameRegionExtraPeer, NameRegionOversized,
		NameHotWriteStore, NameHotWriteCPUImbalance,
		NameStoreOfflineStuck, NameUpStoresBelowReplicas, NameTombstonePileup,
		NamePDUnhealthy, NamePDNoLeader,
		NameRegionNoLeader, NameRegionDownPeerUnrepaired, NameOperatorTimeouts,
		NameRegionPendingPeerStuck, NameStoreOfflineBlocked, NameStoreDuplicateAddress,
		NameStoreLeaderDrop, NameHostStoresFailing,
		NameReplicationIsolationRisk,
		NamePDUnreachable,
	}
}

// Config holds every threshold of the built-in invariants. Start from
// DefaultConfig and override fields; fields documented "0 = default" fall
// back to their default when zero, every other zero is taken literally.
// TOML keys are kebab-case like PD's own configuration.
type Config struct {
	// DefaultFor is how long a violation stays pending before it fires,
	// for invariants without an entry in For. Default 1m, the `for:` of
	// PingCAP's PD and TiKV alert rules.
	DefaultFor time.Duration `toml:"default-for" json:"default-for"`
	// For overrides DefaultFor per invariant name (including
	// "pd_unreachable"). Default: store_offline_stuck 0 (it has its own
	// window, OfflineStuckAfter), pd_unreachable 30s.
	For map[string]time.Duration `toml:"for" json:"for,omitempty"`
	// Disabled lists invariant names Default leaves out.
	Disabled []string `toml:"disabled" json:"disabled,omitempty"`

	// UnhealthyAfter: a Disconnected store whose last heartbeat is older
	// than this is store_unhealthy instead of store_disconnected. Default
	// 10m (PD storeUnhealthyDuration, pkg/core/store.go). 0 = default.
	UnhealthyAfter time.Duration `toml:"unhealthy-after" json:"unhealthy-after"`

	// LowSpaceRatio overrides PD's schedule.low-space-ratio: a store is
	// low on space when available/capacity < 1 - LowSpaceRatio. 0 = use
	// PD's value from the snapshot (GET /config/schedule), or 0.8 if PD
	// reported none.
	LowSpaceRatio float64 `toml:"low-space-ratio" json:"low-space-ratio"`
	// LowSpaceMinRegionCount is PD's new-cluster exemption: a store with
	// fewer regions than this AND more than LowSpaceMinAvailableBytes free
	// is not low on space (PD InitClusterRegionThreshold = 100). 0 disables
	// the exemption (useful on small test clusters). Default 100.
	LowSpaceMinRegionCount int `toml:"low-space-min-region-count" json:"low-space-min-region-count"`
	// LowSpaceMinAvailableBytes is the available space, in bytes, above
	// which the exemption applies (PD initialMinSpace = 8 GiB). Default
	// 8 GiB.
	LowSpaceMinAvailableBytes uint64 `toml:"low-space-min-available-bytes" json:"low-space-min-available-bytes"`
	// ClusterSpaceUsedRatio: cluster_space_used fires when Σused_size /
	// Σcapacity over non-Tombstone stores exceeds it (PingCAP
	// TiKV_space_used_more_than_80%). Default 0.8. 0 = default.
	ClusterSpaceUsedRatio float64 `toml:"cluster-space-used-ratio" json:"cluster-space-used-ratio"`
	// CapacityMinMedianRatio: a store whose capacity is below this fraction
	// of the median capacity of the stores of its engine is suspect
	// (tikv/pd#9858, tikv/pd#6252). Default 0.01. 0 = default.
	CapacityMinMedianRatio float64 `toml:"capacity-min-median-ratio" json:"capacity-min-median-ratio"`

	// SlowScore: store_slow fires at slow_score >= SlowScore (PD IsSlow:
	// 80). Default 80. 0 = default.
	SlowScore uint64 `toml:"slow-score" json:"slow-score"`

	// Leader and region imbalance across Up TiKV stores: violated when
	// max - min > max(MinDiff, Ratio * mean) of the per-store counts.
	// Defaults: leaders Ratio 0.6, MinDiff 6, so a gap PD's balance-leader
	// scheduler itself accepts (it tolerates about 5 leaders either side on
	// small clusters; a fresh 3-store cluster sits at 8/3/3) is not a
	// ticket, and the healthy production fixtures A4 17/25/18 and A5
	// 18/12/11/12/11 hold (the hot-region scheduler skews leaders on
	// purpose); regions Ratio 0.3, MinDiff 5. The demo's 5-region cluster
	// lowers MinDiff to 4 so that leaders 5,0,0 violate and 4,1,0 hold.
	LeaderImbalanceRatio   float64 `toml:"leader-imbalance-ratio" json:"leader-imbalance-ratio"`
	LeaderImbalanceMinDiff int     `toml:"leader-imbalance-min-diff" json:"leader-imbalance-min-diff"`
	RegionImbalanceRatio   float64 `toml:"region-imbalance-ratio" json:"region-imbalance-ratio"`
	RegionImbalanceMinDiff int     `toml:"region-imbalance-min-diff" json:"region-imbalance-min-diff"`
	// NoLeadersMinUptime: store_no_leaders ignores stores up for less than
	// this (leaders come back gradually after a restart). Default 10m.
	NoLeadersMinUptime time.Duration `toml:"no-leaders-min-uptime" json:"no-leaders-min-uptime"`

	// Region check thresholds: the invariant fires when the number of
	// regions PD's check endpoint lists is greater than the value.
	// Defaults: miss-peer 0, down-peer 0 (PingCAP PD_down_peer_region_nums
	// > 0), pending-peer 100 (PingCAP PD_pending_peer_region_count),
	// extra-peer 0. region_miss_peer is critical above 100 regions
	// (PingCAP PD_miss_peer_region_count), warning below.
	MissPeerMaxRegions    int `toml:"miss-peer-max-regions" json:"miss-peer-max-regions"`
	DownPeerMaxRegions    int `toml:"down-peer-max-regions" json:"down-peer-max-regions"`
	PendingPeerMaxRegions int `toml:"pending-peer-max-regions" json:"pending-peer-max-regions"`
	ExtraPeerMaxRegions   int `toml:"extra-peer-max-regions" json:"extra-peer-max-regions"`
	// SampleRegions is how many region ids evidence lists. Default 10.
	// 0 = default.
	SampleRegions int `toml:"sample-regions" json:"sample-regions"`
	// OversizedMaxSubjects caps region_oversized violations per cycle (the
	// largest regions first). Default 20. 0 = default.
	OversizedMaxSubjects int `toml:"oversized-max-subjects" json:"oversized-max-subjects"`

	// HotWriteShare: hot_write_store fires when one store holds more than
	// this share of the cluster's hot write bytes as leader
	// (GET /hotspot/regions/write, as_leader). Default 0.6. 0 = default.
	HotWriteShare float64 `toml:"hot-write-share" json:"hot-write-share"`
	// HotWriteMinBytesPerSec: and that store's hot write flow is at least
	// this many bytes/s. Default 1 MiB/s.
	HotWriteMinBytesPerSec float64 `toml:"hot-write-min-bytes-per-sec" json:"hot-write-min-bytes-per-sec"`
	// HotWriteTopRegions is how many hottest region ids the evidence lists.
	// Default 5. 0 = default.
	HotWriteTopRegions int `toml:"hot-write-top-regions" json:"hot-write-top-regions"`
	// CPUImbalanceRatio, CPUImbalanceMinCores, CPUImbalanceMaxFlowRatio:
	// hot_write_cpu_imbalance (needs [prometheus]) fires for a store whose
	// TiKV write-path CPU is at least Ratio (default 2) times the other Up
	// stores' median and at least MinCores (default 1 core), while its
	// hot write bytes and keys (GET /hotspot/regions/write as_leader) are
	// each at most MaxFlowRatio (default 1.5) times the others' median.
	// 0 = default.
	CPUImbalanceRatio        float64 `toml:"cpu-imbalance-ratio" json:"cpu-imbalance-ratio"`
	CPUImbalanceMinCores     float64 `toml:"cpu-imbalance-min-cores" json:"cpu-imbalance-min-cores"`
	CPUImbalanceMaxFlowRatio float64 `toml:"cpu-imbalance-max-flow-ratio" json:"cpu-imbalance-max-flow-ratio"`

	// OfflineStuckAfter: an Offline store whose region_count has not
	// fallen for this long is stuck. When fewer Up TiKV stores than
	// max-replicas remain the drain cannot finish and the invariant fires
	// without waiting. Default 30m (pingcap/tidb#10619). 0 = default.
	OfflineStuckAfter time.Duration `toml:"offline-stuck-after" json:"offline-stuck-after"`
	// TombstoneMaxRecords: tombstone_pileup fires when there are more
	// Tombstone store records than this (pingcap/tidb-operator#124, tikv/pd#4422). Default 3.
	TombstoneMaxRecords int `toml:"tombstone-max-records" json:"tombstone-max-records"`

	// DownPeerUnrepairedAfter: region_down_peer_unrepaired fires for a
	// down peer on an Up store once its down_seconds reach this, and for a
	// down peer on a Down/Offline store once PD has run no operator on the
	// region for this long. Default 10m. 0 = default.
	DownPeerUnrepairedAfter time.Duration `toml:"down-peer-unrepaired-after" json:"down-peer-unrepaired-after"`
	// OperatorTimeoutWindow, OperatorTimeoutsPerRegion,
	// OperatorTimeoutsPerStore: operator_timeouts fires for a region with
	// at least PerRegion (default 2) and a target store with at least
	// PerStore (default 3) PD operators that timed out within the window
	// (default 30m). 0 = default.
	OperatorTimeoutWindow     time.Duration `toml:"operator-timeout-window" json:"operator-timeout-window"`
	OperatorTimeoutsPerRegion int           `toml:"operator-timeouts-per-region" json:"operator-timeouts-per-region"`
	OperatorTimeoutsPerStore  int           `toml:"operator-timeouts-per-store" json:"operator-timeouts-per-store"`
	// PendingPeerStuckAfter: region_pending_peer_stuck fires for a region
	// pending this long without interruption. Default 10m. 0 = default.
	PendingPeerStuckAfter time.Duration `toml:"pending-peer-stuck-after" json:"pending-peer-stuck-after"`
	// LeaderDropRatio and LeaderDropMinLeaders: store_leader_drop fires
	// when a store loses at least this share (default 0.5) and this many
	// (default 10) of its leaders between two polls; LeaderDropHold keeps
	// it firing that long unless the leaders come back (default 10m).
	// 0 = default.
	LeaderDropRatio      float64       `toml:"leader-drop-ratio" json:"leader-drop-ratio"`
	LeaderDropMinLeaders int           `toml:"leader-drop-min-leaders" json:"leader-drop-min-leaders"`
	LeaderDropHold       time.Duration `toml:"leader-drop-hold" json:"leader-drop-hold"`
	// HostLabel is the store label naming the machine (default "host",
	// TiUP's and tidb-operator's); HostFailingMinStores how many stores of
	// one host must fail together (default 2). 0 / "" = default.
	HostLabel            string `toml:"host-label" json:"host-label"`
	HostFailingMinStores int    `toml:"host-failing-min-stores" json:"host-failing-min-stores"`
	// PDLeaderChangeHold: after a PD leader change (LeaderGuard) the
	// store-state invariants (HeldByLeaderChange) are held this long while
	// the new leader rebuilds store states from heartbeats. Default 30s.
	// 0 = default.
	PDLeaderChangeHold time.Duration `toml:"pd-leader-change-hold" json:"pd-leader-change-hold"`
}

// Defaults of Config's thresholds.
const (
	DefaultFor                       = time.Minute
	DefaultPDUnreachableFor          = 30 * time.Second
	DefaultUnhealthyAfter            = 10 * time.Minute
	DefaultLowSpaceRatio             = 0.8
	DefaultLowSpaceMinRegionCount    = 100
	DefaultLowSpaceMinAvailableBytes = 8 << 30
	DefaultClusterSpaceUsedRatio     = 0.8
	DefaultCapacityMinMedianRatio    = 0.01
	DefaultSlowScore                 = 80
	DefaultLeaderImbalanceRatio      = 0.6
	DefaultLeaderImbalanceMinDiff    = 6
	DefaultRegionImbalanceRatio      = 0.3
	DefaultRegionImbalanceMinDiff    = 5
	DefaultNoLeadersMinUptime        = 10 * time.Minute
	DefaultPendingPeerMaxRegions     = 100
	DefaultSampleRegions             = 10
	DefaultOversizedMaxSubjects      = 20
	DefaultHotWriteShare             = 0.6
	DefaultHotWriteMinBytesPerSec    = 1 << 20
	DefaultHotWriteTopRegions        = 5
	DefaultCPUImbalanceRatio         = 2.0
	DefaultCPUImbalanceMinCores      = 1.0
	DefaultCPUImbalanceMaxFlowRatio  = 1.5
	DefaultOfflineStuckAfter         = 30 * time.Minute
	DefaultTombstoneMaxRecords       = 3
	DefaultDownPeerUnrepairedAfter   = 10 * time.Minute
	DefaultOperatorTimeoutWindow     = 30 * time.Minute
	DefaultOperatorTimeoutsPerRegion = 2
	DefaultOperatorTimeoutsPerStore  = 3
	DefaultPendingPeerStuckAfter     = 10 * time.Minute
	DefaultLeaderDropRatio           = 0.5
	DefaultLeaderDropMinLeaders      = 10
	DefaultLeaderDropHold            = 10 * time.Minute
	DefaultHostLabel                 = "host"
	DefaultHostFailingMinStores      = 2
	// PD's fixed thresholds (pkg/core/store.go), reported in evidence.
	pdDisconnectAfter     = 20 * time.Second
	pdDefaultStoreDownMax = 30 * time.Minute
)

// DefaultConfig returns the production defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		DefaultFor: DefaultFor,
		For: map[string]time.Duration{
			NameStoreOfflineStuck: 0,
			NamePDUnreachable:     DefaultPDUnreachableFor,
			// Windows of their own, or events that already happened.
			NameRegionDownPeerUnrepaired: 0,
			NameOperatorTimeouts:         0,
			NameRegionPendingPeerStuck:   0,
			NameStoreLeaderDrop:          0,
			// PD already debounced these (issue 17): Disconnected is 20 s
			// without a heartbeat, Down is max-store-down-time, and
			// store_unhealthy waits unhealthy-after itself. A second `for`
			// would only add latency over PD's floor.
			NameStoreDisconnected: 0,
			NameStoreUnhealthy:    0,
			NameStoreDown:         0,
		},
		UnhealthyAfter:            DefaultUnhealthyAfter,
		LowSpaceMinRegionCount:    DefaultLowSpaceMinRegionCount,
		LowSpaceMinAvailableBytes: DefaultLowSpaceMinAvailableBytes,
		ClusterSpaceUsedRatio:     DefaultClusterSpaceUsedRatio,
		CapacityMinMedianRatio:    DefaultCapacityMinMedianRatio,
		SlowScore:                 DefaultSlowScore,
		LeaderImbalanceRatio:      DefaultLeaderImbalanceRatio,
		LeaderImbalanceMinDiff:    DefaultLeaderImbalanceMinDiff,
		RegionImbalanceRatio:      DefaultRegionImbalanceRatio,
		RegionImbalanceMinDiff:    DefaultRegionImbalanceMinDiff,
		NoLeadersMinUptime:        DefaultNoLeadersMinUptime,
		PendingPeerMaxRegions:     DefaultPendingPeerMaxRegions,
		SampleRegions:             DefaultSampleRegions,
		OversizedMaxSubjects:      DefaultOversizedMaxSubjects,
		HotWriteShare:             DefaultHotWriteShare,
		HotWriteMinBytesPerSec:    DefaultHotWriteMinBytesPerSec,
		HotWriteTopRegions:        DefaultHotWriteTopRegions,
		CPUImbalanceRatio:         DefaultCPUImbalanceRatio,
		CPUImbalanceMinCores:      DefaultCPUImbalanceMinCores,
		CPUImbalanceMaxFlowRatio:  DefaultCPUImbalanceMaxFlowRatio,
		OfflineStuckAfter:         DefaultOfflineStuckAfter,
		TombstoneMaxRecords:       DefaultTombstoneMaxRecords,
		DownPeerUnrepairedAfter:   DefaultDownPeerUnrepairedAfter,
		OperatorTimeoutWindow:     DefaultOperatorTimeoutWindow,
		OperatorTimeoutsPerRegion: DefaultOperatorTimeoutsPerRegion,
		OperatorTimeoutsPerStore:  DefaultOperatorTimeoutsPerStore,
		PendingPeerStuckAfter:     DefaultPendingPeerStuckAfter,
		LeaderDropRatio:           DefaultLeaderDropRatio,
		LeaderDropMinLeaders:      DefaultLeaderDropMinLeaders,
		LeaderDropHold:            DefaultLeaderDropHold,
		HostLabel:                 DefaultHostLabel,
		HostFailingMinStores:      DefaultHostFailingMinStores,
		PDLeaderChangeHold:        DefaultPDLeaderChangeHold,
	}
}

// ForOf returns the pending duration of the invariant named name: For[name]
// if set, else DefaultFor.
func (c Config) ForOf(name string) time.Duration {
	if d, ok := c.For[name]; ok {
		return d
	}
	return c.DefaultFor
}

// withDefaults fills the fields documented "0 = default".
func (c Config) withDefaults() Config {
	if c.UnhealthyAfter == 0 {
		c.UnhealthyAfter = DefaultUnhealthyAfter
	}
	if c.ClusterSpaceUsedRatio == 0 {
		c.ClusterSpaceUsedRatio = DefaultClusterSpaceUsedRatio
	}
	if c.CapacityMinMedianRatio == 0 {
		c.CapacityMinMedianRatio = DefaultCapacityMinMedianRatio
	}
	if c.SlowScore == 0 {
		c.SlowScore = DefaultSlowScore
	}
	if c.SampleRegions == 0 {
		c.SampleRegions = DefaultSampleRegions
	}
	if c.OversizedMaxSubjects == 0 {
		c.OversizedMaxSubjects = DefaultOversizedMaxSubjects
	}
	if c.HotWriteShare == 0 {
		c.HotWriteShare = DefaultHotWriteShare
	}
	if c.HotWriteTopRegions == 0 {
		c.HotWriteTopRegions = DefaultHotWriteTopRegions
	}
	if c.OfflineStuckAfter == 0 {
		c.OfflineStuckAfter = DefaultOfflineStuckAfter
	}
	if c.CPUImbalanceRatio == 0 {
		c.CPUImbalanceRatio = DefaultCPUImbalanceRatio
	}
	if c.CPUImbalanceMinCores == 0 {
		c.CPUImbalanceMinCores = DefaultCPUImbalanceMinCores
	}
	if c.CPUImbalanceMaxFlowRatio == 0 {
		c.CPUImbalanceMaxFlowRatio = DefaultCPUImbalanceMaxFlowRatio
	}
	if c.DownPeerUnrepairedAfter == 0 {
		c.DownPeerUnrepairedAfter = DefaultDownPeerUnrepairedAfter
	}
	if c.OperatorTimeoutWindow == 0 {
		c.OperatorTimeoutWindow = DefaultOperatorTimeoutWindow
	}
	if c.OperatorTimeoutsPerRegion == 0 {
		c.OperatorTimeoutsPerRegion = DefaultOperatorTimeoutsPerRegion
	}
	if c.OperatorTimeoutsPerStore == 0 {
		c.OperatorTimeoutsPerStore = DefaultOperatorTimeoutsPerStore
	}
	if c.PendingPeerStuckAfter == 0 {
		c.PendingPeerStuckAfter = DefaultPendingPeerStuckAfter
	}
	if c.LeaderDropRatio == 0 {
		c.LeaderDropRatio = DefaultLeaderDropRatio
	}
	if c.LeaderDropMinLeaders == 0 {
		c.LeaderDropMinLeaders = DefaultLeaderDropMinLeaders
	}
	if c.LeaderDropHold == 0 {
		c.LeaderDropHold = DefaultLeaderDropHold
	}
	if c.HostLabel == "" {
		c.HostLabel = DefaultHostLabel
	}
	if c.HostFailingMinStores == 0 {
		c.HostFailingMinStores = DefaultHostFailingMinStores
	}
	if c.PDLeaderChangeHold == 0 {
		c.PDLeaderChangeHold = DefaultPDLeaderChangeHold
	}
	return c
}

// Validate reports thresholds outside their domain. Unknown names in For
// or Disabled are errors too, so that a typo does not silently keep an
// invariant enabled.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	known := Names()
	for name, d := range c.For {
		if !slices.Contains(known, name) {
			bad("for: unknown invariant %q", name)
		}
		if d < 0 {
			bad("for.%s: negative duration %s", name, d)
		}
	}
	for _, name := range c.Disabled {
		if !slices.Contains(known, name) {
			bad("disabled: unknown invariant %q", name)
		}
	}
	if c.DefaultFor < 0 {
		bad("default-for: negative duration %s", c.DefaultFor)
	}
	if c.UnhealthyAfter < 0 || (c.UnhealthyAfter > 0 && c.UnhealthyAfter <= pdDisconnectAfter) {
		bad("unhealthy-after %s must exceed PD's 20s disconnect threshold", c.UnhealthyAfter)
	}
	if c.LowSpaceRatio < 0 || c.LowSpaceRatio >= 1 {
		bad("low-space-ratio %v must be in [0,1) (0 = PD's value)", c.LowSpaceRatio)
	}
	if c.LowSpaceMinRegionCount < 0 {
		bad("low-space-min-region-count %d must be >= 0", c.LowSpaceMinRegionCount)
	}
	if c.ClusterSpaceUsedRatio < 0 || c.ClusterSpaceUsedRatio > 1 {
		bad("cluster-space-used-ratio %v must be in (0,1]", c.ClusterSpaceUsedRatio)
	}
	if c.CapacityMinMedianRatio < 0 || c.CapacityMinMedianRatio >= 1 {
		bad("capacity-min-median-ratio %v must be in (0,1)", c.CapacityMinMedianRatio)
	}
	if c.SlowScore > 100 {
		bad("slow-score %d must be in 1..100", c.SlowScore)
	}
	if c.LeaderImbalanceRatio < 0 || c.RegionImbalanceRatio < 0 {
		bad("imbalance ratios must be >= 0")
	}
	if c.LeaderImbalanceMinDiff < 0 || c.RegionImbalanceMinDiff < 0 {
		bad("imbalance min diffs must be >= 0")
	}
	if c.NoLeadersMinUptime < 0 || c.OfflineStuckAfter < 0 {
		bad("durations must be >= 0")
	}
	if c.MissPeerMaxRegions < 0 || c.DownPeerMaxRegions < 0 || c.PendingPeerMaxRegions < 0 || c.ExtraPeerMaxRegions < 0 {
		bad("region check thresholds must be >= 0")
	}
	if c.SampleRegions < 0 || c.OversizedMaxSubjects < 0 || c.HotWriteTopRegions < 0 || c.TombstoneMaxRecords < 0 {
		bad("counts must be >= 0")
	}
	if c.HotWriteShare < 0 || c.HotWriteShare > 1 {
		bad("hot-write-share %v must be in (0,1]", c.HotWriteShare)
	}
	if c.CPUImbalanceRatio < 0 || (c.CPUImbalanceRatio > 0 && c.CPUImbalanceRatio <= 1) {
		bad("cpu-imbalance-ratio %v must be > 1", c.CPUImbalanceRatio)
	}
	if c.CPUImbalanceMinCores < 0 || c.CPUImbalanceMaxFlowRatio < 0 {
		bad("cpu-imbalance-min-cores and cpu-imbalance-max-flow-ratio must be >= 0")
	}
	if c.HotWriteMinBytesPerSec < 0 {
		bad("hot-write-min-bytes-per-sec %v must be >= 0", c.HotWriteMinBytesPerSec)
	}
	if c.DownPeerUnrepairedAfter < 0 || c.OperatorTimeoutWindow < 0 || c.PendingPeerStuckAfter < 0 || c.LeaderDropHold < 0 {
		bad("durations must be >= 0")
	}
	if c.OperatorTimeoutsPerRegion < 0 || c.OperatorTimeoutsPerStore < 0 || c.LeaderDropMinLeaders < 0 {
		bad("counts must be >= 0")
	}
	if c.LeaderDropRatio < 0 || c.LeaderDropRatio > 1 {
		bad("leader-drop-ratio %v must be in (0,1]", c.LeaderDropRatio)
	}
	if c.PDLeaderChangeHold < 0 {
		bad("pd-leader-change-hold %s must be >= 0", c.PDLeaderChangeHold)
	}
	if c.HostFailingMinStores < 0 || c.HostFailingMinStores == 1 {
		bad("host-failing-min-stores %d must be >= 2", c.HostFailingMinStores)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invariant config: %w", errors.Join(errs...))
	}
	return nil
}

// Default returns the built-in invariants configured by cfg, in the order
// of Names, leaving out cfg.Disabled. Each carries its pending duration
// (Pender) from cfg.ForOf. Stateful invariants (store_offline_stuck, and
// those sharing one History) keep their history inside the returned
// values, so call Default once per monitor, not per cycle; StatesOf
// returns what to persist.
func Default(cfg Config) []Invariant {
	c := cfg.withDefaults()
	b := func(name string) base { return base{name: name, pending: c.ForOf(name)} }
	hist := NewHistory()
	all := []Invariant{
		&StoreDisconnected{base: b(NameStoreDisconnected), UnhealthyAfter: c.UnhealthyAfter},
		&StoreUnhealthy{base: b(NameStoreUnhealthy), UnhealthyAfter: c.UnhealthyAfter},
		&StoreDown{base: b(NameStoreDown)},
		&StoreLowSpace{base: b(NameStoreLowSpace), LowSpaceRatio: c.LowSpaceRatio,
			MinRegionCount: c.LowSpaceMinRegionCount, MinAvailableBytes: c.LowSpaceMinAvailableBytes},
		&ClusterSpaceUsed{base: b(NameClusterSpaceUsed), MaxRatio: c.ClusterSpaceUsedRatio},
		&StoreCapacitySuspect{base: b(NameStoreCapacitySuspect), MinMedianRatio: c.CapacityMinMedianRatio},
		&StoreSlow{base: b(NameStoreSlow), MinScore: c.SlowScore},
		&Imbalance{base: b(NameLeaderImbalance), Kind: Leaders, Ratio: c.LeaderImbalanceRatio, MinDiff: c.LeaderImbalanceMinDiff},
		&Imbalance{base: b(NameRegionImbalance), Kind: Regions, Ratio: c.RegionImbalanceRatio, MinDiff: c.RegionImbalanceMinDiff},
		&StoreNoLeaders{base: b(NameStoreNoLeaders), MinUptime: c.NoLeadersMinUptime},
		&RegionCheck{base: b(NameRegionMissPeer), Check: checkMissPeer, MaxRegions: c.MissPeerMaxRegions, Samples: c.SampleRegions},
		&RegionCheck{base: b(NameRegionDownPeer), Check: checkDownPeer, MaxRegions: c.DownPeerMaxRegions, Samples: c.SampleRegions},
		&RegionCheck{base: b(NameRegionPendingPeer), Check: checkPendingPeer, MaxRegions: c.PendingPeerMaxRegions, Samples: c.SampleRegions},
		&RegionOfflinePeer{base: b(NameRegionOfflinePeer), Samples: c.SampleRegions},
		&RegionCheck{base: b(NameRegionExtraPeer), Check: checkExtraPeer, MaxRegions: c.ExtraPeerMaxRegions, Samples: c.SampleRegions},
		&RegionOversized{base: b(NameRegionOversized), MaxSubjects: c.OversizedMaxSubjects},
		&HotWriteStore{base: b(NameHotWriteStore), MinShare: c.HotWriteShare, MinBytesPerSec: c.HotWriteMinBytesPerSec, TopRegions: c.HotWriteTopRegions},
		&HotWriteCPUImbalance{base: b(NameHotWriteCPUImbalance), Ratio: c.CPUImbalanceRatio, MinCores: c.CPUImbalanceMinCores,
			FlowRatio: c.CPUImbalanceMaxFlowRatio, TopRegions: c.HotWriteTopRegions},
		NewStoreOfflineStuck(c.ForOf(NameStoreOfflineStuck), c.OfflineStuckAfter),
		&UpStoresBelowReplicas{base: b(NameUpStoresBelowReplicas)},
		&TombstonePileup{base: b(NameTombstonePileup), MaxRecords: c.TombstoneMaxRecords},
		&PDUnhealthy{base: b(NamePDUnhealthy)},
		&PDNoLeader{base: b(NamePDNoLeader)},
		&RegionNoLeader{base: b(NameRegionNoLeader), Samples: c.SampleRegions},
		&RegionDownPeerUnrepaired{base: b(NameRegionDownPeerUnrepaired), After: c.DownPeerUnrepairedAfter, Samples: c.SampleRegions, h: hist},
		&OperatorTimeouts{base: b(NameOperatorTimeouts), Window: c.OperatorTimeoutWindow,
			PerRegion: c.OperatorTimeoutsPerRegion, PerStore: c.OperatorTimeoutsPerStore, h: hist},
		&RegionPendingPeerStuck{base: b(NameRegionPendingPeerStuck), After: c.PendingPeerStuckAfter, Samples: c.SampleRegions, h: hist},
		&StoreOfflineBlocked{base: b(NameStoreOfflineBlocked)},
		&StoreDuplicateAddress{base: b(NameStoreDuplicateAddress)},
		&StoreLeaderDrop{base: b(NameStoreLeaderDrop), Ratio: c.LeaderDropRatio, MinLeaders: c.LeaderDropMinLeaders,
			Hold: c.LeaderDropHold, h: hist},
		&HostStoresFailing{base: b(NameHostStoresFailing), Label: c.HostLabel, MinStores: c.HostFailingMinStores, h: hist},
		&ReplicationIsolationRisk{base: b(NameReplicationIsolationRisk)},
	}
	// A PD leader change rebuilds the store figures these read: hold
	// them meanwhile (one guard for all).
	guard := NewLeaderGuard(c.PDLeaderChangeHold)
	out := all[:0]
	for _, inv := range all {
		if slices.Contains(cfg.Disabled, inv.Name()) {
			continue
		}
		if slices.Contains(HeldByLeaderChange, inv.Name()) {
			inv = Guard(inv, guard)
		}
		out = append(out, inv)
	}
	return out
}
