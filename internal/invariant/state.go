package invariant

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// Stateful is implemented by what keeps history between cycles (an
// invariant such as store_offline_stuck, or the shared History): the
// monitor persists MarshalState after every cycle under StateName and
// restores it with UnmarshalState before the first cycle, so that a
// restart neither resolves nor fires early. The state must be bounded.
type Stateful interface {
	// StateName is the stable name the state is stored under.
	StateName() string
	// MarshalState returns the state as JSON.
	MarshalState() (json.RawMessage, error)
	// UnmarshalState replaces the state with a document MarshalState
	// produced; an error leaves the state empty.
	UnmarshalState(json.RawMessage) error
}

// Digester is implemented by a Stateful whose state is large and changes
// rarely (History's region tracks): StateDigest is a cheap fingerprint of
// the state, computed without allocating, and the monitor marshals and
// saves the state only when it differs from the last saved one (issue 17:
// marshalling 10,000 unchanged region tracks every cycle was ~80 % of a
// stopped-store cycle's allocations).
type Digester interface {
	StateDigest() uint64
}

// StateHolder is implemented by invariants that share a Stateful (the
// History) with others; the monitor persists each distinct StateName once.
type StateHolder interface {
	States() []Stateful
}

// StatesOf returns the Stateful values behind invs, one per StateName, in
// order of first appearance.
func StatesOf(invs []Invariant) []Stateful {
	var out []Stateful
	seen := map[string]bool{}
	add := func(s Stateful) {
		if s != nil && !seen[s.StateName()] {
			seen[s.StateName()] = true
			out = append(out, s)
		}
	}
	for _, inv := range invs {
		if s, ok := inv.(Stateful); ok {
			add(s)
		}
		if h, ok := inv.(StateHolder); ok {
			for _, s := range h.States() {
				add(s)
			}
		}
	}
	return out
}

// History bounds.
const (
	// historyStorePoints is how many observations History keeps per store.
	historyStorePoints = 30
	// historyMaxRegions caps the regions History tracks per kind (pending
	// peers, down peers); past it new regions are not tracked (their
	// count invariants still fire) and Truncated is set.
	historyMaxRegions = 10000
	// historyMaxRecords caps the finished operators History keeps.
	historyMaxRecords = 2000
	// historyRecordsAge drops finished operators older than this.
	historyRecordsAge = 2 * time.Hour
	// historyForgetStore drops a store not seen for this long.
	historyForgetStore = time.Hour
)

// StorePoint is one observation of a store by History.
type StorePoint struct {
	At    time.Time `json:"at"`
	State string    `json:"state"`
	// HeartbeatAgeSeconds is PD's clock minus the store's last heartbeat.
	HeartbeatAgeSeconds float64 `json:"heartbeat_age_s"`
	LeaderCount         int     `json:"leader_count"`
	RegionCount         int     `json:"region_count"`
	// DownPeers and PendingPeers count the store's peers in PD's
	// down-peer and pending-peer lists; MaxDownSeconds is the largest
	// down_seconds among them.
	DownPeers      int    `json:"down_peers"`
	PendingPeers   int    `json:"pending_peers"`
	MaxDownSeconds uint64 `json:"max_down_s"`
}

// RegionTrack is History's memory of one region: since when one of its
// peers has been pending (PendingSince, with the stores), since when it
// has had down peers while PD ran no operator on it (NoOperatorSince).
type RegionTrack struct {
	PendingSince    time.Time `json:"pending_since,omitzero"`
	PendingStores   []uint64  `json:"pending_stores,omitempty"`
	DownSince       time.Time `json:"down_since,omitzero"`
	NoOperatorSince time.Time `json:"no_operator_since,omitzero"`
	LastOperator    string    `json:"last_operator,omitempty"`
}

// History is the monitor's memory of the cluster over time, shared by the
// invariants that judge change (leader drops, stuck pending peers, down
// peers PD does not repair, operator timeouts): per-store observations
// (the last 30 polls), per-region tracks for regions PD flags, and PD's
// finished operators (GET /operators/records, the last 2 h, at most
// 2000). It is updated at most once per snapshot and persisted by the
// monitor (Stateful, name "history"). Safe for concurrent use.
type History struct {
	mu   sync.Mutex
	last *tikv.Snapshot
	st   historyState
}

