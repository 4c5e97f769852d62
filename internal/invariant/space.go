package invariant

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

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
