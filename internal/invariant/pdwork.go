package invariant

// Invariants that judge over time and watch PD's own work (issue 11 §2):
// they read PD's operators (GET /operators, /operators/records), the
// regions PD's check endpoints already flag, the bounded region lists of
// small Offline stores, and the shared History. None lists all regions.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// flaggedRegions returns the regions of every check list and of the
// Offline stores' region lists, once each, in ascending id order.
func flaggedRegions(s *tikv.Snapshot) []*pd.Region {
	seen := map[uint64]*pd.Region{}
	for _, name := range tikv.CollectChecks {
		for i := range s.Checks[name] {
			r := &s.Checks[name][i]
			if _, ok := seen[r.ID]; !ok {
				seen[r.ID] = r
			}
		}
	}
	for _, id := range sortedIDs(s.StoreRegions) {
		list := s.StoreRegions[id]
		for i := range list {
			if _, ok := seen[list[i].ID]; !ok {
				seen[list[i].ID] = &list[i]
			}
		}
	}
	out := make([]*pd.Region, 0, len(seen))
	for _, id := range sortedIDs(seen) {
		out = append(out, seen[id])
	}
	return out
}

func peerStoreIDs(r *pd.Region) []uint64 {
	ids := make([]uint64, 0, len(r.Peers))
	for _, p := range r.Peers {
		ids = append(ids, p.StoreID)
	}
	return ids
}

// RegionNoLeader (region_no_leader) is violated by regions PD knows
// without a leader (leader.store_id 0: no leader has reported since PD
// loaded them, e.g. every voter's store is gone). Regions are found where
// they are cheap: PD's /regions/check/* lists and the region lists of
// small Offline stores (tikv.Snapshot.StoreRegions); a leaderless region
// referenced by neither is invisible here. No operator can run on such a
// region: page a human with the ids, key ranges and sizes. Critical;
// subject "cluster". Constructed by Default.
type RegionNoLeader struct {
	base
	Samples int
}

// Eval implements Invariant.
func (inv *RegionNoLeader) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	var none []*pd.Region
	for _, r := range flaggedRegions(s) {
		if !r.HasLeader() {
			none = append(none, r)
		}
	}
	if len(none) == 0 {
		return nil, nil
	}
	samples := []map[string]any{}
	ids := []uint64{}
	for i, r := range none {
		ids = append(ids, r.ID)
		if inv.Samples > 0 && i >= inv.Samples {
			continue
		}
		samples = append(samples, map[string]any{
			"region_id": r.ID, "start_key": r.StartKey, "end_key": r.EndKey,
			"approximate_size_mib": r.ApproximateSize, "peer_store_ids": peerStoreIDs(r),
			"epoch": map[string]uint64{"conf_ver": r.Epoch.ConfVer, "version": r.Epoch.Version},
		})
	}
	if inv.Samples > 0 && len(ids) > inv.Samples {
		ids = ids[:inv.Samples]
	}
	unread := []string{}
	for src := range s.Errors {
		if strings.HasPrefix(src, "regions/") {
			unread = append(unread, src)
		}
	}
	sort.Strings(unread)
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Critical,
		Summary: fmt.Sprintf("%d regions have no leader in PD (e.g. region %d, peers on stores %v); no operator can run on them",
			len(none), none[0].ID, peerStoreIDs(none[0])),
		Evidence: map[string]any{
			"region_count":      len(none),
			"threshold":         0,
			"sample_region_ids": ids,
			"samples":           samples,
			"searched":          "PD /regions/check/* lists and /regions/store/{id} of Offline stores with <= " + strconv.Itoa(tikv.StoreRegionsReadLimit) + " regions",
			"unread_sources":    unread,
		},
	}}, nil
}

// RegionDownPeerUnrepaired (region_down_peer_unrepaired) is violated by
// regions with down peers that PD is not repairing: PD replaces a down
// peer only once its store is Down (max-store-down-time), so a down peer
// on a store that is Up (still heartbeating) is never repaired, once its
// down_seconds (or the time History has seen it down: PD does not refresh
// down_seconds while the set of down peers stays the same) reach After; and a down peer on a store that is Down,
// Offline or gone is not being repaired when PD ran no operator on the
// region (GET /operators, /operators/records) for After (History).
// Critical; subject "cluster"; evidence per store and per reason.
// Constructed by Default.
type RegionDownPeerUnrepaired struct {
	base
	After   time.Duration
	Samples int
	h       *History
}

// States implements StateHolder.
func (inv *RegionDownPeerUnrepaired) States() []Stateful { return inv.h.States() }