type historyState struct {
	Stores map[uint64][]StorePoint `json:"stores"`
	// Pending and Down are saved in their own document ("history/regions",
	// historyRegions); documents saved before it carried them here, and
	// UnmarshalState still reads them.
	Pending   map[uint64]*RegionTrack `json:"pending,omitempty"`
	Down      map[uint64]*RegionTrack `json:"down,omitempty"`
	Records   []pd.OperatorRecord     `json:"records"`
	Truncated bool                    `json:"truncated,omitempty"`
	Updated   time.Time               `json:"updated,omitzero"`
}

// NewHistory returns an empty History.
func NewHistory() *History {
	h := &History{}
	h.reset()
	return h
}

func (h *History) reset() {
	h.st = historyState{Stores: map[uint64][]StorePoint{}, Pending: map[uint64]*RegionTrack{}, Down: map[uint64]*RegionTrack{}}
}

// StateName implements Stateful.
func (h *History) StateName() string { return "history" }

// MarshalState implements Stateful: the per-store observations and PD's
// finished operators (small, changing every cycle); the region tracks are
// the "history/regions" document (States).
func (h *History) MarshalState() (json.RawMessage, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.st
	st.Pending, st.Down = nil, nil
	return json.Marshal(st)
}

// UnmarshalState implements Stateful. It replaces the store observations
// and operator records; region tracks are replaced only by a document that
// carries them (one saved before they had their own), so the restore order
// of "history" and "history/regions" does not matter.
func (h *History) UnmarshalState(doc json.RawMessage) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var st historyState
	if err := json.Unmarshal(doc, &st); err != nil {
		h.reset()
		return fmt.Errorf("history state: %w", err)
	}
	h.st.Stores, h.st.Records, h.st.Truncated, h.st.Updated = map[uint64][]StorePoint{}, st.Records, st.Truncated, st.Updated
	if st.Stores != nil {
		h.st.Stores = st.Stores
	}
	if st.Pending != nil {
		h.st.Pending = st.Pending
	}
	if st.Down != nil {
		h.st.Down = st.Down
	}
	h.last = nil
	return nil
}

// States returns the History's two persisted documents: "history" (store
// observations, operator records) and "history/regions" (the region
// tracks, saved only when they change: Digester).
func (h *History) States() []Stateful { return []Stateful{h, historyRegions{h}} }

// historyRegions is the Stateful view of a History's region tracks.
type historyRegions struct{ h *History }

type regionTracks struct {
	Pending map[uint64]*RegionTrack `json:"pending"`
	Down    map[uint64]*RegionTrack `json:"down"`
}

// StateName implements Stateful.
func (r historyRegions) StateName() string { return "history/regions" }

// MarshalState implements Stateful.
func (r historyRegions) MarshalState() (json.RawMessage, error) {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	return json.Marshal(regionTracks{Pending: r.h.st.Pending, Down: r.h.st.Down})
}

// UnmarshalState implements Stateful.
func (r historyRegions) UnmarshalState(doc json.RawMessage) error {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	var st regionTracks
	if err := json.Unmarshal(doc, &st); err != nil {
		r.h.st.Pending, r.h.st.Down = map[uint64]*RegionTrack{}, map[uint64]*RegionTrack{}
		return fmt.Errorf("history regions state: %w", err)
	}
	r.h.st.Pending, r.h.st.Down = map[uint64]*RegionTrack{}, map[uint64]*RegionTrack{}
	if st.Pending != nil {
		r.h.st.Pending = st.Pending
	}
	if st.Down != nil {
		r.h.st.Down = st.Down
	}
	for _, t := range r.h.st.Down {
		// Saved at noOperatorQuantum (StateDigest): never earlier than
		// the live value was.
		if t.LastOperator != "" && !t.NoOperatorSince.IsZero() {
			t.NoOperatorSince = t.NoOperatorSince.Add(noOperatorQuantum)
		}
	}
	r.h.last = nil
	return nil
}

