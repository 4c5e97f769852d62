package invariant

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// StoreLowSpace is PingCAP's PD_cluster_low_space with PD's own definition
// (PD pkg/core/store.go IsLowSpace, counted in pkg/statistics/
// store_collection.go for stores that are not Down): available/capacity <
// 1 - low-space-ratio, except when capacity is 0, or when the store has
// fewer than MinRegionCount regions and more than MinAvailableBytes free
// (PD: 100 regions, 8 GiB). Sizes come from PD's 4-significant-digit
// strings, so a ratio within 0.1% of the threshold is as precise as PD's
// rendering allows. Warning; one violation per store. Constructed by Default.
type StoreLowSpace struct {
	base
	// LowSpaceRatio overrides PD's schedule.low-space-ratio when > 0.
	LowSpaceRatio float64
	// MinRegionCount and MinAvailableBytes define the new-cluster
	// exemption; MinRegionCount 0 disables it.
	MinRegionCount    int
	MinAvailableBytes uint64
}

// Eval implements Invariant.
func (inv *StoreLowSpace) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	ratio, ratioSource := inv.LowSpaceRatio, "operator config"
	if ratio <= 0 {
		ratio, ratioSource = s.Schedule.LowSpaceRatio, "pd schedule.low-space-ratio"
		if ratio <= 0 {
			if err := needSources(inv.name, s, tikv.SourceSchedule); err != nil {
				return nil, err
			}
			ratio, ratioSource = DefaultLowSpaceRatio, "pd default"
		}
	}
	threshold := 1 - ratio
	ref := refTime(s, now)
	var out []Violation
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName == pd.StateDown || st.Store.StateName == pd.StateTombstone {
			continue // PD does not count Down stores as low-space
		}
		capacity, avail := uint64(st.Status.Capacity), uint64(st.Status.Available)
		if capacity == 0 {
			continue // PD: "We don't need to consider the store as low space when the capacity is 0."
		}
		pdExempt := st.Status.RegionCount < DefaultLowSpaceMinRegionCount && avail > DefaultLowSpaceMinAvailableBytes
		if inv.MinRegionCount > 0 && st.Status.RegionCount < inv.MinRegionCount && avail > inv.MinAvailableBytes {
			continue
		}
		availRatio := float64(avail) / float64(capacity)
		if availRatio >= threshold {
			continue
		}
		ev := storeEvidence(st, ref)
		ev["capacity_bytes"] = capacity
		ev["available_bytes"] = avail
		ev["used_size_bytes"] = uint64(st.Status.UsedSize)
		ev["capacity"] = st.Status.Capacity.String()
		ev["available"] = st.Status.Available.String()
		ev["available_ratio"] = availRatio // unrounded: A1 is 0.19999999994
		ev["low_space_ratio"] = ratio
		ev["low_space_ratio_source"] = ratioSource
		ev["threshold_available_ratio"] = roundRatio(threshold)
		ev["exemption_min_region_count"] = inv.MinRegionCount
		ev["exemption_min_available_bytes"] = inv.MinAvailableBytes
		ev["pd_would_exempt"] = pdExempt
		ev["region_score"] = st.Status.RegionScore
		out = append(out, Violation{
			Subject:  StoreSubject(st.Store.ID),
			Severity: ticket.Warning,
			Summary: fmt.Sprintf("store %d is low on space: %s of %s available (%.1f%% < %.1f%%, low-space-ratio %.2f)",
				st.Store.ID, st.Status.Available, st.Status.Capacity, availRatio*100, threshold*100, ratio),
			Evidence: ev,
		})
	}
	return out, nil
}

// ClusterSpaceUsed is PingCAP's TiKV_space_used_more_than_80%: Σused_size /
// Σcapacity over non-Tombstone stores (PD's storage_size /
// storage_capacity, TiFlash included as PD counts it) > MaxRatio. Before PD
// 4.0 stores do not report used_size; then capacity - available is used
// and the evidence says so. Warning; subject "cluster". Constructed by
// Default.
type ClusterSpaceUsed struct {
	base
	MaxRatio float64
}