// Eval implements Invariant.
func (inv *RegionDownPeerUnrepaired) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores, tikv.SourceCheck(tikv.CheckDownPeer)); err != nil {
		return nil, err
	}
	inv.h.mu.Lock()
	defer inv.h.mu.Unlock()
	inv.h.observe(s, now)
	_, opsFailed := s.Errors[tikv.SourceOperators]
	state := map[uint64]string{}
	for i := range s.Stores {
		state[s.Stores[i].Store.ID] = s.Stores[i].Store.StateName
	}
	upStore, noOp := []uint64{}, []uint64{}
	byStore := map[uint64]int{}
	for i := range s.Checks[tikv.CheckDownPeer] {
		r := &s.Checks[tikv.CheckDownPeer][i]
		var onUp, onGone bool
		// PD refreshes down_seconds only when the set of down peers
		// changes (SortedPeersStatsEqual compares peer ids), so the time
		// the monitor has seen the region down counts too.
		var seenDown time.Duration
		if t, ok := inv.h.st.Down[r.ID]; ok {
			seenDown = now.Sub(t.DownSince)
		}
		for _, d := range r.DownPeers {
			switch state[d.Peer.StoreID] {
			case pd.StateUp:
				if max(time.Duration(d.DownSeconds)*time.Second, seenDown) >= inv.After {
					onUp = true
					byStore[d.Peer.StoreID]++
				}
			case pd.StateDisconnected:
				// PD waits for Down; store_disconnected covers it.
			default:
				onGone = true
			}
		}
		if onUp {
			upStore = append(upStore, r.ID)
			continue
		}
		if onGone && !opsFailed {
			if t, ok := inv.h.st.Down[r.ID]; ok && now.Sub(t.NoOperatorSince) >= inv.After {
				noOp = append(noOp, r.ID)
				for _, d := range r.DownPeers {
					byStore[d.Peer.StoreID]++
				}
			}
		}
	}
	if len(upStore)+len(noOp) == 0 {
		return nil, nil
	}
	per := map[string]int{}
	for id, n := range byStore {
		per[idKey(id)] = n
	}
	sample := func(ids []uint64) []uint64 {
		if inv.Samples > 0 && len(ids) > inv.Samples {
			return ids[:inv.Samples]
		}
		return ids
	}
	why := []string{}
	if len(upStore) > 0 {
		why = append(why, fmt.Sprintf("%d with a down peer on an Up store (PD repairs only Down stores)", len(upStore)))
	}
	if len(noOp) > 0 {
		why = append(why, fmt.Sprintf("%d with no PD operator for %s", len(noOp), inv.After))
	}
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Critical,
		Summary:  fmt.Sprintf("%d regions have down peers PD is not repairing: %s", len(upStore)+len(noOp), strings.Join(why, "; ")),
		Evidence: map[string]any{
			"region_count":                  len(upStore) + len(noOp),
			"up_store_region_count":         len(upStore),
			"no_operator_region_count":      len(noOp),
			"sample_up_store_region_ids":    sample(upStore),
			"sample_no_operator_region_ids": sample(noOp),
			"unrepaired_peers_by_store":     per,
			"threshold_seconds":             seconds(inv.After),
			"operators_read":                !opsFailed,
			"pd_rule":                       "PD replaces a down peer only when its store is Down (max-store-down-time)",
		},
	}}, nil
}

// OperatorTimeouts (operator_timeouts) groups the operators PD finished
// with a timeout within Window (GET /operators/records, kept in History):
// a region with at least PerRegion timeouts is one violation (subject
// "region:ID"), a target store with at least PerStore timeouts another
// (subject "store:ID"): PD keeps retrying something that does not work.
// Warning. Constructed by Default.
type OperatorTimeouts struct {
	base
	Window              time.Duration
	PerRegion, PerStore int
	h                   *History
}

// States implements StateHolder.
func (inv *OperatorTimeouts) States() []Stateful { return inv.h.States() }

// Eval implements Invariant.
func (inv *OperatorTimeouts) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, tikv.SourceOperatorRecords); err != nil {
		return nil, err
	}
	inv.h.mu.Lock()
	inv.h.observe(s, now)
	ref := refTime(s, now)
	byRegion := map[uint64][]pd.OperatorRecord{}
	byStore := map[uint64][]pd.OperatorRecord{}
	for _, r := range inv.h.st.Records {
		if r.Outcome != pd.RecordTimeout || ref.Sub(r.FinishAt) > inv.Window {
			continue
		}
		byRegion[r.RegionID] = append(byRegion[r.RegionID], r)
		for _, st := range r.TargetStoreIDs {
			byStore[st] = append(byStore[st], r)
		}
	}
	inv.h.mu.Unlock()
	var out []Violation
	descs := func(rs []pd.OperatorRecord) []string {
		seen := map[string]bool{}
		var d []string
		for _, r := range rs {
			if !seen[r.Desc] && len(d) < 5 {
				seen[r.Desc] = true
				d = append(d, r.Desc)
			}
		}
		return d
	}
	for _, id := range sortedIDs(byRegion) {
		rs := byRegion[id]
		if inv.PerRegion <= 0 || len(rs) < inv.PerRegion {
			continue
		}
		out = append(out, Violation{
			Subject:  RegionSubject(id),
			Severity: ticket.Warning,
			Summary:  fmt.Sprintf("region %d: %d PD operators timed out within %s (%s)", id, len(rs), inv.Window, strings.Join(descs(rs), ", ")),
			Evidence: map[string]any{
				"region_id": id, "timeouts": len(rs), "threshold": inv.PerRegion, "window_seconds": seconds(inv.Window),
				"operators": descs(rs), "last_operator": rs[len(rs)-1].Text,
				"last_finish_at": rs[len(rs)-1].FinishAt.Format(time.RFC3339),
			},
		})
	}
	for _, id := range sortedIDs(byStore) {
		rs := byStore[id]
		if inv.PerStore <= 0 || len(rs) < inv.PerStore {
			continue
		}
		regions := map[uint64]bool{}
		for _, r := range rs {
			regions[r.RegionID] = true
		}
		out = append(out, Violation{
			Subject:  StoreSubject(id),
			Severity: ticket.Warning,
			Summary: fmt.Sprintf("store %d: %d PD operators targeting it timed out within %s on %d regions",
				id, len(rs), inv.Window, len(regions)),
			Evidence: map[string]any{
				"store_id": id, "timeouts": len(rs), "threshold": inv.PerStore, "window_seconds": seconds(inv.Window),
				"region_ids": firstN(sortedIDs(regions), 10), "operators": descs(rs),
			},
		})
	}
	return out, nil
}

