package invariant

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// defaultMaxReplicas is PD's replication.max-replicas default.
const defaultMaxReplicas = 3

// tikvPlacement counts the TiKV stores (TiFlash excluded) by state for
// replica arithmetic. Stores with state_name Up or Disconnected hold
// replicas (PD does not replace the replicas of a Disconnected store until
// it is Down); Offline and Down stores are leaving. New replicas can only
// go to targets: Up stores that are not low on space (PD's placement
// filters refuse Disconnected and low-space stores as targets).
type tikvPlacement struct {
	up, disconnected, down, offline, lowSpace []uint64
	tiflash                                   int
}

// holding returns the number of stores that hold replicas (Up + Disconnected).
func (p tikvPlacement) holding() int { return len(p.up) + len(p.disconnected) }

// targets returns the number of Up stores that can receive new replicas.
func (p tikvPlacement) targets() int { return len(p.up) - len(p.lowSpace) }

func placement(s *tikv.Snapshot) tikvPlacement {
	ratio := s.Schedule.LowSpaceRatio
	if ratio <= 0 {
		ratio = DefaultLowSpaceRatio
	}
	var p tikvPlacement
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.IsTiFlash() {
			p.tiflash++
			continue
		}
		switch {
		case st.Store.StateName == pd.StateOffline || st.Store.NodeState == pd.NodeRemoving:
			p.offline = append(p.offline, st.Store.ID)
		case st.Store.StateName == pd.StateUp:
			p.up = append(p.up, st.Store.ID)
			if pdIsLowSpace(st, ratio) {
				p.lowSpace = append(p.lowSpace, st.Store.ID)
			}
		case st.Store.StateName == pd.StateDisconnected:
			p.disconnected = append(p.disconnected, st.Store.ID)
		case st.Store.StateName == pd.StateDown:
			p.down = append(p.down, st.Store.ID)
		}
	}
	return p
}

// pdIsLowSpace is PD's IsLowSpace (pkg/core/store.go) with PD's own
// exemptions: capacity 0, or fewer than 100 regions and more than 8 GiB
// available.
func pdIsLowSpace(st *pd.StoreInfo, lowSpaceRatio float64) bool {
	capacity, avail := uint64(st.Status.Capacity), uint64(st.Status.Available)
	if capacity == 0 || (st.Status.RegionCount < DefaultLowSpaceMinRegionCount && avail > DefaultLowSpaceMinAvailableBytes) {
		return false
	}
	return float64(avail)/float64(capacity) < 1-lowSpaceRatio
}

func (p tikvPlacement) evidence(ev map[string]any) {
	ev["up_store_ids"] = nonNil(p.up)
	ev["disconnected_store_ids"] = nonNil(p.disconnected)
	ev["down_store_ids"] = nonNil(p.down)
	ev["offline_store_ids"] = nonNil(p.offline)
	ev["low_space_store_ids"] = nonNil(p.lowSpace)
	ev["up_tikv_stores"] = len(p.up)
	ev["replica_holding_tikv_stores"] = p.holding()
	ev["target_tikv_stores"] = p.targets()
	ev["tiflash_stores_excluded"] = p.tiflash
}

func nonNil(ids []uint64) []uint64 {
	if ids == nil {
		return []uint64{}
	}
	return ids
}

// maxReplicas returns replication.max-replicas, PD's default 3 when the
// snapshot has none, or a *SourceError if reading it failed.
func maxReplicas(name string, s *tikv.Snapshot) (uint64, error) {
	if s.Replication.MaxReplicas > 0 {
		return s.Replication.MaxReplicas, nil
	}
	if err := needSources(name, s, tikv.SourceReplication); err != nil {
		return 0, err
	}
	return defaultMaxReplicas, nil
}

// UpStoresBelowReplicas (up_stores_below_max_replicas, pingcap/tidb#10619) is
// violated when fewer TiKV stores hold replicas than
// replication.max-replicas: stores with state_name Up or Disconnected count
// (a Disconnected store keeps its replicas until it is Down, so a store
// restart does not trip it), TiFlash, Offline and Down stores do not.
// Regions then stay under-replicated and no drain can finish. Critical;
// subject "cluster". Constructed by Default.
type UpStoresBelowReplicas struct{ base }