// noOperatorQuantum is the granularity at which a down region's
// NoOperatorSince enters StateDigest: it moves to "now" every cycle while
// PD runs (or recently finished) an operator on the region, and re-saving
// 10,000 tracks every cycle for that was the cost issue 17 measured. The
// saved value is therefore up to this much older than the live one, and
// UnmarshalState moves it forward by as much for regions that had an
// operator, so a restart never makes region_down_peer_unrepaired fire
// early (at most this much late).
const noOperatorQuantum = time.Minute

// StateDigest implements Digester: an order-independent fingerprint of
// every region track (a sum of per-track hashes; NoOperatorSince at
// noOperatorQuantum), no allocation.
func (r historyRegions) StateDigest() uint64 {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	sum := uint64(len(r.h.st.Pending))<<32 ^ uint64(len(r.h.st.Down))
	add := func(kind, id uint64, t *RegionTrack) {
		x := mix64(kind ^ id*0x9e3779b97f4a7c15)
		x = mix64(x ^ uint64(t.PendingSince.UnixNano()))
		x = mix64(x ^ uint64(t.DownSince.UnixNano()))
		x = mix64(x ^ uint64(t.NoOperatorSince.Truncate(noOperatorQuantum).UnixNano()))
		for _, s := range t.PendingStores {
			x = mix64(x ^ s)
		}
		for i := 0; i < len(t.LastOperator); i++ {
			x = mix64(x ^ uint64(t.LastOperator[i]))
		}
		sum += x
	}
	for id, t := range r.h.st.Pending {
		add(1, id, t)
	}
	for id, t := range r.h.st.Down {
		add(2, id, t)
	}
	return sum
}