func firstN(ids []uint64, n int) []uint64 {
	if len(ids) > n {
		return ids[:n]
	}
	return ids
}

// RegionPendingPeerStuck (region_pending_peer_stuck) is violated when a
// region has had a pending peer (GET /regions/check/pending-peer) for
// After without interruption, however few regions are affected (the
// count threshold of region_pending_peer is 100): a peer that never
// catches up. Warning; subject "cluster"; evidence per store.
// Constructed by Default.
type RegionPendingPeerStuck struct {
	base
	After   time.Duration
	Samples int
	h       *History
}

// States implements StateHolder.
func (inv *RegionPendingPeerStuck) States() []Stateful { return inv.h.States() }

// Eval implements Invariant.
func (inv *RegionPendingPeerStuck) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, tikv.SourceCheck(tikv.CheckPendingPeer)); err != nil {
		return nil, err
	}
	inv.h.mu.Lock()
	defer inv.h.mu.Unlock()
	inv.h.observe(s, now)
	var stuck []uint64
	byStore := map[uint64]int{}
	var oldest time.Time
	for id, t := range inv.h.st.Pending {
		if now.Sub(t.PendingSince) < inv.After {
			continue
		}
		stuck = append(stuck, id)
		for _, st := range t.PendingStores {
			byStore[st]++
		}
		if oldest.IsZero() || t.PendingSince.Before(oldest) {
			oldest = t.PendingSince
		}
	}
	if len(stuck) == 0 {
		return nil, nil
	}
	sort.Slice(stuck, func(i, j int) bool { return stuck[i] < stuck[j] })
	per := map[string]int{}
	for id, n := range byStore {
		per[idKey(id)] = n
	}
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Warning,
		Summary: fmt.Sprintf("%d regions have had a pending peer for more than %s (longest since %s)",
			len(stuck), inv.After, oldest.UTC().Format(time.RFC3339)),
		Evidence: map[string]any{
			"region_count":           len(stuck),
			"sample_region_ids":      firstN(stuck, max(inv.Samples, 1)),
			"pending_peers_by_store": per,
			"oldest_pending_since":   oldest.UTC().Format(time.RFC3339Nano),
			"threshold_seconds":      seconds(inv.After),
			"tracking_truncated":     inv.h.st.Truncated,
		},
	}}, nil
}

// StoreOfflineBlocked (store_offline_blocked) is an Offline (Removing)
// store whose drain cannot complete as PD counts it: either it stopped
// heartbeating (last heartbeat older than PD's 20 s Disconnected
// threshold; its leaders cannot move and its data may be gone, so never
// cancel the drain), critical; or PD shows region_count 0 but regions
// still have a peer on it (GET /regions/store/{id}: PD's region_count
// only counts regions whose leader reported, so PD will not bury it),
// warning. Subject "store:ID". Constructed by Default.
type StoreOfflineBlocked struct{ base }

// Eval implements Invariant.
func (inv *StoreOfflineBlocked) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	ref := refTime(s, now)
	var out []Violation
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName != pd.StateOffline {
			continue
		}
		id := st.Store.ID
		age, known := heartbeatAge(st, ref)
		stale := !known || age > pdDisconnectAfter
		regions, listed := s.StoreRegions[id]
		_, listFailed := s.Errors[tikv.SourceStoreRegions(id)]
		hidden := listed && st.Status.RegionCount == 0 && len(regions) > 0
		if !stale && !hidden {
			continue
		}
		ev := storeEvidence(st, ref)
		ev["heartbeat_stopped"] = stale
		ev["heartbeat_threshold_seconds"] = seconds(pdDisconnectAfter)
		ev["regions_listed"] = listed
		ev["regions_list_failed"] = listFailed
		if listed {
			var ids, leaderless []uint64
			for j := range regions {
				ids = append(ids, regions[j].ID)
				if !regions[j].HasLeader() {
					leaderless = append(leaderless, regions[j].ID)
				}
			}
			ev["regions_with_peer"] = len(regions)
			ev["sample_region_ids"] = firstN(ids, 10)
			ev["leaderless_region_ids"] = firstN(nonNil(leaderless), 10)
		}
		sev, why := ticket.Warning, fmt.Sprintf("PD counts 0 regions but %d regions still have a peer on it; PD will not bury it", len(regions))
		if stale {
			sev = ticket.Critical
			why = fmt.Sprintf("it stopped heartbeating (%s ago) while draining: its leaders cannot move and its data may be gone", age.Round(time.Second))
			if !known {
				why = "it never reported a heartbeat"
			}
		}
		out = append(out, Violation{
			Subject: StoreSubject(id), Severity: sev,
			Summary:  fmt.Sprintf("Offline store %d cannot finish draining: %s", id, why),
			Evidence: ev,
		})
	}
	return out, nil
}

// StoreDuplicateAddress (store_duplicate_address) is violated when two
// non-Tombstone store records share one address (GET /stores): PD allows
// it once the old record is physically destroyed (force-deleted), and
// address-based tooling (tiup, k8s operators) then acts on the wrong one.
// Warning; subject "cluster". Constructed by Default.
type StoreDuplicateAddress struct{ base }