// Eval implements Invariant.
func (inv *ClusterSpaceUsed) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	var used, capacity, availSum uint64
	perStore := map[string]any{}
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName == pd.StateTombstone {
			continue
		}
		used += uint64(st.Status.UsedSize)
		capacity += uint64(st.Status.Capacity)
		if st.Status.Available < st.Status.Capacity {
			availSum += uint64(st.Status.Capacity - st.Status.Available)
		}
		perStore[idKey(st.Store.ID)] = map[string]any{
			"capacity": st.Status.Capacity.String(), "used_size": st.Status.UsedSize.String(),
			"available": st.Status.Available.String(),
		}
	}
	if capacity == 0 {
		return nil, nil
	}
	source := "used_size"
	if used == 0 && availSum > 0 {
		used, source = availSum, "capacity-available (used_size not reported)"
	}
	ratio := float64(used) / float64(capacity)
	if ratio <= inv.MaxRatio {
		return nil, nil
	}
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Warning,
		Summary: fmt.Sprintf("cluster space used %.1f%% > %.0f%%: %s of %s",
			ratio*100, inv.MaxRatio*100, pd.ByteSize(used), pd.ByteSize(capacity)),
		Evidence: map[string]any{
			"used_bytes":     used,
			"capacity_bytes": capacity,
			"used_ratio":     roundRatio(ratio),
			"threshold":      inv.MaxRatio,
			"used_source":    source,
			"stores":         perStore,
		},
	}}, nil
}

// StoreCapacitySuspect flags capacity figures that cannot be true
// (tikv/pd#9858, tikv/pd#6252PD issue #6252, TiKV issue #2913): capacity 0 B on a
// non-Tombstone store, or a capacity below MinMedianRatio of the median
// capacity of the other stores of the same engine (TiKV or TiFlash).
// Stores that never reported a heartbeat (no statistics at all, e.g. 01a)
// and Down stores (store_down covers them) are skipped. Warning (page
// only: no PD action fixes it); one violation per store. Constructed by
// Default.
type StoreCapacitySuspect struct {
	base
	MinMedianRatio float64
}

// Eval implements Invariant.
func (inv *StoreCapacitySuspect) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	ref := refTime(s, now)
	var out []Violation
	// Non-Tombstone, non-zero capacities per engine (key: IsTiFlash), sorted.
	engineCaps := map[bool][]uint64{}
	for j := range s.Stores {
		o := &s.Stores[j]
		if o.Store.StateName == pd.StateTombstone || o.Status.Capacity == 0 {
			continue
		}
		engineCaps[o.IsTiFlash()] = append(engineCaps[o.IsTiFlash()], uint64(o.Status.Capacity))
	}
	for k := range engineCaps {
		slices.Sort(engineCaps[k])
	}
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName == pd.StateTombstone || st.Store.StateName == pd.StateDown || lastHeartbeat(st).IsZero() {
			continue
		}
		capacity := uint64(st.Status.Capacity)
		ev := storeEvidence(st, ref)
		ev["capacity_bytes"] = capacity
		ev["capacity"] = st.Status.Capacity.String()
		ev["available_bytes"] = uint64(st.Status.Available)
		ev["used_size_bytes"] = uint64(st.Status.UsedSize)
		if capacity == 0 {
			ev["reason"] = "capacity 0 B"
			out = append(out, Violation{
				Subject:  StoreSubject(st.Store.ID),
				Severity: ticket.Warning,
				Summary: fmt.Sprintf("store %d (%s, %s) reports capacity 0 B; PD ignores it for low-space and it skews space totals",
					st.Store.ID, st.Store.Address, st.Store.StateName),
				Evidence: ev,
			})
			continue
		}
		// The median of the engine's other stores: the engine's sorted
		// capacities without one occurrence of this store's (O(n log n)
		// for the whole cluster instead of a sort per store).
		caps := engineCaps[st.IsTiFlash()]
		if len(caps) < 2 {
			continue
		}
		med := medianExcluding(caps, sort.Search(len(caps), func(k int) bool { return caps[k] >= capacity }))
		others := caps[:len(caps)-1] // only its length is reported
		if float64(capacity) >= inv.MinMedianRatio*med {
			continue
		}
		ev["reason"] = "capacity far below the median"
		ev["median_capacity_bytes"] = uint64(med)
		ev["median_capacity"] = pd.ByteSize(uint64(med)).String()
		ev["min_median_ratio"] = inv.MinMedianRatio
		ev["capacity_to_median_ratio"] = float64(capacity) / med
		ev["compared_stores"] = len(others)
		out = append(out, Violation{
			Subject:  StoreSubject(st.Store.ID),
			Severity: ticket.Warning,
			Summary: fmt.Sprintf("store %d reports capacity %s, below %.0f%% of the median %s of its peers",
				st.Store.ID, st.Status.Capacity, inv.MinMedianRatio*100, pd.ByteSize(uint64(med))),
			Evidence: ev,
		})
	}
	return out, nil
}