// Eval implements Invariant.
func (inv *UpStoresBelowReplicas) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	want, err := maxReplicas(inv.name, s)
	if err != nil {
		return nil, err
	}
	p := placement(s)
	if uint64(p.holding()) >= want {
		return nil, nil
	}
	ev := map[string]any{"max_replicas": want, "threshold": want}
	p.evidence(ev)
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Critical,
		Summary: fmt.Sprintf("only %d Up TiKV stores for max-replicas %d (down %v, offline %v)",
			p.holding(), want, nonNil(p.down), nonNil(p.offline)),
		Evidence: ev,
	}}, nil
}

// StoreOfflineStuck (store_offline_stuck, pingcap/tidb#10619, pingcap/tidb-ansible#632, tikv/tikv#18771) is an
// Offline (Removing) store that still has regions and whose region_count
// has not fallen for After. It is stateful: it remembers, per store, the
// lowest region_count seen and when it was last lowered, using the
// evaluation time passed to Eval, so one value must live as long as the
// monitor. When fewer target stores (Up TiKV stores not low on space, PD's
// placement filters) than max-replicas remain, the drain cannot finish at
// all (PD has nowhere to put the replicas: fixture A2) and the violation is
// reported at once, critical; otherwise warning. Evidence has
// region_count, how long it has been unchanged, Up TiKV stores vs
// max-replicas and PD's removal progress when known. Create it with
// NewStoreOfflineStuck or Default.
type StoreOfflineStuck struct {
	base
	// After is how long region_count may stay flat before the drain counts
	// as stuck.
	After time.Duration

	mu     sync.Mutex
	tracks map[uint64]offlineTrack
}

type offlineTrack struct {
	lowest int       // lowest region_count seen
	since  time.Time // when lowest was last lowered (or first seen)
	first  time.Time // when the store was first seen Offline
}

// NewStoreOfflineStuck returns a store_offline_stuck invariant with pending
// duration pending and stuck window after.
func NewStoreOfflineStuck(pending, after time.Duration) *StoreOfflineStuck {
	return &StoreOfflineStuck{base: base{name: NameStoreOfflineStuck, pending: pending}, After: after,
		tracks: map[uint64]offlineTrack{}}
}

// Eval implements Invariant. It is safe for concurrent use.
func (inv *StoreOfflineStuck) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	want, err := maxReplicas(inv.name, s)
	if err != nil {
		return nil, err
	}
	p := placement(s)
	cannotFinish := uint64(p.targets()) < want
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.tracks == nil {
		inv.tracks = map[uint64]offlineTrack{}
	}
	ref := refTime(s, now)
	seen := map[uint64]bool{}
	var out []Violation
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.IsTiFlash() || !(st.Store.StateName == pd.StateOffline || st.Store.NodeState == pd.NodeRemoving) {
			continue
		}
		id, count := st.Store.ID, st.Status.RegionCount
		seen[id] = true
		tr, ok := inv.tracks[id]
		switch {
		case !ok:
			tr = offlineTrack{lowest: count, since: now, first: now}
		case count < tr.lowest:
			tr.lowest, tr.since = count, now
		}
		inv.tracks[id] = tr
		if count == 0 {
			continue // PD buries it within 10s
		}
		flat := now.Sub(tr.since)
		if !cannotFinish && flat < inv.After {
			continue
		}
		ev := storeEvidence(st, ref)
		ev["unchanged_since"] = tr.since.UTC().Format(time.RFC3339Nano)
		ev["unchanged_seconds"] = seconds(flat)
		ev["lowest_region_count"] = tr.lowest
		ev["watched_seconds"] = seconds(now.Sub(tr.first))
		ev["threshold_seconds"] = seconds(inv.After)
		ev["max_replicas"] = want
		ev["cannot_finish"] = cannotFinish
		p.evidence(ev)
		if pr, ok := s.Progress[id]; ok {
			ev["progress"] = pr.Progress
			ev["current_speed_mib_per_sec"] = pr.CurrentSpeed
			ev["left_seconds"] = pr.LeftSeconds
		}
		sev := ticket.Warning
		why := fmt.Sprintf("region_count %d unchanged for %s (> %s)", count, flat.Round(time.Second), inv.After)
		if cannotFinish {
			sev = ticket.Critical
			why = fmt.Sprintf("region_count %d and only %d Up TiKV stores with free space for max-replicas %d: the drain cannot finish",
				count, p.targets(), want)
		}
		out = append(out, Violation{
			Subject:  StoreSubject(id),
			Severity: sev,
			Summary:  fmt.Sprintf("store %d is Offline but not draining: %s", id, why),
			Evidence: ev,
		})
	}
	for id := range inv.tracks {
		if !seen[id] {
			delete(inv.tracks, id)
		}
	}
	return out, nil
}

