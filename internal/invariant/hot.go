package invariant

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// HotWriteStore (hot_write_store) is a write hot spot concentrated on one
// store: in GET /hotspot/regions/write, the store's as_leader
// total_flow_bytes (the write flow of the hot regions it leads, bytes/s)
// is more than MinShare of the sum over all stores and at least
// MinBytesPerSec. Leader flow is used because every replica receives the
// same raft log: as_peer flow is spread evenly over the replicas, while
// the leader does the proposing. It needs at least two Up TiKV stores. PD
// lists a region as hot only after a few heartbeats of sustained flow
// (pd-sim-notes.md), so this is already smoothed. Warning; subject
// "store:ID"; evidence lists the hottest region ids. Constructed by Default.
type HotWriteStore struct {
	base
	MinShare       float64
	MinBytesPerSec float64
	TopRegions     int
}

// Eval implements Invariant.
func (inv *HotWriteStore) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores, tikv.SourceHotWrite); err != nil {
		return nil, err
	}
	up := 0
	for i := range s.Stores {
		if s.Stores[i].Store.StateName == pd.StateUp && !s.Stores[i].IsTiFlash() {
			up++
		}
	}
	if up < 2 {
		return nil, nil
	}
	flows := map[uint64]float64{}
	var total float64
	for key, st := range s.HotWrite.AsLeader {
		id, err := strconv.ParseUint(key, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invariant %s: hotspot store key %q: %w", inv.name, key, err)
		}
		b := st.TotalBytesRate
		if b == 0 {
			for _, p := range st.Stats {
				b += p.ByteRate
			}
		}
		flows[id] = b
		total += b
	}
	if total <= 0 {
		return nil, nil
	}
	perStore := map[string]float64{}
	for id, b := range flows {
		perStore[idKey(id)] = b
	}
	var out []Violation
	for _, id := range sortedIDs(flows) {
		b := flows[id]
		share := b / total
		if share <= inv.MinShare || b < inv.MinBytesPerSec {
			continue
		}
		stat := s.HotWrite.AsLeader[idKey(id)]
		stats := append([]pd.HotPeerStat(nil), stat.Stats...)
		sort.SliceStable(stats, func(i, j int) bool { return stats[i].ByteRate > stats[j].ByteRate })
		var top []uint64
		topFlows := map[string]float64{}
		for _, p := range stats {
			if len(top) == inv.TopRegions {
				break
			}
			top = append(top, p.RegionID)
			topFlows[idKey(p.RegionID)] = p.ByteRate
		}
		ev := map[string]any{
			"store_id":                      id,
			"hot_write_bytes_per_sec":       b,
			"total_hot_write_bytes_per_sec": total,
			"share":                         roundRatio(share),
			"min_share":                     inv.MinShare,
			"min_bytes_per_sec":             inv.MinBytesPerSec,
			"hot_regions_count":             stat.Count,
			"hottest_region_ids":            top,
			"hottest_region_bytes_per_sec":  topFlows,
			"hot_write_bytes_by_store":      perStore,
			"source":                        "GET /hotspot/regions/write as_leader",
		}
		if r, ok := s.HotStores.BytesWriteRate[idKey(id)]; ok {
			ev["store_write_bytes_per_sec"] = r
		}
		out = append(out, Violation{
			Subject:  StoreSubject(id),
			Severity: ticket.Warning,
			Summary: fmt.Sprintf("write hot spot on store %d: %s/s of %s/s hot write flow (%.0f%% > %.0f%%), hottest regions %v",
				id, pd.ByteSize(uint64(b)), pd.ByteSize(uint64(total)), share*100, inv.MinShare*100, top),
			Evidence: ev,
		})
	}
	return out, nil
}