// medianExcluding is the median of sorted without its element at index
// skip (0 <= skip < len(sorted), len(sorted) >= 2).
func medianExcluding(sorted []uint64, skip int) float64 {
	at := func(m int) float64 { // m-th element of the list without skip
		if m >= skip {
			m++
		}
		return float64(sorted[m])
	}
	n := len(sorted) - 1
	if n%2 == 1 {
		return at(n / 2)
	}
	return (at(n/2-1) + at(n/2)) / 2
}

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// spaceFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var spaceFamilies = map[string]family{
	// Space: never raise low-space-ratio (it hides a filling disk).
	NameStoreLowSpace:        {storeLowSpace, nil},
	NameClusterSpaceUsed:     {clusterSpaceUsed, nil},
	NameStoreCapacitySuspect: {storeCapacitySuspect, nil},
}

// spaceRow is one store's space figures.
type spaceRow struct {
	s                            *pd.StoreInfo
	capacity, avail, used, other uint64
	ratio                        float64
}

func (f *facts) spaceRows() []spaceRow {
	var out []spaceRow
	for _, id := range f.ids {
		s := f.stores[id]
		if s.Store.StateName == pd.StateTombstone {
			continue
		}
		r := spaceRow{s: s, capacity: uint64(s.Status.Capacity), avail: uint64(s.Status.Available), used: uint64(s.Status.UsedSize)}
		if r.capacity > 0 {
			r.ratio = float64(r.avail) / float64(r.capacity)
			if r.avail+r.used < r.capacity {
				r.other = r.capacity - r.avail - r.used
			}
		}
		out = append(out, r)
	}
	return out
}

func (r spaceRow) line() string {
	s := fmt.Sprintf("store %d (%s): %s of %s available (%s), used by TiKV %s", r.s.Store.ID, r.s.Store.StateName,
		bytesOf(r.avail), bytesOf(r.capacity), pct(r.ratio), bytesOf(r.used))
	if r.used > 0 && r.other > 0 {
		s += ", not explained by TiKV " + bytesOf(r.other)
	}
	return s
}

// unexplained reports tikv/pd#9858, tikv/pd#6252's check: capacity - available - used >
// max(10% of capacity, 50 GiB), other data on the disk.
func (r spaceRow) unexplained() bool {
	return r.used > 0 && r.other > max(r.capacity/10, 50<<30)
}