// Eval implements Invariant.
func (inv *StoreDuplicateAddress) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	byAddr := map[string][]uint64{}
	for i := range s.Stores {
		a := s.Stores[i].Store.Address
		if a != "" {
			byAddr[a] = append(byAddr[a], s.Stores[i].Store.ID)
		}
	}
	dups := map[string][]uint64{}
	var addrs []string
	for a, ids := range byAddr {
		if len(ids) > 1 {
			sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
			clean := cleanText(a, 200)
			dups[clean] = ids
			addrs = append(addrs, clean)
		}
	}
	if len(dups) == 0 {
		return nil, nil
	}
	sort.Strings(addrs)
	states := map[string]string{}
	for i := range s.Stores {
		for _, ids := range dups {
			for _, id := range ids {
				if s.Stores[i].Store.ID == id {
					states[idKey(id)] = s.Stores[i].Store.StateName
				}
			}
		}
	}
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Warning,
		Summary:  fmt.Sprintf("%d addresses are used by more than one store record (e.g. %s: stores %v)", len(addrs), addrs[0], dups[addrs[0]]),
		Evidence: map[string]any{"store_ids_by_address": dups, "state_by_store": states, "threshold": 1},
	}}, nil
}

// cleanText strips control characters from untrusted text and bounds it.
func cleanText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return truncateText(s, n)
}

// StoreLeaderDrop (store_leader_drop) is violated by an Up TiKV store
// whose leader_count fell, between two polls (History), by at least
// MinLeaders and by at least Ratio of what it had (PingCAP
// TiKV_leader_drops, approximated from PD's counts); the violation is
// held for Hold after the drop unless leader_count recovers above
// (1-Ratio) of the count before. Stores held by evict-leader are left
// out (the drain is intended), and so is a drop that leaves the store at
// or above the mean leader count of the Up TiKV stores (PD rebalancing an
// over-full store, not a collapse). Warning; subject "store:ID".
// Constructed by Default.
type StoreLeaderDrop struct {
	base
	Ratio      float64
	MinLeaders int
	Hold       time.Duration
	h          *History

	mu    sync.Mutex
	drops map[uint64]leaderDrop
}

type leaderDrop struct {
	At     time.Time `json:"at"`
	Before int       `json:"before"`
	After  int       `json:"after"`
}

// States implements StateHolder.
func (inv *StoreLeaderDrop) States() []Stateful { return inv.h.States() }

// StateName implements Stateful (the drops being held).
func (inv *StoreLeaderDrop) StateName() string { return "invariant/" + NameStoreLeaderDrop }

// MarshalState implements Stateful.
func (inv *StoreLeaderDrop) MarshalState() (json.RawMessage, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	out := map[string]leaderDrop{}
	for id, d := range inv.drops {
		out[idKey(id)] = d
	}
	return json.Marshal(out)
}

// UnmarshalState implements Stateful.
func (inv *StoreLeaderDrop) UnmarshalState(doc json.RawMessage) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.drops = map[uint64]leaderDrop{}
	var in map[string]leaderDrop
	if err := json.Unmarshal(doc, &in); err != nil {
		return fmt.Errorf("%s state: %w", NameStoreLeaderDrop, err)
	}
	for k, d := range in {
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return fmt.Errorf("%s state: %w", NameStoreLeaderDrop, err)
		}
		inv.drops[id] = d
	}
	return nil
}

// dropped reports whether the store's last two points in pts show a drop
// by inv's thresholds, with the counts.
func (inv *StoreLeaderDrop) dropped(pts []StorePoint) (before, after int, ok bool) {
	if len(pts) < 2 {
		return 0, 0, false
	}
	b, a := pts[len(pts)-2].LeaderCount, pts[len(pts)-1].LeaderCount
	fell := b - a
	return b, a, fell >= inv.MinLeaders && fell > 0 && float64(fell) >= inv.Ratio*float64(b)
}

// Eval implements Invariant.
func (inv *StoreLeaderDrop) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	inv.h.mu.Lock()
	inv.h.observe(s, now)
	pts := map[uint64][]StorePoint{}
	for i := range s.Stores {
		id := s.Stores[i].Store.ID
		p := inv.h.st.Stores[id]
		if len(p) >= 2 {
			pts[id] = p[len(p)-2:]
		}
	}
	inv.h.mu.Unlock()
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.drops == nil {
		inv.drops = map[uint64]leaderDrop{}
	}
	evicted := map[uint64]bool{}
	for _, id := range s.EvictLeaderStores {
		evicted[id] = true
	}
	// The mean leader count of the Up TiKV stores: a store that still holds
	// at least its share after the drop was rebalanced (PD's balance-leader
	// moving leaders off an over-full store, e.g. right after it was
	// resumed), not collapsed.
	upLeaders, up := 0, 0
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName == pd.StateUp && !st.IsTiFlash() && !evicted[st.Store.ID] {
			upLeaders += st.Status.LeaderCount
			up++
		}
	}
	var out []Violation
	seen := map[uint64]bool{}
	for i := range s.Stores {
		st := &s.Stores[i]
		id := st.Store.ID
		seen[id] = true
		if st.IsTiFlash() || evicted[id] || st.Store.StateName == pd.StateOffline {
			delete(inv.drops, id)
			continue
		}
		if b, a, ok := inv.dropped(pts[id]); ok {
			if up > 1 && float64(a) >= float64(upLeaders)/float64(up) {
				continue // rebalanced down to (or above) its share: not a collapse
			}
			inv.drops[id] = leaderDrop{At: now.UTC(), Before: b, After: a}
		}
		d, ok := inv.drops[id]
		if !ok {
			continue
		}
		recovered := float64(st.Status.LeaderCount) > (1-inv.Ratio)*float64(d.Before)
		if recovered || now.Sub(d.At) > inv.Hold {
			delete(inv.drops, id)
			continue
		}
		ev := storeEvidence(st, refTime(s, now))
		ev["leader_count_before"] = d.Before
		ev["leader_count_after"] = d.After
		ev["dropped_at"] = d.At.Format(time.RFC3339Nano)
		ev["ratio_threshold"] = inv.Ratio
		ev["min_leaders_threshold"] = inv.MinLeaders
		ev["hold_seconds"] = seconds(inv.Hold)
		out = append(out, Violation{
			Subject:  StoreSubject(id),
			Severity: ticket.Warning,
			Summary: fmt.Sprintf("store %d lost %d of its %d leaders within one poll (now %d, state %s)",
				id, d.Before-d.After, d.Before, st.Status.LeaderCount, st.Store.StateName),
			Evidence: ev,
		})
	}
	for id := range inv.drops {
		if !seen[id] {
			delete(inv.drops, id)
		}
	}
	return out, nil
}

