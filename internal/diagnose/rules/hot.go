package rules

import (
	"fmt"
	"math"
	"strings"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

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

func roundMap(m map[uint64]float64) map[uint64]float64 {
	out := make(map[uint64]float64, len(m))
	for k, v := range m {
		out[k] = math.Round(v)
	}
	return out
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " {("); i > 0 {
		return s[:i]
	}
	return s
}

// regionOversized (region_oversized, PingCAP docs: tune-region-performance): split the region with
// policy approximate (scan as the fallback named in the rationale).
func regionOversized(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("region_id")
	if rid, ok := subjectRegion(f); ok {
		id = rid
	}
	d := &diagnose.Diagnosis{}
	size, _ := f.ev.uint("approximate_size_mib")
	keys, _ := f.ev.uint("approximate_keys")
	total, _ := f.ev.uint("oversized_regions")
	d.Summary = fmt.Sprintf("region %d is oversized: %d MiB, %d keys, and is not splitting", id, size, keys)
	d.Evidence = []string{fmt.Sprintf("PD lists region %d in GET /pd/api/v1/regions/check/oversized-region (%d MiB, %d keys); %d regions are oversized in all", id, size, keys, total)}
	d.RootCause = "TiKV splits a region once it grows past region-split-size / region-split-keys, checking every split-region-check-tick; a region far above that means the split checker is not keeping up (it scans the region and is IO-bound on large regions), splitting is disabled for the range, or region-max-size was raised (PingCAP docs: tune-region-performance). Oversized regions make snapshots, leader balance and replica moves expensive and can make snapshots fail."
	if total > 10 {
		d.RootCause += fmt.Sprintf(" With %d oversized regions the cause is likely cluster-wide (TiKV split configuration or IO), not this region alone.", total)
	}
	d.Confidence = diagnose.ConfidenceHigh
	d.Risks = []string{"An oversized region keeps making snapshots and replica moves slow, and can make them fail."}
	r, ok := f.regions[id]
	switch {
	case !ok:
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("region %d is no longer known to PD (it split or merged since the ticket fired); the ticket resolves if it is gone for good", id)
		return d
	case f.halted():
		d.NoActionReason = page("PD halts all scheduling (halt-scheduling=true), so no split operator can run")
		return d
	}
	d.Evidence = append(d.Evidence, f.regionLine(r))
	if len(r.PendingPeers) > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("region %d has %d pending peers: a snapshot this large may be failing to apply", r.ID, len(r.PendingPeers)))
	}
	if op, busy := f.runningOperator(r.ID); busy {
		d.NoActionReason = page("PD already runs an operator on region %d (%s); wait for it and re-check", r.ID, firstWord(op.Desc))
		return d
	}
	if !r.HasLeader() {
		d.NoActionReason = leaderlessPage([]*pd.Region{r})
		return d
	}
	urgency := action.WhenConvenient
	if r.ApproximateSize >= f.opts.UrgentRegionSizeMiB {
		urgency = action.Soon
	}
	d.ProposedAction = propose(tikv.ActionSplitRegion, map[string]any{"region_id": r.ID, "policy": "approximate"}, urgency,
		"Split region %d (%d MiB, %d keys) in two at the middle key TiKV estimates from its size (policy approximate); repeat on the halves until they are below region-max-size. If approximate picks a bad key (the halves stay lopsided), split again with policy scan, which reads the whole region to find the exact middle.",
		r.ID, r.ApproximateSize, r.ApproximateKeys)
	d.Risks = []string{
		"policy scan, if needed later, reads the whole region: heavy IO on the leader's store for a region this size.",
		"A split is not directly reversible; small halves may be merged back by PD's merge checker after split-merge-interval.",
		"Until the underlying cause is fixed, the region (or its halves) may grow oversized again.",
	}
	return d
}
