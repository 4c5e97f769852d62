package tikvsim

import (
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// Dump is the simulator's own view of the cluster, as served by the control
// API's GET /v1/dump. It is what the simulated TiKVs believe, which PD
// reflects after their next heartbeats.
type Dump struct {
	// ClusterID is PD's cluster ID.
	ClusterID uint64 `json:"cluster_id"`
	// PD is PD's client URL.
	PD string `json:"pd"`
	// PDError is the last error talking to PD, "" if the last call worked.
	PDError string `json:"pd_error,omitempty"`
	// SetupSeconds is how long Start took.
	SetupSeconds float64 `json:"setup_seconds"`
	// RegionCount is the number of regions (also when Regions is omitted).
	RegionCount int `json:"region_count"`
	// Stores in creation order.
	Stores []StoreView `json:"stores"`
	// Regions sorted by start key; omitted when not requested.
	Regions []RegionView `json:"regions,omitempty"`
}

// StoreView is one simulated store.
type StoreView struct {
	// ID is the store ID PD allocated.
	ID uint64 `json:"id"`
	// Address is the (fake, unique) TiKV address registered with PutStore.
	Address string `json:"address"`
	// Version is the TiKV version reported.
	Version string `json:"version"`
	// Labels are the store labels, if any.
	Labels map[string]string `json:"labels,omitempty"`
	// Stopped is true after StopStore (no heartbeats).
	Stopped bool `json:"stopped"`
	// Tombstone is true once PD answered a heartbeat with STORE_TOMBSTONE.
	Tombstone bool `json:"tombstone,omitempty"`
	// StreamUp tells whether the region heartbeat stream is connected.
	StreamUp bool `json:"stream_up"`
	// Capacity, Available and UsedSize are bytes as reported to PD.
	Capacity  uint64 `json:"capacity"`
	Available uint64 `json:"available"`
	UsedSize  uint64 `json:"used_size"`
	// AvailableOverridden is true after SetAvailable.
	AvailableOverridden bool `json:"available_overridden,omitempty"`
	// RegionCount counts peers on the store; LeaderCount its leaders.
	RegionCount int `json:"region_count"`
	LeaderCount int `json:"leader_count"`
	// SlowScore as reported (0 = not reported).
	SlowScore uint64    `json:"slow_score"`
	IsBusy    bool      `json:"is_busy"`
	StartTime time.Time `json:"start_time"`
	// LastHeartbeat is the last store heartbeat PD accepted (zero if none).
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// LastError is the last store heartbeat error, "" if it worked.
	LastError string `json:"last_error,omitempty"`
	// IgnoreCommands is true after SetIgnoreCommands(id, true).
	IgnoreCommands bool `json:"ignore_commands,omitempty"`
}

// RegionView is one region. Keys are uppercase hex like PD's HTTP API.
type RegionView struct {
	// ID is the region ID.
	ID uint64 `json:"id"`
	// StartKey and EndKey bound the range [start, end); "" is unbounded.
	StartKey string `json:"start_key"`
	EndKey   string `json:"end_key"`
	// ConfVer and Version are the region epoch.
	ConfVer uint64 `json:"conf_ver"`
	Version uint64 `json:"version"`
	// Peers lists every peer with its role.
	Peers []PeerView `json:"peers"`
	// LeaderStoreID and LeaderPeerID identify the leader.
	LeaderStoreID uint64 `json:"leader_store_id"`
	LeaderPeerID  uint64 `json:"leader_peer_id"`
	// ApproximateSize in bytes, ApproximateKeys in keys.
	ApproximateSize uint64 `json:"approximate_size"`
	ApproximateKeys uint64 `json:"approximate_keys"`
	// WriteBytesPerSec and WriteKeysPerSec are the write flow (hot region).
	WriteBytesPerSec uint64 `json:"write_bytes_per_sec,omitempty"`
	WriteKeysPerSec  uint64 `json:"write_keys_per_sec,omitempty"`
	// PendingStores and DownStores list stores whose peers the leader reports
	// as pending / down (SetPeerPending, SetPeerDown, stopped stores).
	PendingStores []uint64 `json:"pending_stores,omitempty"`
	DownStores    []uint64 `json:"down_stores,omitempty"`
	// Silent is true after SetRegionSilent(id, true): no heartbeats.
	Silent bool `json:"silent,omitempty"`
}

// PeerView is one peer; Role is Voter, Learner, IncomingVoter or DemotingVoter.
type PeerView struct {
	// ID is the peer ID.
	ID uint64 `json:"id"`
	// StoreID is the store holding the peer.
	StoreID uint64 `json:"store_id"`
	// Role is the metapb.PeerRole name.
	Role string `json:"role"`
}

// Dump returns the simulator's view. withRegions=false leaves out the
// region list (useful at 10k regions).
func (s *Sim) Dump(withRegions bool) Dump {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.usageLocked()
	d := Dump{
		ClusterID:    s.pd.clusterID,
		PD:           s.cfg.PD,
		PDError:      s.pdErr,
		SetupSeconds: s.setup.Seconds(),
		RegionCount:  len(s.regions),
	}
	for _, id := range s.storeOrder {
		d.Stores = append(d.Stores, s.storeViewLocked(s.stores[id], u[id]))
	}
	if withRegions {
		for _, r := range s.regions {
			d.Regions = append(d.Regions, s.regionViewLocked(r))
		}
		// Uppercase hex keeps byte order; "" (the first region) sorts first.
		slices.SortFunc(d.Regions, func(a, b RegionView) int { return strings.Compare(a.StartKey, b.StartKey) })
	}
	return d
}

// Store returns one store's view. Errors: ErrStoreNotFound.
func (s *Sim) Store(storeID uint64) (StoreView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return StoreView{}, err
	}
	return s.storeViewLocked(st, s.usageLocked()[storeID]), nil
}