// HostStoresFailing (host_stores_failing) is violated when at least
// MinStores TiKV stores that share one value of the Label store label
// (default "host") are failing at the same time: Disconnected or Down,
// slow (slow_score >= 80), or losing at least half their leaders since
// the previous poll (History). One host's failure then looks like
// unrelated store tickets. Critical; subject "host:VALUE" (the label
// value, control characters stripped, at most 100 bytes). Constructed by
// Default.
type HostStoresFailing struct {
	base
	Label     string
	MinStores int
	h         *History
}

// States implements StateHolder.
func (inv *HostStoresFailing) States() []Stateful { return inv.h.States() }

// Eval implements Invariant.
func (inv *HostStoresFailing) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	inv.h.mu.Lock()
	inv.h.observe(s, now)
	prevLeaders := map[uint64]int{}
	for i := range s.Stores {
		id := s.Stores[i].Store.ID
		if p := inv.h.st.Stores[id]; len(p) >= 2 {
			prevLeaders[id] = p[len(p)-2].LeaderCount
		}
	}
	inv.h.mu.Unlock()
	type member struct {
		id     uint64
		reason string
	}
	hosts := map[string][]uint64{}
	failing := map[string][]member{}
	for i := range s.Stores {
		st := &s.Stores[i]
		host := cleanText(st.Label(inv.Label), 100)
		if host == "" || st.IsTiFlash() || st.Store.StateName == pd.StateOffline || st.Store.StateName == pd.StateTombstone {
			continue
		}
		hosts[host] = append(hosts[host], st.Store.ID)
		reason := ""
		switch {
		case st.Store.StateName == pd.StateDisconnected || st.Store.StateName == pd.StateDown:
			reason = st.Store.StateName
		case st.Status.SlowScore >= DefaultSlowScore:
			reason = fmt.Sprintf("slow_score %d", st.Status.SlowScore)
		case prevLeaders[st.Store.ID] >= 2 && st.Status.LeaderCount*2 <= prevLeaders[st.Store.ID]:
			reason = fmt.Sprintf("leaders %d -> %d", prevLeaders[st.Store.ID], st.Status.LeaderCount)
		}
		if reason != "" {
			failing[host] = append(failing[host], member{st.Store.ID, reason})
		}
	}
	var names []string
	for h := range failing {
		names = append(names, h)
	}
	sort.Strings(names)
	var out []Violation
	for _, h := range names {
		ms := failing[h]
		if len(ms) < max(inv.MinStores, 2) {
			continue
		}
		reasons := map[string]string{}
		ids := []uint64{}
		for _, m := range ms {
			reasons[idKey(m.id)] = m.reason
			ids = append(ids, m.id)
		}
		out = append(out, Violation{
			Subject:  "host:" + h,
			Severity: ticket.Critical,
			Summary:  fmt.Sprintf("%d of the %d stores on host %q are failing together: stores %v", len(ms), len(hosts[h]), h, ids),
			Evidence: map[string]any{
				"host_label": inv.Label, "host": h, "store_ids_on_host": hosts[h], "failing_store_ids": ids,
				"reason_by_store": reasons, "threshold": max(inv.MinStores, 2),
			},
		})
	}
	return out, nil
}

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// pdWorkFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var pdWorkFamilies = map[string]family{
	// Judgement over time (issue 11): PD's own work and incidents.
	NameRegionNoLeader:           {regionNoLeader, nil},
	NameRegionDownPeerUnrepaired: {regionDownPeerUnrepaired, []string{tikv.ActionTransferPeer, tikv.ActionRemovePeer}},
	NameOperatorTimeouts:         {operatorTimeouts, []string{tikv.ActionRemovePeer}},
	NameRegionPendingPeerStuck:   {regionPendingPeerStuck, []string{tikv.ActionSplitRegion}},
	NameStoreOfflineBlocked:      {storeOfflineStuck, []string{tikv.ActionCancelDrain, tikv.ActionEvictLeader}},
	NameStoreDuplicateAddress:    {storeDuplicateAddress, nil},
	NameStoreLeaderDrop:          {storeLeaderDrop, nil},
	NameHostStoresFailing:        {hostStoresFailing, nil},
}