// TombstonePileup (tombstone_pileup, pingcap/tidb-operator#124, tikv/pd#4422) is violated when PD
// keeps more than MaxRecords Tombstone store records (GET
// /stores/check?state=tombstone); PD only GCs them after 30 days and
// address-based tooling can pick the wrong one. Evidence lists the ids and
// addresses used by more than one record (or by a live store). Warning;
// subject "cluster". Constructed by Default.
type TombstonePileup struct {
	base
	MaxRecords int
}

// Eval implements Invariant.
func (inv *TombstonePileup) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, tikv.SourceTombstones); err != nil {
		return nil, err
	}
	if len(s.Tombstones) <= inv.MaxRecords {
		return nil, nil
	}
	byAddr := map[string]int{}
	ids := make([]uint64, 0, len(s.Tombstones))
	for i := range s.Tombstones {
		byAddr[s.Tombstones[i].Store.Address]++
		ids = append(ids, s.Tombstones[i].Store.ID)
	}
	for i := range s.Stores {
		if _, ok := byAddr[s.Stores[i].Store.Address]; ok {
			byAddr[s.Stores[i].Store.Address]++
		}
	}
	dups := []string{}
	for a, n := range byAddr {
		if n > 1 && a != "" {
			dups = append(dups, a)
		}
	}
	sort.Strings(dups)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Warning,
		Summary:  fmt.Sprintf("%d Tombstone store records (> %d) waiting for remove-tombstone", len(s.Tombstones), inv.MaxRecords),
		Evidence: map[string]any{
			"tombstone_count":     len(s.Tombstones),
			"threshold":           inv.MaxRecords,
			"tombstone_store_ids": ids,
			"duplicate_addresses": dups,
		},
	}}, nil
}

type offlineTrackJSON struct {
	Lowest int       `json:"lowest"`
	Since  time.Time `json:"since"`
	First  time.Time `json:"first"`
}

// StateName implements Stateful: the per-store drain history.
func (inv *StoreOfflineStuck) StateName() string { return "invariant/" + NameStoreOfflineStuck }

// MarshalState implements Stateful.
func (inv *StoreOfflineStuck) MarshalState() (json.RawMessage, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	out := make(map[string]offlineTrackJSON, len(inv.tracks))
	for id, tr := range inv.tracks {
		out[idKey(id)] = offlineTrackJSON{Lowest: tr.lowest, Since: tr.since.UTC(), First: tr.first.UTC()}
	}
	return json.Marshal(out)
}

// UnmarshalState implements Stateful.
func (inv *StoreOfflineStuck) UnmarshalState(doc json.RawMessage) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.tracks = map[uint64]offlineTrack{}
	var in map[string]offlineTrackJSON
	if err := json.Unmarshal(doc, &in); err != nil {
		return fmt.Errorf("%s state: %w", NameStoreOfflineStuck, err)
	}
	for k, tr := range in {
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return fmt.Errorf("%s state: store id %q: %w", NameStoreOfflineStuck, k, err)
		}
		inv.tracks[id] = offlineTrack{lowest: tr.Lowest, since: tr.Since, first: tr.First}
	}
	return nil
}