// storeLowSpace (store_low_space, tikv/tikv#5420, tikv/pd#9858, tikv/pd#6252): always page. With
// every store low, balancing cannot help; with room elsewhere, PD's
// balance-region moves regions off by itself. Never raise low-space-ratio:
// it hides a disk that is really filling up.
func storeLowSpace(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	ratio := f.lowSpaceRatio()
	rows := f.spaceRows()
	var low, room []uint64
	var self *spaceRow
	for i := range rows {
		r := &rows[i]
		if r.s.Store.ID == id {
			self = r
		}
		if r.s.IsTiFlash() || r.s.Store.StateName == pd.StateDown || r.capacity == 0 {
			continue
		}
		switch {
		case r.ratio < 1-ratio:
			low = append(low, r.s.Store.ID)
		case r.s.Store.StateName == pd.StateUp && r.ratio >= 1-f.highSpaceRatio():
			room = append(room, r.s.Store.ID)
		}
	}
	d := &diagnose.Diagnosis{
		Summary: fmt.Sprintf("store %d is low on space (low-space-ratio %g)", id, ratio),
		Evidence: []string{fmt.Sprintf("low when available/capacity < %s (1 - low-space-ratio %g, GET /pd/api/v1/config/schedule); stores below: %s; stores with room (< high-space-ratio %g used): %s",
			pct(1-ratio), ratio, idList(low), f.highSpaceRatio(), idList(room))},
		Confidence: diagnose.ConfidenceMedium,
	}
	for _, r := range rows {
		d.Evidence = append(d.Evidence, r.line())
	}
	if self != nil && self.s.IsTiFlash() {
		d.Summary = fmt.Sprintf("TiFlash store %d is low on space: %s of %s available", id, bytesOf(self.avail), bytesOf(self.capacity))
		d.RootCause = "A TiFlash store holds columnar replicas of the tables that have TiFlash replicas; PD can only move them to other TiFlash stores."
		d.Risks = []string{"A full TiFlash store stops replicating, and analytical queries fall back to TiKV or fail.", "Do not raise low-space-ratio: it hides the problem."}
		d.NoActionReason = page("add TiFlash capacity or reduce the tables with TiFlash replicas (ALTER TABLE ... SET TIFLASH REPLICA)")
		return d
	}
	if self == nil || !slices.Contains(low, id) {
		d.Summary = fmt.Sprintf("store %d is no longer low on space", id)
		d.RootCause = "The store's available space is back above the low-space threshold (data was deleted or compacted, or regions moved away)."
		d.NoActionReason = page("store %d is no longer low on space; keep an eye on the trend", id)
		return d
	}
	below := pct(self.ratio) + " < " + pct(1-ratio)
	if pct(self.ratio) == pct(1-ratio) {
		below = "just under " + pct(1-ratio)
	}
	d.Summary = fmt.Sprintf("store %d is low on space: %s of %s available (%s)", id, bytesOf(self.avail), bytesOf(self.capacity), below)
	never := "Do not raise low-space-ratio (set_low_space_threshold): it only hides a disk that is really filling up (tikv/tikv#5420, tikv/pd#9858, tikv/pd#6252)."
	switch {
	case len(room) == 0:
		d.RootCause = fmt.Sprintf("Every TiKV store is at or near its low-space threshold (low: %s): there is nowhere to move regions, so balancing cannot help (tikv/tikv#5420). Once a store is full, TiKV stops with \"No space left on device\" and cannot restart.", idList(low))
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"Stores that fill up stop accepting writes and may not restart.", never}
		d.NoActionReason = page("every store is low on space; add capacity (new TiKV stores or bigger disks) or delete data (DROP/TRUNCATE, then GC), watching time to full per store; TiKV's space_placeholder_file is the emergency reserve if a store crashes")
	case self.unexplained():
		d.RootCause = fmt.Sprintf("On store %d, %s of the disk is used by something other than TiKV (capacity - available - used_size): the disk is shared with other data (logs, backups, another TiKV), which PD cannot move (tikv/pd#9858, tikv/pd#6252tikv/pd#9858).", id, bytesOf(self.other))
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"The foreign data keeps growing and fills the disk regardless of how regions are balanced.", never}
		d.NoActionReason = page("find and remove the non-TiKV data on store %d's disk (%s unexplained), or give TiKV its own disk", id, bytesOf(self.other))
	default:
		bal := f.scheduler(schedBalanceRegion)
		d.RootCause = fmt.Sprintf("Store %d holds more data than its disk comfortably allows while stores %s have room. PD's balance-region scheduler (%s) moves regions away from low-space stores by itself (their region score rises steeply).", id, idList(room), bal)
		if bal != "running" {
			d.RootCause += " It is not running, so nothing moves: resume or re-add it (pd-ctl scheduler add balance-region-scheduler)."
		}
		if self.capacity < medianCapacity(rows)/2 {
			d.RootCause += " Its disk is much smaller than the others', and PD balances by size; give it a disk like the others'."
		}
		d.Risks = []string{"If data grows faster than PD moves regions away, the store fills up.", never}
		d.NoActionReason = page("PD's balancer is the right tool here; check that it moves regions off store %d (pd-ctl operator show region) and that the disk trend is flat", id)
	}
	return d
}