// regionNoLeader (region_no_leader): never an operator (PD can run none on
// a region without a leader); page with the region ids, key ranges and
// sizes, from PD's current read when available, else from the ticket's
// evidence.
func regionNoLeader(f *facts) *diagnose.Diagnosis {
	n, _ := f.ev.uint("region_count")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("%d regions have no leader", n),
		Confidence: diagnose.ConfidenceHigh,
		Risks: []string{
			"A region without a leader serves no reads or writes: every request to its key range fails or hangs.",
			"Unsafe recovery (pd-ctl unsafe remove-failed-stores) can lose the latest writes; use it only with PingCAP's guidance.",
		},
	}
	var none []*pd.Region
	var stores []uint64
	for _, id := range f.ev.ids("sample_region_ids") {
		r, ok := f.regions[id]
		if !ok {
			continue
		}
		d.Evidence = append(d.Evidence, f.regionLine(r)+" (GET /pd/api/v1/region/id/"+fmt.Sprint(id)+")")
		if r.HasLeader() {
			d.Evidence = append(d.Evidence, fmt.Sprintf("region %d has a leader again (store %d)", r.ID, r.Leader.StoreID))
			continue
		}
		none = append(none, r)
		for _, p := range f.model(r).Peers {
			if !p.Live() {
				stores = append(stores, p.StoreID)
			}
		}
	}
	if len(none) == 0 {
		// Fall back on the monitor's samples (key range and size as seen).
		var samples []struct {
			ID      uint64   `json:"region_id"`
			Start   string   `json:"start_key"`
			End     string   `json:"end_key"`
			SizeMiB int64    `json:"approximate_size_mib"`
			Stores  []uint64 `json:"peer_store_ids"`
		}
		if raw, ok := f.ev["samples"]; ok && json.Unmarshal(raw, &samples) == nil {
			for _, s := range samples {
				none = append(none, &pd.Region{ID: s.ID, StartKey: s.Start, EndKey: s.End, ApproximateSize: s.SizeMiB})
				d.Evidence = append(d.Evidence, fmt.Sprintf("region %d (when the ticket fired): peers on stores %s, %d MiB", s.ID, idList(s.Stores), s.SizeMiB))
			}
		}
	}
	if len(none) == 0 {
		d.Confidence = diagnose.ConfidenceMedium
		d.RootCause = "PD shows a leader for every sampled region now: the regions elected a leader since the ticket fired."
		d.NoActionReason = page("the sampled regions have leaders again; re-check GET /pd/api/v1/regions/check/down-peer and the ticket's regions")
		return d
	}
	slicesSortUniq(&stores)
	d.RootCause = "A region elects a leader only with a majority of its voters reachable; these regions have none, so PD cannot run any operator on them (every operator needs the leader to propose it). "
	if len(stores) > 0 {
		d.RootCause += fmt.Sprintf("Their voters on stores %s are down or on stores that do not heartbeat: bringing those stores back restores the leaders.", idList(stores))
	} else {
		d.RootCause += "Their stores heartbeat, so the peers may be stuck (a TiKV panic loop on that region, a damaged Raft log): their TiKV logs tell."
	}
	d.NoActionReason = leaderlessPage(none)
	return d
}

func slicesSortUniq(ids *[]uint64) {
	m := map[uint64]bool{}
	for _, id := range *ids {
		m[id] = true
	}
	*ids = sortedKeys(m)
}

