package invariant

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
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

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// offlineFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var offlineFamilies = map[string]family{
	// A drain that cannot finish: cancel it (only for a store that still
	// heartbeats), or speed it up by moving its leaders first.
	NameStoreOfflineStuck:     {storeOfflineStuck, []string{tikv.ActionCancelDrain, tikv.ActionEvictLeader}},
	NameUpStoresBelowReplicas: {upStoresBelowReplicas, []string{tikv.ActionCancelDrain}},
	NameTombstonePileup:       {tombstonePileup, []string{actionRemoveTombstones}},
}

// noForce is said wherever a drain is involved: a forced removal marks the
// store physically destroyed and skips PD's replica checks.
const noForce = "Never force the removal (DELETE /store/{id}?force=true, tiup --force): it marks the store physically destroyed, skips PD's replica safety check and can lose data."

// cancelDrainRisks are the risks of cancel_drain on store id.
func cancelDrainRisks(id uint64) []string {
	return []string{
		fmt.Sprintf("Store %d becomes a normal Up member again and keeps its replicas and leaders; drain it again only once enough other TiKV stores are Up.", id),
		fmt.Sprintf("If the machine behind store %d is already being torn down (disks wiped, host returned), bringing the store Up does not help: add a TiKV store instead and let the drain finish.", id),
		noForce,
	}
}