// Region returns one region's view. Errors: ErrRegionNotFound.
func (s *Sim) Region(regionID uint64) (RegionView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.regionLocked(regionID)
	if err != nil {
		return RegionView{}, err
	}
	return s.regionViewLocked(r), nil
}

// RegionIDs returns every region ID in key order.
func (s *Sim) RegionIDs() []uint64 {
	s.mu.Lock()
	rs := make([]*region, 0, len(s.regions))
	for _, r := range s.regions {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	slices.SortFunc(rs, func(a, b *region) int { return strings.Compare(string(a.meta.StartKey), string(b.meta.StartKey)) })
	ids := make([]uint64, len(rs))
	for i, r := range rs {
		ids[i] = r.id()
	}
	return ids
}

func (s *Sim) storeViewLocked(st *store, u *usage) StoreView {
	v := StoreView{
		ID:                  st.meta.GetId(),
		Address:             st.meta.GetAddress(),
		Version:             st.meta.GetVersion(),
		Stopped:             st.stopped,
		Tombstone:           st.tombstone,
		StreamUp:            st.streamUp,
		Capacity:            s.cfg.Capacity,
		Available:           s.availableLocked(st, u.size),
		UsedSize:            u.size,
		AvailableOverridden: st.available != nil,
		RegionCount:         u.peers,
		LeaderCount:         u.leaders,
		SlowScore:           st.slowScore,
		IsBusy:              st.busy,
		StartTime:           st.startTime,
		LastHeartbeat:       st.lastHB,
		LastError:           st.lastHBErr,
		IgnoreCommands:      st.ignoreCommands,
	}
	if len(st.meta.GetLabels()) > 0 {
		v.Labels = map[string]string{}
		for _, l := range st.meta.GetLabels() {
			v.Labels[l.GetKey()] = l.GetValue()
		}
	}
	return v
}

func (s *Sim) regionViewLocked(r *region) RegionView {
	v := RegionView{
		ID:               r.id(),
		StartKey:         strings.ToUpper(hex.EncodeToString(r.meta.GetStartKey())),
		EndKey:           strings.ToUpper(hex.EncodeToString(r.meta.GetEndKey())),
		ConfVer:          r.meta.GetRegionEpoch().GetConfVer(),
		Version:          r.meta.GetRegionEpoch().GetVersion(),
		LeaderStoreID:    r.leaderStore(),
		LeaderPeerID:     r.leaderID,
		ApproximateSize:  r.size,
		ApproximateKeys:  r.keys,
		WriteBytesPerSec: r.writeBytes,
		WriteKeysPerSec:  r.writeKeys,
		Silent:           r.silent,
	}
	for _, p := range r.meta.GetPeers() {
		v.Peers = append(v.Peers, PeerView{ID: p.GetId(), StoreID: p.GetStoreId(), Role: p.GetRole().String()})
		st := s.stores[p.GetStoreId()]
		_, down := r.down[p.GetStoreId()]
		down = down || (st != nil && st.stopped && p.GetId() != r.leaderID)
		if down {
			v.DownStores = append(v.DownStores, p.GetStoreId())
		}
		if r.pending[p.GetStoreId()] || down {
			v.PendingStores = append(v.PendingStores, p.GetStoreId())
		}
	}
	return v
}