// operatorTimeouts (operator_timeouts, tikv/pd#6573, tikv/tikv#9918, tikv/pd#3730): PD keeps retrying
// an operator that times out. On a region with orphan learners left by
// the timed-out attempts, remove the oldest one that is not the
// replacement copy (as region_extra_peer); otherwise page with the
// operators.
func operatorTimeouts(f *facts) *diagnose.Diagnosis {
	n, _ := f.ev.uint("timeouts")
	window, _ := f.ev.float("window_seconds")
	ops := f.ev.strs("operators")
	d := &diagnose.Diagnosis{Confidence: diagnose.ConfidenceMedium,
		Risks: []string{"Each timed-out attempt may leave a learner behind and keeps the region (or the target store) busy with snapshots."}}
	var ev []string
	for i, op := range ops {
		if i == 5 {
			ev = append(ev, fmt.Sprintf("... %d more", len(ops)-5))
			break
		}
		ev = append(ev, clipText(op, 200))
	}
	d.Evidence = []string{fmt.Sprintf("%d PD operators timed out within %s (GET /pd/api/v1/operators/records): %s", n, roundDur(time.Duration(window*float64(time.Second))), strings.Join(ev, "; "))}
	if rid, ok := subjectRegion(f); ok {
		d.Summary = fmt.Sprintf("PD's operators on region %d keep timing out (%d times)", rid, n)
		r, found := f.regions[rid]
		if !found {
			d.RootCause = "The region is no longer known to PD (split or merged since)."
			d.NoActionReason = page("region %d is gone; nothing to do unless the timeouts continue on its successors", rid)
			return d
		}
		d.Evidence = append(d.Evidence, f.regionLine(r))
		if text, ok := f.repairing(r); ok {
			d.Evidence = append(d.Evidence, text)
		}
		m := f.model(r)
		if !m.HasLeader() {
			d.RootCause = "The region has no leader, so no operator step can be proposed: every attempt times out."
			d.NoActionReason = leaderlessPage([]*pd.Region{r})
			return d
		}
		d.RootCause = "PD creates an operator for this region again and again and each times out: a step never completes (a learner that cannot receive or apply its snapshot — TiKV's snapshot IO limit on the sending store, tikv/tikv#9918, tikv/pd#3730 — or a rule checker bug leaving orphan learners, tikv/pd#6573, tikv/pd#6573)."
		if len(m.Learners()) > 0 && len(r.Peers) > f.maxReplicas() {
			sf := *f
			sf.ev = ticketEvidence{"sample_region_ids": mustJSON([]uint64{rid})}
			if sub := regionExtraPeer(&sf); sub.ProposedAction != nil {
				d.RootCause += fmt.Sprintf(" Region %d carries learners left behind by the timed-out attempts (%d peers for max-replicas %d).", rid, len(r.Peers), f.maxReplicas())
				d.ProposedAction, d.Risks = sub.ProposedAction, sub.Risks
				return d
			}
		}
		d.NoActionReason = page("look at the stores the operators target (their TiKV logs: snapshot generation and apply) and at PD's log for region %d; upgrading PD fixes the orphan-learner variant (tikv/pd#6574)", rid)
		return d
	}
	id, _ := subjectStore(f)
	d.Summary = fmt.Sprintf("PD's operators targeting store %d keep timing out (%d times)", id, n)
	if s, ok := f.store(id); ok {
		d.Evidence = append(d.Evidence, storeLine(s))
		if s.Status.IsBusy {
			d.Evidence = append(d.Evidence, fmt.Sprintf("store %d reports is_busy", id))
		}
		if s.Status.ReceivingSnapCount > 0 {
			d.Evidence = append(d.Evidence, fmt.Sprintf("store %d is receiving %d snapshots", id, s.Status.ReceivingSnapCount))
		}
	}
	d.Evidence = append(d.Evidence, "regions: "+idList(f.ev.ids("region_ids")))
	d.RootCause = fmt.Sprintf("Operators adding peers or leaders on store %d time out: the store cannot take snapshots fast enough (disk, snapshot IO limit, receiving backlog) or keeps rejecting them.", id)
	d.NoActionReason = page("check store %d's TiKV log (snapshot apply errors), disk and receiving_snap_count; lower its add-peer store limit (pd-ctl store limit %d <rate> add-peer) if it is overloaded", id, id)
	return d
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// regionPendingPeerStuck (region_pending_peer_stuck): a pending peer that
// never catches up; page, with the store it lags on.
func regionPendingPeerStuck(f *facts) *diagnose.Diagnosis {
	d := regionPendingPeer(f)
	n, _ := f.ev.uint("region_count")
	d.Summary = fmt.Sprintf("%d regions have a pending peer that has not caught up for %s", n,
		roundDur(time.Duration(must(f.ev.float("threshold_seconds"))*float64(time.Second))))
	if per := f.ev.counts("pending_peers_by_store"); len(per) > 0 {
		d.Evidence = append(d.Evidence, "stuck pending peers by store: "+countsLine("store", per))
	}
	if since := f.ev.str("oldest_pending_since"); since != "" {
		d.Evidence = append(d.Evidence, "oldest pending since "+clipText(since, 40))
	}
	d.RootCause += " A peer pending this long is not merely slow: its snapshot may keep failing to apply (an oversized region, PingCAP docs: tune-region-performance) or its store cannot receive."
	return d
}

// storeDuplicateAddress (store_duplicate_address, pingcap/tidb-operator#124, tikv/pd#4422): page.
func storeDuplicateAddress(f *facts) *diagnose.Diagnosis {
	d := &diagnose.Diagnosis{
		Summary:    "several store records share one address",
		Confidence: diagnose.ConfidenceHigh,
		RootCause:  "PD accepts a new store on the address of an old one once the old record is force-deleted (physically destroyed) or while it is Offline: tooling that finds stores by address (tiup, tidb-operator, scripts) may then act on the wrong record (pingcap/tidb-operator#124, tikv/pd#4422). The newest record (highest store id) is the live one.",
		Risks:      []string{"A drain, a label or a scheduler applied by address may hit the old record instead of the live store."},
	}
	var by map[string][]uint64
	if raw, ok := f.ev["store_ids_by_address"]; ok {
		_ = json.Unmarshal(raw, &by)
	}
	for _, a := range sortedStrings(by) {
		line := fmt.Sprintf("address %s: stores %s", clipText(a, 100), idList(by[a]))
		for _, id := range by[a] {
			if s, ok := f.store(id); ok {
				line += fmt.Sprintf("; store %d %s", id, s.Store.StateName)
			}
		}
		d.Evidence = append(d.Evidence, line)
	}
	d.NoActionReason = page("check which record is live (the highest store id that heartbeats) and make sure tooling addresses stores by id; drain or bury the stale record only after checking it holds no region (GET /pd/api/v1/regions/store/{id})")
	return d
}

func sortedStrings[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slicesSortStrings(out)
	return out
}

// storeLeaderDrop (store_leader_drop): a store lost most of its leaders in
// one poll; page with the likely cause.
func storeLeaderDrop(f *facts) *diagnose.Diagnosis {
	id, _ := subjectStore(f)
	before, _ := f.ev.uint("leader_count_before")
	after, _ := f.ev.uint("leader_count_after")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("store %d lost %d of its %d leaders within one poll", id, int64(before)-int64(after), before),
		Confidence: diagnose.ConfidenceMedium,
		Risks:      []string{"The other stores suddenly carry its leaders' reads and writes; if it was a restart, leaders come back over minutes."},
	}
	s, ok := f.store(id)
	if !ok {
		d.RootCause = "The store is no longer listed by PD."
		d.NoActionReason = page("store %d is gone from PD; check whether it was removed on purpose", id)
		return d
	}
	d.Evidence = []string{storeLine(s), fmt.Sprintf("leader_count %d -> %d between two polls; now %d", before, after, s.Status.LeaderCount)}
	up, recent := f.restartedRecently(s)
	switch {
	case s.Store.StateName != pd.StateUp:
		d.RootCause = fmt.Sprintf("Store %d is %s: its leaders moved because it stopped heartbeating; its own ticket covers it.", id, s.Store.StateName)
	case recent:
		d.RootCause = fmt.Sprintf("Store %d restarted %s ago (uptime): a TiKV restart drops all its leaders, and PD's balance-leader scheduler brings them back over the next minutes.", id, roundDur(up))
	case f.evicted[id]:
		d.RootCause = fmt.Sprintf("An evict-leader scheduler holds store %d: someone or something (tiup, tidb-operator, evict-slow-store) is moving its leaders off on purpose.", id)
	case f.isSlow(s):
		d.RootCause = fmt.Sprintf("Store %d is slow (slow_score %d): PD's evict-slow-store scheduler moves leaders off a slow store.", id, s.Status.SlowScore)
	case s.Status.IsBusy:
		d.RootCause = fmt.Sprintf("Store %d reports is_busy: an overloaded raftstore misses elections and loses leaders.", id)
	default:
		d.RootCause = fmt.Sprintf("Store %d is Up, not restarted, not evicted and not slow, yet lost its leaders at once: a network partition between it and the other TiKV stores (leaders re-elected elsewhere) or a stall of its raftstore is likely.", id)
	}
	if h := s.Label("host"); h != "" {
		d.Evidence = append(d.Evidence, "host label "+clipText(h, 100)+": check the other stores on that host")
	}
	d.NoActionReason = page("check store %d's TiKV log around the drop (restarts, election timeouts, stalls) and the network to the other stores; moving leaders back by hand fights PD while the cause persists", id)
	return d
}