func medianCapacity(rows []spaceRow) uint64 {
	var caps []uint64
	for _, r := range rows {
		if r.capacity > 0 && !r.s.IsTiFlash() {
			caps = append(caps, r.capacity)
		}
	}
	if len(caps) == 0 {
		return 0
	}
	slices.Sort(caps)
	return caps[len(caps)/2]
}

// clusterSpaceUsed (cluster_space_used): page with the per-store table.
func clusterSpaceUsed(f *facts) *diagnose.Diagnosis {
	used, _ := f.ev.uint("used_bytes")
	capacity, _ := f.ev.uint("capacity_bytes")
	ratio, _ := f.ev.float("used_ratio")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("cluster space used %s: %s of %s", pct(ratio), bytesOf(used), bytesOf(capacity)),
		Evidence:   []string{fmt.Sprintf("sum of used_size / capacity over non-Tombstone stores: %s (%s)", pct(ratio), f.ev.str("used_source"))},
		RootCause:  "The data stored has grown close to the cluster's total capacity: balancing moves data between stores but cannot create room (tikv/tikv#5420).",
		Confidence: diagnose.ConfidenceHigh,
		Risks:      []string{"When stores fill up they stop accepting writes; a full TiKV may not restart.", "Do not raise low-space-ratio: it hides the problem."},
	}
	for _, r := range f.spaceRows() {
		d.Evidence = append(d.Evidence, r.line())
	}
	d.NoActionReason = page("plan capacity: add TiKV stores or bigger disks, or delete data (then GC); estimate time to full from the growth rate")
	return d
}

// storeCapacitySuspect (store_capacity_suspect, tikv/pd#9858, tikv/pd#6252): page.
func storeCapacitySuspect(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	reason := f.ev.str("reason")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("store %d reports an implausible capacity (%s)", id, reason),
		Confidence: diagnose.ConfidenceMedium,
		Risks:      []string{"PD's space math (low space, balance) is wrong while the figure is wrong: regions may be placed badly."},
	}
	if s, ok := f.store(id); ok {
		d.Evidence = append(d.Evidence, storeLine(s))
	}
	if m := f.ev.str("median_capacity"); m != "" {
		d.Evidence = append(d.Evidence, fmt.Sprintf("median capacity of its peers %s (ratio %.2g)", m, must(f.ev.float("capacity_to_median_ratio"))))
	}
	if strings.Contains(reason, "0 B") {
		d.RootCause = "A store reporting capacity 0 B is usually a crashed or stuck TiKV whose heartbeats carry no disk statistics (tikv/pd#6252: PD ignores such stores for low space); it skews the cluster's space totals."
	} else {
		d.RootCause = "A capacity far below its peers usually comes from TiKV's own configuration (storage.reserve-space or raftstore.capacity set too small, tikv/tikv#2913) or from a wrong or full mount under the data directory."
	}
	d.NoActionReason = page("check store %d's TiKV configuration (raftstore.capacity) and the disk under its data directory; no PD action fixes a reported capacity", id)
	return d
}

func must(v float64, _ bool) float64 { return v }