// storeOfflineStuck (store_offline_stuck, pingcap/tidb#10619, pingcap/tidb-ansible#632, tikv/tikv#18771, tikv/tikv#9918, tikv/pd#3730).
func storeOfflineStuck(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	d := &diagnose.Diagnosis{}
	s, ok := f.store(id)
	if !ok || !isOffline(s) {
		state := "no longer listed (Tombstone: the drain finished)"
		if ok {
			state = s.Store.StateName
		}
		d.Summary = fmt.Sprintf("store %d is %s", id, state)
		d.RootCause = "The store is no longer Offline: the drain finished or was cancelled since the ticket fired."
		d.Evidence = []string{fmt.Sprintf("store %d in GET /pd/api/v1/stores: %s", id, state)}
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{"None from the drain itself; if it was cancelled, the store is a normal member again."}
		d.NoActionReason = page("the drain of store %d is no longer stuck (store is %s); nothing to do", id, state)
		return d
	}
	mr := f.maxReplicas()
	targets := f.targets()
	up := f.upTiKV()
	offline := f.offlineTiKV()
	unchanged, _ := f.ev.float("unchanged_seconds")
	regions := f.regionsOnStore(id)
	lost := f.lostQuorum(regions)
	d.Summary = fmt.Sprintf("store %d is Offline but not draining: %d regions left", id, s.Status.RegionCount)
	d.Evidence = []string{
		storeLine(s),
		fmt.Sprintf("Up TiKV stores: %s; able to take replicas (not low on space): %s; max-replicas %d (GET /pd/api/v1/config/replicate)", idList(up), idList(targets), mr),
		fmt.Sprintf("Offline TiKV stores: %s", idList(offline)),
	}
	if unchanged > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("region_count unchanged for %s when the ticket fired", roundDur(time.Duration(unchanged*float64(time.Second)))))
	}
	if p, ok := f.ev.float("progress"); ok {
		d.Evidence = append(d.Evidence, fmt.Sprintf("PD removal progress %s (GET /pd/api/v1/stores/progress?id=%d)", pct(p), id))
	}
	if len(regions) > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("%d of its regions examined (GET /pd/api/v1/regions/store/%d); without a majority of live voters: %s", len(regions), id, idList(lost)))
	}
	if s.Store.PhysicallyDestroyed {
		d.RootCause = fmt.Sprintf("Store %d was removed with force (physically_destroyed): PD will not bring it back, and the drain needs %d stores able to take replicas (%d now).", id, mr, len(targets))
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"Regions that had a replica on the store run with one fewer until PD can place it elsewhere."}
		d.NoActionReason = page("store %d is physically destroyed and cannot be brought back; add TiKV stores so PD can re-create its replicas", id)
		return d
	}
	if nl := leaderless(regions); len(nl) > 0 {
		d.RootCause = fmt.Sprintf("Regions %s with a peer on store %d have no leader: PD can run no operator on them, so the drain cannot move them (PD's region_count only counts regions whose leader reports, so the store can look empty while they remain).", idList(regionIDs(nl)), id)
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"These regions are unavailable until a majority of their voters return.", noForce}
		d.NoActionReason = leaderlessPage(nl)
		return d
	}
	if len(targets) < mr {
		why := fmt.Sprintf("only %d Up TiKV stores", len(up))
		if len(targets) < len(up) {
			why = fmt.Sprintf("only %d Up TiKV stores with free space (%d Up, the others low on space)", len(targets), len(up))
		}
		d.RootCause = fmt.Sprintf("The drain of store %d cannot finish: every region needs %d replicas on distinct stores, and PD has %s to put them on, so it never moves the last replicas off store %d (pingcap/tidb#10619: \"you only have two tikv nodes but need at least three replicas\"; PD logs \"no extra up node has enough space\").", id, mr, why, id)
		d.Confidence = diagnose.ConfidenceHigh
		if alive, hb := f.heartbeating(s); !alive {
			d.Evidence = append(d.Evidence, hb)
			d.Risks = []string{noForce}
			d.NoActionReason = page("the drain of store %d cannot finish, but cancelling it would not help: %s, so its process or data may be gone; add TiKV stores (scale out) so PD can re-create its replicas elsewhere", id, hb)
			return d
		} else {
			d.Evidence = append(d.Evidence, hb)
		}
		d.ProposedAction = propose(tikv.ActionCancelDrain, map[string]any{"store_id": id}, action.Soon,
			"Cancel the decommission of store %d (back to Up, pd-ctl store cancel-delete): its drain cannot finish with %s for max-replicas %d, and meanwhile its %d regions depend on a store that is on its way out. The other way is to add a TiKV store (scale out) first, then PD finishes the drain by itself.",
			id, why, mr, s.Status.RegionCount)
		d.Risks = cancelDrainRisks(id)
		if len(offline) > 1 {
			d.Risks = append(d.Risks, fmt.Sprintf("Stores %s are all Offline: drain them one at a time (pingcap/tidb-ansible#632).", idList(offline)))
		}
		return d
	}
	if len(lost) > 0 {
		d.RootCause = fmt.Sprintf("Regions %s on store %d no longer have a majority of live voters: PD cannot change their membership (a conf change needs a quorum), so they cannot move off the store (tikv/tikv#18771 (b)).", idList(lost), id)
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"These regions are unavailable or one failure away from it; do not remove store " + fmt.Sprint(id) + "'s process.", noForce}
		d.NoActionReason = page("regions %s lost their quorum; bring their other stores back up (unsafe recovery, pd-ctl unsafe remove-failed-stores, only as a last resort with PingCAP's guidance)", idList(lost))
		return d
	}
	if s.Status.LeaderCount > 0 && !f.evicted[id] {
		d.RootCause = fmt.Sprintf("PD has enough stores to place the replicas, but store %d still leads %d regions: as leader it must generate every snapshot for the replicas being moved away, and TiKV's snapshot IO limit makes the add-learner steps time out (tikv/tikv#9918, tikv/pd#3730fixed by moving the leader first in PD#3730).", id, s.Status.LeaderCount)
		d.Confidence = diagnose.ConfidenceMedium
		d.ProposedAction = propose(tikv.ActionEvictLeader, map[string]any{"store_id": id}, action.WhenConvenient,
			"Move the %d leaders off store %d (evict-leader-scheduler), the documented way to speed up a drain: the other replicas then send the snapshots, and store %d is being removed anyway.",
			s.Status.LeaderCount, id, id)
		d.Risks = []string{
			"The other stores take over the reads and writes of these leaders.",
			fmt.Sprintf("The evict-leader scheduler stays after the drain: remove it (remove_evict_leader %d) once the store is Tombstone, or it lingers (pingcap/tidb-operator#4483, pingcap/tiup#369).", id),
			noForce,
		}
		return d
	}
	d.RootCause = fmt.Sprintf("PD has %d stores able to take replicas for max-replicas %d and the examined regions have a quorum, yet region_count does not fall: replica operators may be timing out, replica-schedule-limit (%d) or store limits may throttle them, or placement rules/location labels leave no valid target.", len(targets), mr, f.c.Schedule.ReplicaScheduleLimit)
	d.Confidence = diagnose.ConfidenceLow
	d.Risks = []string{noForce}
	d.NoActionReason = page("check PD's operators for store %d's regions (pd-ctl operator show, operator timeouts in the PD log), placement rules (pd-ctl config placement-rules show) and store limits (pd-ctl store limit)", id)
	return d
}

