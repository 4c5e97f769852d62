package invariant

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// NameHotWriteCPUImbalance is the invariant HotWriteCPUImbalance.
const NameHotWriteCPUImbalance = "hot_write_cpu_imbalance"

// HotWriteCPUImbalance (hot_write_cpu_imbalance) is a TiKV store whose
// write-path CPU (Snapshot.StoreCPU: raftstore, apply, scheduler and gRPC
// thread pools, from Prometheus' tikv_thread_cpu_seconds_total) is at
// least Ratio times the median of the other Up TiKV stores and at least
// MinCores, while PD's write figures for it look even: its as_leader hot
// write bytes/s and keys/s (GET /hotspot/regions/write, total_flow_bytes /
// total_flow_keys) are each at most FlowRatio times the other stores'
// median. PD's hot-region scheduler balances on bytes, keys and query
// rates (its write-leader-priorities / write-peer-priorities), never on
// CPU, so it sees nothing to move (tikv/pd#3144, tikv/pd#4513); when the
// bytes are uneven, hot_write_store reports it instead. Without Prometheus
// (StoreCPU nil and no SourceStoreCPU error) it holds. Needs at least two
// Up TiKV stores with a CPU sample. Warning; subject "store:ID".
// Constructed by Default.
type HotWriteCPUImbalance struct {
	base
	// Ratio: a store's CPU over the other stores' median (default 2).
	Ratio float64
	// MinCores: the store's write-path CPU, cores (default 1).
	MinCores float64
	// FlowRatio: PD's figures are even when the store's hot write bytes
	// and keys are each at most FlowRatio times the others' median
	// (default 1.5).
	FlowRatio float64
	// TopRegions is how many of the store's hottest region ids the
	// evidence lists.
	TopRegions int
}

// Eval implements Invariant.
func (inv *HotWriteCPUImbalance) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores, tikv.SourceStoreCPU); err != nil {
		return nil, err
	}
	if s.StoreCPU == nil {
		return nil, nil // no Prometheus configured
	}
	if err := needSources(inv.name, s, tikv.SourceHotWrite); err != nil {
		return nil, err
	}
	type load struct {
		id               uint64
		cpu, bytes, keys float64
	}
	var loads []load
	cpuBy := map[string]float64{}
	for _, st := range s.TiKVStores() {
		if st.Store.StateName != pd.StateUp {
			continue
		}
		cpu, ok := s.StoreCPU[st.Store.ID]
		if !ok {
			continue
		}
		l := load{id: st.Store.ID, cpu: cpu}
		if hs, ok := s.HotWrite.AsLeader[idKey(st.Store.ID)]; ok {
			l.bytes, l.keys = hs.TotalBytesRate, hs.TotalKeysRate
			if l.bytes == 0 && l.keys == 0 {
				for _, p := range hs.Stats {
					l.bytes += p.ByteRate
					l.keys += p.KeyRate
				}
			}
		}
		loads = append(loads, l)
		cpuBy[idKey(l.id)] = roundRatio(cpu)
	}
	if len(loads) < 2 {
		return nil, nil
	}
	sort.Slice(loads, func(i, j int) bool { return loads[i].id < loads[j].id })
	others := func(skip int, f func(load) float64) float64 {
		vs := make([]float64, 0, len(loads)-1)
		for i, l := range loads {
			if i != skip {
				vs = append(vs, f(l))
			}
		}
		return medianFloat(vs)
	}
	bytesBy, keysBy := map[string]float64{}, map[string]float64{}
	for _, l := range loads {
		bytesBy[idKey(l.id)], keysBy[idKey(l.id)] = l.bytes, l.keys
	}
	var out []Violation
	for i, l := range loads {
		medCPU := others(i, func(l load) float64 { return l.cpu })
		if l.cpu < inv.MinCores || l.cpu < inv.Ratio*medCPU {
			continue
		}
		medBytes := others(i, func(l load) float64 { return l.bytes })
		medKeys := others(i, func(l load) float64 { return l.keys })
		if l.bytes > inv.FlowRatio*medBytes || l.keys > inv.FlowRatio*medKeys {
			continue // PD sees the imbalance in bytes or keys
		}
		ratio := 0.0
		if medCPU > 0 {
			ratio = roundRatio(l.cpu / medCPU)
		}
		stat := s.HotWrite.AsLeader[idKey(l.id)]
		stats := append([]pd.HotPeerStat(nil), stat.Stats...)
		sort.SliceStable(stats, func(i, j int) bool { return stats[i].ByteRate > stats[j].ByteRate })
		top := []uint64{}
		for _, p := range stats {
			if len(top) == inv.TopRegions {
				break
			}
			top = append(top, p.RegionID)
		}
		ev := map[string]any{
			"store_id":                     l.id,
			"cpu_cores":                    roundRatio(l.cpu),
			"median_other_cpu_cores":       roundRatio(medCPU),
			"cpu_ratio":                    ratio,
			"min_ratio":                    inv.Ratio,
			"min_cores":                    inv.MinCores,
			"cpu_cores_by_store":           cpuBy,
			"hot_write_bytes_per_sec":      l.bytes,
			"median_other_hot_write_bytes": medBytes,
			"hot_write_keys_per_sec":       l.keys,
			"median_other_hot_write_keys":  medKeys,
			"max_flow_ratio":               inv.FlowRatio,
			"hot_write_bytes_by_store":     bytesBy,
			"hot_write_keys_by_store":      keysBy,
			"hot_regions_count":            stat.Count,
			"hottest_region_ids":           top,
			"cpu_query":                    tikv.StoreCPUQuery,
			"source":                       "Prometheus tikv_thread_cpu_seconds_total by instance = store status_address; GET /hotspot/regions/write as_leader",
		}
		if st, ok := s.Store(l.id); ok {
			ev["status_address"] = st.Store.StatusAddress
		}
		ratioText := "others idle"
		if medCPU > 0 {
			ratioText = strconv.FormatFloat(l.cpu/medCPU, 'f', 1, 64) + "x"
		}
		out = append(out, Violation{
			Subject:  StoreSubject(l.id),
			Severity: ticket.Warning,
			Summary: fmt.Sprintf("store %d write-path CPU %.2f cores, %s the other stores' median %.2f, while PD's hot write bytes (%s/s) and keys (%.0f/s) look even",
				l.id, l.cpu, ratioText, medCPU, pd.ByteSize(uint64(l.bytes)), l.keys),
			Evidence: ev,
		})
	}
	return out, nil
}

