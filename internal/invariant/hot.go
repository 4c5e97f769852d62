package invariant

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
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

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// hotFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var hotFamilies = map[string]family{
	NameHotWriteStore: {hotWriteStore, []string{tikv.ActionSplitRegion}},
}

// hotWriteStore (hot_write_store): split the hottest region the store
// leads (policy approximate) so that PD's hot-region scheduler can move
// half of its load, unless that region is tiny or empty (then the heat is
// a few keys, and a split moves nothing).
func hotWriteStore(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	d := &diagnose.Diagnosis{}
	flow, _ := f.ev.float("hot_write_bytes_per_sec")
	total, _ := f.ev.float("total_hot_write_bytes_per_sec")
	share, _ := f.ev.float("share")
	hottest := f.ev.ids("hottest_region_ids")
	flows := f.ev.counts("hottest_region_bytes_per_sec")
	hotSched := f.scheduler(schedHotRegion)
	d.Summary = fmt.Sprintf("write hot spot on store %d: %s/s of %s/s hot write flow (%s)", id, bytesOf(uint64(flow)), bytesOf(uint64(total)), pct(share))
	d.Evidence = []string{
		fmt.Sprintf("store %d leads %s of the cluster's hot write flow (GET /pd/api/v1/hotspot/regions/write, as_leader): %s/s of %s/s", id, pct(share), bytesOf(uint64(flow)), bytesOf(uint64(total))),
		"hottest regions it leads, bytes/s: " + hotList(hottest, flows),
		fmt.Sprintf("balance-hot-region-scheduler: %s; hot-region-schedule-limit %d", hotSched, f.c.Schedule.HotRegionScheduleLimit),
	}
	if by := f.ev.counts("hot_write_bytes_by_store"); len(by) > 0 {
		d.Evidence = append(d.Evidence, "hot write flow by store, bytes/s: "+countsLine("store", roundMap(by)))
	}
	if s, ok := f.store(id); ok {
		d.Evidence = append(d.Evidence, storeLine(s))
	}
	var cause []string
	if hotSched != "running" {
		cause = append(cause, fmt.Sprintf("PD's hot-region scheduler (balance-hot-region-scheduler) is %s, so PD does not spread hot leaders and peers across stores.", hotSched))
	} else {
		cause = append(cause, "PD's hot-region scheduler runs, but it moves whole regions: when the heat sits in one or two regions there is nothing it can balance without a split.")
	}
	cause = append(cause, "TiKV's load-based split only splits regions whose QPS or bytes stay above its thresholds; write flow concentrated on one key range (a sequential primary key, an index on a timestamp) keeps hitting the same region.")
	d.RootCause = strings.Join(cause, " ")
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{fmt.Sprintf("The hot spot keeps store %d busy: higher write latency for the regions it leads.", id)}

	var r *pd.Region
	for _, rid := range hottest {
		if got, ok := f.regions[rid]; ok {
			r = got
			break
		}
	}
	switch {
	case r == nil:
		d.NoActionReason = page("none of the hottest regions %s is known to PD any more (split or merged since); re-check GET /pd/api/v1/hotspot/regions/write", idList(hottest))
		return d
	case f.halted():
		d.NoActionReason = page("PD halts all scheduling (halt-scheduling=true), so no split operator can run")
		return d
	}
	d.Evidence = append(d.Evidence, f.regionLine(r))
	if r.ApproximateSize < f.opts.MinSplitSizeMiB || (r.ApproximateSize <= 1 && r.ApproximateKeys == 0) {
		d.RootCause += fmt.Sprintf(" Region %d is tiny (%d MiB, %d keys): its heat comes from a few keys written over and over (a counter row, a queue table, a hot index entry).", r.ID, r.ApproximateSize, r.ApproximateKeys)
		d.Risks = []string{"Splitting a tiny region moves no load: every write still hits the same keys."}
		d.NoActionReason = page("the hottest region %d is tiny (%d MiB, %d keys); the fix is in the workload or schema (spread the hot keys: AUTO_RANDOM or SHARD_ROW_ID_BITS, avoid single-row counters)", r.ID, r.ApproximateSize, r.ApproximateKeys)
		return d
	}
	if op, busy := f.runningOperator(r.ID); busy {
		d.NoActionReason = page("PD already runs an operator on region %d (%s); wait for it and re-check", r.ID, firstWord(op.Desc))
		return d
	}
	if !r.HasLeader() {
		d.NoActionReason = leaderlessPage([]*pd.Region{r})
		return d
	}
	mover := "PD's hot-region scheduler then moves one of them"
	if hotSched != "running" {
		mover = "a leader transfer of one half (or PD's hot-region scheduler, once resumed) then moves half the load"
	}
	d.ProposedAction = propose(tikv.ActionSplitRegion, map[string]any{"region_id": r.ID, "policy": "approximate"}, action.Soon,
		"Split region %d (%d MiB, %s/s of write flow, the hottest region store %d leads) at its approximate middle, so the two halves can be led by different stores; %s. policy scan finds an exact middle key if approximate picks a poor one.",
		r.ID, r.ApproximateSize, bytesOf(uint64(flows[r.ID])), id, mover)
	d.Risks = []string{
		"If writes go to the end of the key range (an increasing key), the right half stays hot: the split is only temporary relief, the lasting fix is in the schema (AUTO_RANDOM, SHARD_ROW_ID_BITS).",
		"A split is not directly reversible; halves smaller than max-merge-region-size are merged back by PD after split-merge-interval (default 1h).",
	}
	if hotSched != "running" {
		d.Risks = append(d.Risks, "With the hot-region scheduler "+hotSched+", both halves stay on store "+fmt.Sprint(id)+" until a leader is moved: the split alone does not move load.")
	}
	return d
}

func hotList(ids []uint64, flows map[uint64]float64) string {
	if len(ids) == 0 {
		return "none listed"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("region %d %s/s", id, bytesOf(uint64(flows[id])))
	}
	return strings.Join(parts, ", ")
}