// mix64 is splitmix64's finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// observe records s at now, once per snapshot. The caller holds h.mu.
func (h *History) observe(s *tikv.Snapshot, now time.Time) {
	if s == nil || s == h.last {
		return
	}
	h.last = s
	ref := refTime(s, now)
	down := map[uint64]int{}
	pending := map[uint64]int{}
	maxDown := map[uint64]uint64{}
	for _, r := range s.Checks[tikv.CheckDownPeer] {
		for _, d := range r.DownPeers {
			down[d.Peer.StoreID]++
			maxDown[d.Peer.StoreID] = max(maxDown[d.Peer.StoreID], d.DownSeconds)
		}
	}
	for _, r := range s.Checks[tikv.CheckPendingPeer] {
		for _, p := range r.PendingPeers {
			pending[p.StoreID]++
		}
	}
	seen := map[uint64]bool{}
	for i := range s.Stores {
		st := &s.Stores[i]
		id := st.Store.ID
		seen[id] = true
		p := StorePoint{At: now.UTC(), State: st.Store.StateName, LeaderCount: st.Status.LeaderCount,
			RegionCount: st.Status.RegionCount, DownPeers: down[id], PendingPeers: pending[id], MaxDownSeconds: maxDown[id]}
		if age, ok := heartbeatAge(st, ref); ok {
			p.HeartbeatAgeSeconds = seconds(age)
		}
		pts := append(h.st.Stores[id], p)
		if len(pts) > historyStorePoints {
			pts = append([]StorePoint(nil), pts[len(pts)-historyStorePoints:]...)
		}
		h.st.Stores[id] = pts
	}
	for id, pts := range h.st.Stores {
		if !seen[id] && (len(pts) == 0 || now.Sub(pts[len(pts)-1].At) > historyForgetStore) {
			delete(h.st.Stores, id)
		}
	}

	// Pending peers: only when the check was read.
	if _, failed := s.Errors[tikv.SourceCheck(tikv.CheckPendingPeer)]; !failed {
		cur := map[uint64]bool{}
		for i := range s.Checks[tikv.CheckPendingPeer] {
			r := &s.Checks[tikv.CheckPendingPeer][i]
			cur[r.ID] = true
			t, ok := h.st.Pending[r.ID]
			if !ok {
				if len(h.st.Pending) >= historyMaxRegions {
					h.st.Truncated = true
					continue
				}
				t = &RegionTrack{PendingSince: now.UTC()}
				h.st.Pending[r.ID] = t
			}
			t.PendingStores = t.PendingStores[:0]
			for _, p := range r.PendingPeers {
				t.PendingStores = append(t.PendingStores, p.StoreID)
			}
		}
		for id := range h.st.Pending {
			if !cur[id] {
				delete(h.st.Pending, id)
			}
		}
	}

	// Down peers and PD's operators on those regions.
	_, downFailed := s.Errors[tikv.SourceCheck(tikv.CheckDownPeer)]
	_, opsFailed := s.Errors[tikv.SourceOperators]
	if !downFailed {
		ops := map[uint64]string{}
		for _, op := range s.Operators {
			ops[op.RegionID] = op.Desc
		}
		for _, rec := range s.OperatorRecords {
			if _, ok := ops[rec.RegionID]; !ok && rec.Outcome != pd.RecordTimeout {
				ops[rec.RegionID] = rec.Desc
			}
		}
		cur := map[uint64]bool{}
		for i := range s.Checks[tikv.CheckDownPeer] {
			r := &s.Checks[tikv.CheckDownPeer][i]
			cur[r.ID] = true
			t, ok := h.st.Down[r.ID]
			if !ok {
				if len(h.st.Down) >= historyMaxRegions {
					h.st.Truncated = true
					continue
				}
				t = &RegionTrack{DownSince: now.UTC(), NoOperatorSince: now.UTC()}
				h.st.Down[r.ID] = t
			}
			if opsFailed {
				continue // unknown: keep the track as it is
			}
			if desc, ok := ops[r.ID]; ok {
				t.NoOperatorSince, t.LastOperator = now.UTC(), truncateText(desc, 100)
			}
		}
		for id := range h.st.Down {
			if !cur[id] {
				delete(h.st.Down, id)
			}
		}
	}

	// Finished operators, deduplicated.
	if len(s.OperatorRecords) > 0 {
		type rk struct {
			region uint64
			desc   string
			create time.Time
			finish time.Time
		}
		have := make(map[rk]bool, len(h.st.Records))
		for _, r := range h.st.Records {
			have[rk{r.RegionID, r.Desc, r.CreateAt, r.FinishAt}] = true
		}
		for _, r := range s.OperatorRecords {
			k := rk{r.RegionID, r.Desc, r.CreateAt, r.FinishAt}
			if have[k] {
				continue
			}
			have[k] = true
			if r.FinishAt.IsZero() {
				r.FinishAt = ref.UTC()
			}
			h.st.Records = append(h.st.Records, r)
		}
	}
	cut := 0
	for cut < len(h.st.Records) && ref.Sub(h.st.Records[cut].FinishAt) > historyRecordsAge {
		cut++
	}
	if n := len(h.st.Records) - cut; n > historyMaxRecords {
		cut = len(h.st.Records) - historyMaxRecords
	}
	if cut > 0 {
		h.st.Records = append([]pd.OperatorRecord(nil), h.st.Records[cut:]...)
	}
	sort.SliceStable(h.st.Records, func(i, j int) bool { return h.st.Records[i].FinishAt.Before(h.st.Records[j].FinishAt) })
	h.st.Updated = now.UTC()
}

// Observe records s at now (once per snapshot; later calls with the same
// snapshot do nothing). Invariants that use the History call it
// themselves; it is exported for tools that replay snapshots.
func (h *History) Observe(s *tikv.Snapshot, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.observe(s, now)
}

// StorePoints returns a copy of the observations of store id, oldest
// first.
func (h *History) StorePoints(id uint64) []StorePoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]StorePoint(nil), h.st.Stores[id]...)
}

// Records returns a copy of the finished operators kept, oldest first.
func (h *History) Records() []pd.OperatorRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]pd.OperatorRecord(nil), h.st.Records...)
}

// truncateText bounds untrusted text from PD.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