// hostStoresFailing (host_stores_failing): several stores on one host
// fail together; one incident, page.
func hostStoresFailing(f *facts) *diagnose.Diagnosis {
	host := clipText(f.ev.str("host"), 100)
	label := clipText(f.ev.str("host_label"), 50)
	ids := f.ev.ids("failing_store_ids")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("stores %s on %s %s fail together", idList(ids), label, host),
		Confidence: diagnose.ConfidenceHigh,
		RootCause:  fmt.Sprintf("Stores %s share the %s label value %s and fail at the same time: one cause on that machine (power, kernel, disk controller, network interface, a noisy neighbour) rather than separate store problems.", idList(ids), label, host),
		Risks:      []string{"If the host's stores hold more than one replica of some regions (location labels not separating them), those regions lose their quorum together."},
	}
	var reasons map[string]string
	if raw, ok := f.ev["reason_by_store"]; ok {
		_ = json.Unmarshal(raw, &reasons)
	}
	for _, id := range ids {
		line := fmt.Sprintf("store %d: %s", id, clipText(reasons[fmt.Sprint(id)], 100))
		if s, ok := f.store(id); ok {
			line = storeLine(s) + "; " + clipText(reasons[fmt.Sprint(id)], 100)
		}
		d.Evidence = append(d.Evidence, line)
	}
	if ll := f.c.Replication.LocationLabels; ll != "" {
		d.Evidence = append(d.Evidence, "replication location-labels: "+clipText(ll, 100))
	} else {
		d.Evidence = append(d.Evidence, "replication location-labels: none: PD may place several replicas of a region on this host")
	}
	d.NoActionReason = page("look at host %s itself (dmesg, disks, NIC, power) rather than at each store", host)
	return d
}

// regionDownPeerUnrepaired (region_down_peer_unrepaired): the monitor saw
// down peers PD is not repairing (on an Up store, or no PD operator for a
// while); diagnosed like region_down_peer, over both sample lists.
func regionDownPeerUnrepaired(f *facts) *diagnose.Diagnosis {
	n, _ := f.ev.uint("region_count")
	onUp, _ := f.ev.uint("up_store_region_count")
	noOp, _ := f.ev.uint("no_operator_region_count")
	d := &diagnose.Diagnosis{
		Summary: fmt.Sprintf("%d regions have down peers PD is not repairing", n),
		Evidence: []string{fmt.Sprintf("%d regions with a down peer on an Up store, %d with no PD operator for %s (monitor, from GET /pd/api/v1/regions/check/down-peer and /operators); samples %s and %s",
			onUp, noOp, roundDur(time.Duration(must(f.ev.float("threshold_seconds"))*float64(time.Second))),
			idList(f.ev.ids("sample_up_store_region_ids")), idList(f.ev.ids("sample_no_operator_region_ids")))},
	}
	per := f.ev.counts("unrepaired_peers_by_store")
	var top *pd.StoreInfo
	ok := false
	if len(per) > 0 {
		d.Evidence = append(d.Evidence, "unrepaired down peers by store: "+countsLine("store", per))
		var best uint64
		for _, id := range sortedKeys(per) {
			if best == 0 || per[id] > per[best] {
				best = id
			}
		}
		if top, ok = f.store(best); ok {
			d.Evidence = append(d.Evidence, storeLine(top))
		}
	}
	var samples []*pd.Region
	for _, key := range []string{"sample_up_store_region_ids", "sample_no_operator_region_ids"} {
		for _, id := range f.ev.ids(key) {
			if r, found := f.regions[id]; found && !slices.Contains(samples, r) {
				samples = append(samples, r)
				d.Evidence = append(d.Evidence, f.regionLine(r))
			}
		}
	}
	return f.downPeers(d, top, ok, samples)
}
