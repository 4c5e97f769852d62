// Package tikv is the TiKV subject: what the operator sees of a TiKV
// cluster (a Snapshot read through PD's HTTP API and, optionally,
// Prometheus) and every remediation action it can take through PD.
package tikv

import (
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// Region check names: the suffixes of GET /pd/api/v1/regions/check/{name}.
const (
	CheckMissPeer        = "miss-peer"
	CheckExtraPeer       = "extra-peer"
	CheckPendingPeer     = "pending-peer"
	CheckDownPeer        = "down-peer"
	CheckOfflinePeer     = "offline-peer"
	CheckLearnerPeer     = "learner-peer"
	CheckEmptyRegion     = "empty-region"
	CheckOversizedRegion = "oversized-region"
	CheckUndersized      = "undersized-region"
)

// Snapshot is one consistent-enough read of the cluster for a monitor cycle.
// It never holds every region: only the regions PD's check endpoints flag,
// so its size grows with the number of problems, not with the cluster.
//
// A source that failed is recorded in Errors (keyed by source name, e.g.
// "hotspot/write") and its field left zero; invariants that need it report
// that they could not be evaluated.
type Snapshot struct {
	// Time is PD's clock (the HTTP Date header of GET /stores), falling back
	// to the local clock.
	Time time.Time
	// Stores are every store except Tombstone ones (GET /stores).
	Stores []pd.StoreInfo
	// Tombstones are Tombstone store records (GET /stores/check?state=tombstone).
	Tombstones  []pd.StoreInfo
	Schedule    pd.ScheduleConfig
	Replication pd.ReplicationConfig
	// Checks maps a check name (CheckMissPeer, ...) to the regions PD
	// flags; Collect streams each list and keeps at most CheckKeepRegions
	// (lowest ids, leaderless first), in ascending id order.
	Checks map[string][]pd.Region
	// CheckSummaries maps a check name to the count and per-store
	// breakdown over every region PD listed (one streaming pass); nil in
	// hand-built snapshots: use CheckCount.
	CheckSummaries map[string]*CheckSummary
	// ReusedChecks names the check lists a Collector took from an earlier
	// read instead of reading them again, with the (local) time of that
	// read: the age of Checks[name] and of CheckSummaries[name]'s
	// per-store breakdown, while CheckSummaries[name].Count is PD's count
	// of this cycle (pd_regions_status in /metrics). Nil when every list
	// was read now (always with Collect). Shared with other snapshots:
	// never modify those lists or breakdowns.
	ReusedChecks map[string]time.Time
	// HotWrite is GET /hotspot/regions/write.
	HotWrite pd.HotRegions
	// HotStores is GET /hotspot/stores.
	HotStores pd.HotStores
	// Schedulers lists the running scheduler names (GET /schedulers).
	Schedulers []string
	// PausedSchedulers lists paused scheduler names (GET /schedulers?status=paused).
	PausedSchedulers []string
	// EvictLeaderStores are store ids that evict-leader-scheduler holds
	// (GET /scheduler-config/evict-leader-scheduler/list; older PDs name
	// one scheduler per store, evict-leader-scheduler-{id}).
	EvictLeaderStores []uint64
	Health            []pd.MemberHealth
	Members           pd.Members
	// Progress holds removal progress of Offline stores by store id
	// (GET /stores/progress?id=N).
	Progress map[uint64]pd.StoreProgress
	// Operators are PD's running operators (GET /operators?object; PD
	// >= 4.0). Source SourceOperators.
	Operators []pd.Operator
	// OperatorRecords are the operators PD finished within
	// OperatorRecordsWindow before Time (GET /operators/records?from=;
	// PD >= 4.0 keeps them 10 minutes), parsed. Source
	// SourceOperatorRecords.
	OperatorRecords []pd.OperatorRecord
	// StoreRegions maps the id of every Offline store whose region_count
	// is at most StoreRegionsReadLimit to the regions PD lists with a peer
	// on it (GET /regions/store/{id}): PD's region_count only counts
	// regions whose leader reported, so a leaderless region can still
	// hold an Offline store with region_count 0. Bounded by the limit.
	// Source SourceStoreRegions(id).
	StoreRegions map[uint64][]pd.Region
	// StoreCPU is each TiKV store's write-path CPU in cores (CPU seconds
	// per second of its raftstore, apply, scheduler and gRPC thread pools,
	// Prometheus StoreCPUQuery), by store id; stores Prometheus has no
	// sample for are absent. Nil when no Prometheus is configured or the
	// read failed (source SourceStoreCPU). Set by WithStoreCPU.
	StoreCPU map[uint64]float64
	// Errors records sources that could not be read, by source name.
	Errors map[string]error
	// Unavailable records sources the PD version does not offer (its
	// router answered 404 "page not found", pd.ErrNotAvailable), by source
	// name: not failures; their fields stay zero. Nil in hand-built
	// snapshots.
	Unavailable map[string]bool

	storeIdx map[uint64]int // store id -> index in Stores (IndexStores)
}

// IndexStores builds the id index Store uses (Collect calls it); call it
// again after changing Stores. Without it Store scans Stores.
func (s *Snapshot) IndexStores() {
	s.storeIdx = make(map[uint64]int, len(s.Stores))
	for i := range s.Stores {
		s.storeIdx[s.Stores[i].Store.ID] = i
	}
}

// Store returns the store with the given id from Stores, if present: O(1)
// through the index IndexStores built (verified against Stores, so a stale
// index is never wrong), else a scan of Stores.
func (s *Snapshot) Store(id uint64) (*pd.StoreInfo, bool) {
	if i, ok := s.storeIdx[id]; ok && i < len(s.Stores) && s.Stores[i].Store.ID == id {
		return &s.Stores[i], true
	}
	if s.storeIdx != nil && len(s.storeIdx) == len(s.Stores) {
		return nil, false
	}
	for i := range s.Stores {
		if s.Stores[i].Store.ID == id {
			return &s.Stores[i], true
		}
	}
	return nil, false
}

// TiKVStores returns the non-TiFlash stores in Stores.
func (s *Snapshot) TiKVStores() []*pd.StoreInfo {
	out := make([]*pd.StoreInfo, 0, len(s.Stores))
	for i := range s.Stores {
		if !s.Stores[i].IsTiFlash() {
			out = append(out, &s.Stores[i])
		}
	}
	return out
}