// medianFloat returns the median of vs (0 for none); vs is reordered.
func medianFloat(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	sort.Float64s(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// cpuFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var cpuFamilies = map[string]family{
	// CPU PD cannot see: page (PD balances bytes, keys and queries only).
	NameHotWriteCPUImbalance: {hotWriteCPUImbalance, nil},
}

// hotWriteCPUImbalance (hot_write_cpu_imbalance): page. PD's hot-region
// scheduler weighs write hot spots by bytes, keys and query rates (its
// write-leader-priorities / write-peer-priorities; PingCAP docs: "Load
// Base Split" and pd-control "scheduler config balance-hot-region-scheduler"),
// never by CPU, so with even bytes and keys it has nothing to move
// (tikv/pd#3144, tikv/pd#4513, tikv/pd#5718); no PD action spreads CPU
// that PD cannot see, and moving leaders onto or off the store by hand
// fights the scheduler. A human finds why the same flow costs this store
// more CPU.
func hotWriteCPUImbalance(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	cpu, _ := f.ev.float("cpu_cores")
	med, _ := f.ev.float("median_other_cpu_cores")
	ratio, _ := f.ev.float("cpu_ratio")
	hotSched := f.scheduler(schedHotRegion)
	d := &diagnose.Diagnosis{
		Summary: fmt.Sprintf("store %d's TiKV write-path CPU is %.2f cores, %.1fx the other stores' median %.2f, while PD's hot write bytes and keys per store are even",
			id, cpu, ratio, med),
		Evidence: []string{
			fmt.Sprintf("Prometheus %s: store %d %.2f cores; by store: %s", f.ev.str("cpu_query"), id, cpu, countsLine("store", f.ev.counts("cpu_cores_by_store"))),
			"PD hot write flow as leader (GET /pd/api/v1/hotspot/regions/write), bytes/s: " + countsLine("store", roundMap(f.ev.counts("hot_write_bytes_by_store"))),
			"PD hot write flow as leader, keys/s: " + countsLine("store", roundMap(f.ev.counts("hot_write_keys_by_store"))),
			fmt.Sprintf("balance-hot-region-scheduler: %s; hot-region-schedule-limit %d", hotSched, f.c.Schedule.HotRegionScheduleLimit),
		},
		RootCause:  "PD balances write hot spots on the bytes, keys and query rates TiKV reports (the hot-region scheduler's write-leader-priorities and write-peer-priorities), not on CPU. Here those figures are even, so PD has nothing to move, yet one store burns far more CPU in its raftstore, apply, scheduler and gRPC threads for the same flow. Usual causes: a slower or CPU-throttled host (cgroup quota, noisy neighbour, power saving), many small writes or large transactions whose per-request cost is not in bytes/keys, raft log or lock contention on the regions it leads, or background work (compaction, GC) on that store.",
		Confidence: diagnose.ConfidenceMedium,
		Risks: []string{
			fmt.Sprintf("Store %d's write latency rises as its thread pools saturate; the regions it leads slow down first.", id),
			"Moving leaders off the store by hand fights PD's hot-region scheduler, which sees even bytes and keys and moves them back.",
		},
	}
	if top := f.ev.ids("hottest_region_ids"); len(top) > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("hottest regions store %d leads: %s", id, idList(top)))
	}
	if s, ok := f.store(id); ok {
		d.Evidence = append(d.Evidence, storeLine(s))
	}
	d.NoActionReason = page("PD cannot balance on CPU (its hot-region scheduler sees even bytes and keys); check store %d's host (CPU quota or throttling, other processes) and its thread CPU in Grafana (TiKV-Details > Thread CPU) against the others, then the workload of the regions it leads", id)
	return d
}