// upStoresBelowReplicas (up_stores_below_max_replicas, pingcap/tidb#10619):
// cancel the drain of an Offline store when one exists, else page.
func upStoresBelowReplicas(f *facts) *diagnose.Diagnosis {
	mr := f.maxReplicas()
	up := f.upTiKV()
	disc := f.tikvIn(pd.StateDisconnected)
	down := f.tikvIn(pd.StateDown)
	offline := f.offlineTiKV()
	holding := len(up) + len(disc)
	d := &diagnose.Diagnosis{
		Summary: fmt.Sprintf("only %d TiKV stores hold replicas for max-replicas %d", holding, mr),
		Evidence: []string{
			fmt.Sprintf("max-replicas %d (GET /pd/api/v1/config/replicate)", mr),
			fmt.Sprintf("TiKV stores: Up %s; Disconnected %s; Down %s; Offline %s", idList(up), idList(disc), idList(down), idList(offline)),
		},
	}
	if f.c.Snapshot != nil {
		if n := len(f.c.Snapshot.Checks[tikv.CheckMissPeer]); n > 0 {
			d.Evidence = append(d.Evidence, fmt.Sprintf("%d regions miss a replica (GET /pd/api/v1/regions/check/miss-peer)", n))
		}
	}
	if holding >= mr {
		d.Summary = fmt.Sprintf("%d TiKV stores hold replicas again for max-replicas %d", holding, mr)
		d.RootCause = "Enough TiKV stores are Up or only briefly disconnected; the condition of the ticket no longer holds."
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("the condition is gone; nothing to do")
		return d
	}
	// The Offline store holding the most regions is the one whose return
	// restores the most replicas.
	cands := append([]uint64(nil), offline...)
	sort.SliceStable(cands, func(i, j int) bool {
		return f.stores[cands[i]].Status.RegionCount > f.stores[cands[j]].Status.RegionCount
	})
	var silent []string
	for _, id := range cands {
		s := f.stores[id]
		if s.Store.PhysicallyDestroyed {
			continue
		}
		if alive, hb := f.heartbeating(s); !alive {
			silent = append(silent, hb)
			continue
		}
		d.Evidence = append(d.Evidence, storeLine(s))
		d.RootCause = fmt.Sprintf("Store %d is being drained although only %d TiKV stores would remain for max-replicas %d: PD cannot place every region's replicas on distinct stores, so regions stay under-replicated and the drain can never finish (pingcap/tidb#10619).", id, holding, mr)
		d.Confidence = diagnose.ConfidenceHigh
		enough := fmt.Sprintf("with it, %d TiKV stores hold replicas for max-replicas %d", holding+1, mr)
		if holding+1 < mr {
			enough = fmt.Sprintf("that keeps its replicas, but only %d TiKV stores then hold replicas for max-replicas %d: %d more must be added or brought back", holding+1, mr, mr-holding-1)
		}
		d.ProposedAction = propose(tikv.ActionCancelDrain, map[string]any{"store_id": id}, action.Soon,
			"Cancel the decommission of store %d (back to Up): %s. The other way is to add a TiKV store (scale out) first, then PD finishes the drain by itself.",
			id, enough)
		d.Risks = cancelDrainRisks(id)
		return d
	}
	var cause []string
	if len(silent) > 0 {
		d.Evidence = append(d.Evidence, "Offline stores not brought back (cancel_drain needs a store that heartbeats): "+strings.Join(silent, "; "))
	}
	if len(down)+len(disc) > 0 {
		cause = append(cause, fmt.Sprintf("Stores %s are Down or Disconnected: PD cannot re-create their replicas because too few stores are left.", idList(append(append([]uint64(nil), down...), disc...))))
	}
	cause = append(cause, fmt.Sprintf("max-replicas %d needs at least %d TiKV stores; if it was raised above the number of stores by mistake, lowering it is a configuration decision for a human.", mr, mr))
	d.RootCause = strings.Join(cause, " ")
	d.Confidence = diagnose.ConfidenceHigh
	d.Risks = []string{"Every region runs with fewer replicas than configured: one more store failure can cost regions their quorum.", noForce}
	d.NoActionReason = page("no Offline store to bring back; bring the Down stores back or add TiKV stores (scale out)")
	return d
}

// tombstonePileup (tombstone_pileup, pingcap/tidb-operator#124, tikv/pd#4422): page; the cleanup is
// DELETE /stores/remove-tombstone, which the catalog does not offer.
func tombstonePileup(f *facts) *diagnose.Diagnosis {
	n, _ := f.ev.uint("tombstone_count")
	ids := f.ev.ids("tombstone_store_ids")
	dupList := f.ev.strs("duplicate_addresses")
	d := &diagnose.Diagnosis{
		Summary:  fmt.Sprintf("%d Tombstone store records are kept by PD", n),
		Evidence: []string{fmt.Sprintf("Tombstone stores (GET /pd/api/v1/stores/check?state=tombstone): %s", idList(ids))},
		RootCause: "PD keeps the record of every removed store until someone runs remove-tombstone (or for 30 days); scale-in/scale-out cycles pile them up, and tooling that looks stores up by address can pick a Tombstone record that shares the address of a live store (pingcap/tidb-operator#124, tikv/pd#4422). " +
			"PD 4.0.13 had a bug where remove-tombstone silently skipped records (tikv/pd#4422).",
		Confidence: diagnose.ConfidenceHigh,
		Risks:      []string{"Low: Tombstone records hold no data. Removing them only changes what store lists show."},
	}
	if len(dupList) > 0 {
		d.Evidence = append(d.Evidence, "addresses used by more than one record: "+strings.Join(dupList, ", ")+" (always pick the highest store id per address)")
	}
	d.NoActionReason = page("run pd-ctl store remove-tombstone (DELETE /pd/api/v1/stores/remove-tombstone; not in the action catalog), then re-read the list: if records survive on PD 4.0.13, upgrade PD")
	return d
}
