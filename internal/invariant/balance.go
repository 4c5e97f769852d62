package invariant

import (
	"context"
	"fmt"
	"math"
	"slices"
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

// BalanceKind selects what Imbalance counts per store.
type BalanceKind int

// Balance kinds.
const (
	// Leaders counts status.leader_count.
	Leaders BalanceKind = iota
	// Regions counts status.region_count (peers).
	Regions
)

func (k BalanceKind) String() string {
	if k == Leaders {
		return "leader"
	}
	return "region"
}

// Imbalance (leader_imbalance, region_imbalance) compares the leader or
// region count of the Up TiKV stores (state_name "Up"; TiFlash, Offline,
// Disconnected and Down stores excluded; for leaders also stores an
// evict-leader scheduler holds, whose zero is intended and reported by
// store_no_leaders). With at least two such stores, it is violated when
//
//	max - min > max(MinDiff, Ratio * mean)
//
// so small clusters need an absolute gap (MinDiff; the default 6 stays
// above what PD's balance-leader scheduler tolerates) and large ones a relative one
// (Ratio of the mean; default 0.6 for leaders, 0.3 for regions, see
// Config). Counts lag by up to one region
// heartbeat (60s). Warning; subject "cluster"; evidence has the per-store
// counts and the most and least loaded store ids. Constructed by Default.
type Imbalance struct {
	base
	Kind    BalanceKind
	Ratio   float64
	MinDiff int
}

// Eval implements Invariant.
func (inv *Imbalance) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	needs := []string{sourceStores}
	if inv.Kind == Leaders {
		needs = append(needs, tikv.SourceSchedulers, tikv.SourceEvictLeader)
	}
	if err := needSources(inv.name, s, needs...); err != nil {
		return nil, err
	}
	evicted := evictLeaderStores(s)
	counts := map[uint64]int{}
	weights := map[uint64]float64{}
	var excluded []uint64
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName != pd.StateUp || st.IsTiFlash() {
			continue
		}
		if inv.Kind == Leaders && evicted[st.Store.ID] {
			excluded = append(excluded, st.Store.ID)
			continue
		}
		if inv.Kind == Leaders {
			counts[st.Store.ID] = st.Status.LeaderCount
			weights[st.Store.ID] = st.Status.LeaderWeight
		} else {
			counts[st.Store.ID] = st.Status.RegionCount
			weights[st.Store.ID] = st.Status.RegionWeight
		}
	}
	if len(counts) < 2 {
		return nil, nil
	}
	raw := counts
	counts, weighted := byWeight(counts, weights)
	ids := sortedIDs(counts)
	maxID, minID := ids[0], ids[0]
	sum := 0
	for _, id := range ids {
		c := counts[id]
		sum += c
		if c > counts[maxID] {
			maxID = id
		}
		if c < counts[minID] {
			minID = id
		}
	}
	mean := float64(sum) / float64(len(ids))
	diff := counts[maxID] - counts[minID]
	threshold := math.Max(float64(inv.MinDiff), inv.Ratio*mean)
	if float64(diff) <= threshold {
		return nil, nil
	}
	per := make(map[string]int, len(counts))
	for id, c := range counts {
		per[idKey(id)] = c
	}
	kind := inv.Kind.String()
	ev := map[string]any{
		kind + "_counts":   per,
		"max_store_id":     maxID,
		"max_count":        counts[maxID],
		"min_store_id":     minID,
		"min_count":        counts[minID],
		"mean":             roundRatio(mean),
		"diff":             diff,
		"threshold":        roundRatio(threshold),
		"ratio":            inv.Ratio,
		"min_diff":         inv.MinDiff,
		"stores_compared":  len(ids),
		"rule":             "max-min > max(min_diff, ratio*mean) over Up TiKV stores",
		"balance_schedule": balanceSchedulerState(s, inv.Kind),
	}
	if len(excluded) > 0 {
		ev["excluded_evict_leader_stores"] = excluded
	}
	if weighted {
		// PD balances count/weight (leader_score, region_score): a store
		// with twice the weight is meant to hold twice as many.
		rawPer := make(map[string]int, len(raw))
		wPer := make(map[string]float64, len(weights))
		for id, c := range raw {
			rawPer[idKey(id)] = c
			wPer[idKey(id)] = weights[id]
		}
		ev[kind+"_counts_raw"] = rawPer
		ev[kind+"_weights"] = wPer
		ev["rule"] = "max-min > max(min_diff, ratio*mean) over Up TiKV stores, counts normalised by store weight (count * mean_weight / weight), as PD's scores are"
	}
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Warning,
		Summary: fmt.Sprintf("%s imbalance across %d Up TiKV stores: store %d has %d %ss, store %d has %d (diff %d > %.1f)",
			kind, len(ids), maxID, counts[maxID], kind, minID, counts[minID], diff, threshold),
		Evidence: ev,
	}}, nil
}

// byWeight normalises counts by store weight as PD's scores do
// (leader_score = leader_count / leader_weight with the count policy;
// pd-ctl store weight): count * mean_weight / weight, rounded. A weight
// that is missing or not positive counts as 1 (PD's default). With equal
// weights the counts are returned unchanged and weighted is false.
func byWeight(counts map[uint64]int, weights map[uint64]float64) (out map[uint64]int, weighted bool) {
	sum, first, same := 0.0, -1.0, true
	w := make(map[uint64]float64, len(counts))
	for id := range counts {
		v := weights[id]
		if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			v = 1
		}
		w[id] = v
		sum += v
		if first < 0 {
			first = v
		} else if v != first {
			same = false
		}
	}
	if same {
		return counts, false
	}
	mean := sum / float64(len(w))
	out = make(map[uint64]int, len(counts))
	for id, c := range counts {
		out[id] = int(math.Round(float64(c) * mean / w[id]))
	}
	return out, true
}

// balanceSchedulerState says whether PD's balance scheduler for kind is
// running, paused or absent, a first hint for the diagnosis.
func balanceSchedulerState(s *tikv.Snapshot, k BalanceKind) string {
	name := "balance-" + k.String() + "-scheduler"
	for _, n := range s.PausedSchedulers {
		if n == name {
			return "paused"
		}
	}
	for _, n := range s.Schedulers {
		if n == name {
			return "running"
		}
	}
	return "absent"
}

// evictLeaderStores returns the stores an evict-leader scheduler holds:
// Snapshot.EvictLeaderStores plus, for PD < 4.0, the ids in scheduler
// names "evict-leader-scheduler-{id}".
func evictLeaderStores(s *tikv.Snapshot) map[uint64]bool {
	out := map[uint64]bool{}
	for _, id := range s.EvictLeaderStores {
		out[id] = true
	}
	for _, n := range s.Schedulers {
		if rest, ok := strings.CutPrefix(n, pd.EvictLeaderScheduler+"-"); ok {
			if id, err := strconv.ParseUint(rest, 10, 64); err == nil {
				out[id] = true
			}
		}
	}
	return out
}

// StoreNoLeaders (pingcap/tidb-operator#4483, pingcap/tiup#369) is an Up TiKV store that has been up for
// more than MinUptime, holds regions (region_count > 0) but no leader
// (leader_count == 0, omitted by old PDs), while other Up TiKV stores hold
// leaders. The usual cause is an evict-leader scheduler left behind by an
// upgrade; the evidence says whether one holds the store and lists the
// scheduler names. Warning; one violation per store. Constructed by Default.
type StoreNoLeaders struct {
	base
	MinUptime time.Duration
}

// Eval implements Invariant.
func (inv *StoreNoLeaders) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores, tikv.SourceSchedulers, tikv.SourceEvictLeader); err != nil {
		return nil, err
	}
	ref := refTime(s, now)
	evicted := evictLeaderStores(s)
	totalLeaders := 0
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName == pd.StateUp && !st.IsTiFlash() {
			totalLeaders += st.Status.LeaderCount
		}
	}
	var out []Violation
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName != pd.StateUp || st.IsTiFlash() {
			continue
		}
		up := uptime(st)
		if up <= inv.MinUptime || st.Status.RegionCount == 0 || st.Status.LeaderCount != 0 || totalLeaders == 0 {
			continue
		}
		var scheds []string
		for _, n := range s.Schedulers {
			if n == pd.EvictLeaderScheduler || strings.HasPrefix(n, pd.EvictLeaderScheduler+"-") ||
				n == "evict-slow-store-scheduler" || n == "evict-slow-trend-scheduler" {
				scheds = append(scheds, n)
			}
		}
		ev := storeEvidence(st, ref)
		ev["uptime_seconds"] = seconds(up)
		ev["min_uptime_seconds"] = seconds(inv.MinUptime)
		ev["other_stores_leaders"] = totalLeaders
		ev["evict_leader_scheduler"] = evicted[st.Store.ID]
		ev["evict_schedulers"] = scheds
		ev["slow_score"] = st.Status.SlowScore
		ev["leader_weight"] = st.Status.LeaderWeight
		cause := ""
		if evicted[st.Store.ID] {
			cause = "; an evict-leader scheduler holds it"
		}
		out = append(out, Violation{
			Subject:  StoreSubject(st.Store.ID),
			Severity: ticket.Warning,
			Summary: fmt.Sprintf("store %d has %d regions but 0 leaders after %s up while other stores hold %d leaders%s",
				st.Store.ID, st.Status.RegionCount, up.Round(time.Second), totalLeaders, cause),
			Evidence: ev,
		})
	}
	return out, nil
}

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// balanceFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var balanceFamilies = map[string]family{
	NameLeaderImbalance: {leaderImbalance, []string{tikv.ActionTransferLeader, actionResumeScheduler, actionAddScheduler}},
	NameRegionImbalance: {regionImbalance, []string{tikv.ActionTransferPeer, actionResumeScheduler, actionAddScheduler}},
	NameStoreNoLeaders:  {storeNoLeaders, []string{tikv.ActionRemoveEvictLeader, actionResumeScheduler, actionAddScheduler}},
}

// balanceStores returns the stores an imbalance compares (Up TiKV, and
// for leaders not under evict-leader) with their current count, by id.
func (f *facts) balanceStores(leaders bool) (ids []uint64, counts map[uint64]int) {
	counts = map[uint64]int{}
	for _, id := range f.upTiKV() {
		s := f.stores[id]
		if leaders && f.evicted[id] {
			continue
		}
		ids = append(ids, id)
		if leaders {
			counts[id] = s.Status.LeaderCount
		} else {
			counts[id] = s.Status.RegionCount
		}
	}
	return ids, counts
}

// extremes returns the most and least loaded of ids (ties: lower id), by
// count or by score.
func extremes[N int | float64](ids []uint64, v map[uint64]N) (maxID, minID uint64) {
	for i, id := range ids {
		if i == 0 || v[id] > v[maxID] {
			maxID = id
		}
		if i == 0 || v[id] < v[minID] {
			minID = id
		}
	}
	return maxID, minID
}

// mean is the mean of v over ids (0 for none).
func mean[N int | float64](ids []uint64, v map[uint64]N) float64 {
	if len(ids) == 0 {
		return 0
	}
	sum := 0.0
	for _, id := range ids {
		sum += float64(v[id])
	}
	return sum / float64(len(ids))
}

// imbalanceThreshold is the ticket's threshold, or the invariant's default
// rule max(minDiff, ratio*mean) when the evidence lacks it.
func (f *facts) imbalanceThreshold(m float64, ratio float64, minDiff int) float64 {
	if t, ok := f.ev.float("threshold"); ok {
		return t
	}
	if r, ok := f.ev.float("ratio"); ok {
		ratio = r
	}
	if d, ok := f.ev.uint("min_diff"); ok {
		minDiff = int(d)
	}
	return math.Max(float64(minDiff), ratio*m)
}

func countsMap(ids []uint64, counts map[uint64]int) map[uint64]float64 {
	out := make(map[uint64]float64, len(ids))
	for _, id := range ids {
		out[id] = float64(counts[id])
	}
	return out
}

// leaderImbalance (leader_imbalance): transfer the leader of one region
// from the most loaded store to the least loaded Up store that already
// holds a healthy voter of it; the root cause is usually PD's own
// balance-leader scheduler being paused or removed.
func leaderImbalance(f *facts) *diagnose.Diagnosis {
	ids, counts := f.balanceStores(true)
	d := &diagnose.Diagnosis{}
	if len(ids) < 2 {
		d.Summary = "leader imbalance: fewer than two Up TiKV stores can hold leaders now"
		d.RootCause = "PD lists fewer than two Up TiKV stores outside evict-leader-scheduler, so leaders have nowhere to be balanced to."
		d.Evidence = []string{"Up TiKV stores able to hold leaders: " + idList(ids), "under evict-leader-scheduler: " + idList(sortedKeys(f.evicted))}
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("there are not two Up TiKV stores to balance leaders between; check why stores are down or evicted")
		return d
	}
	maxID, minID := extremes(ids, counts)
	m := mean(ids, counts)
	threshold := f.imbalanceThreshold(m, 0.6, 2)
	diff := counts[maxID] - counts[minID]
	balancer := f.scheduler(schedBalanceLeader)
	d.Summary = fmt.Sprintf("leader imbalance: store %d leads %d regions, store %d leads %d (diff %d > %.1f)",
		maxID, counts[maxID], minID, counts[minID], diff, threshold)
	d.Evidence = []string{
		"leader_count now, Up TiKV stores (GET /pd/api/v1/stores): " + countsLine("store", countsMap(ids, counts)),
		fmt.Sprintf("diff %d between store %d and store %d; threshold %.1f = max(min_diff, ratio x mean %.1f)", diff, maxID, minID, threshold, m),
		fmt.Sprintf("balance-leader-scheduler: %s (GET /pd/api/v1/schedulers); leader-schedule-limit %d", balancer, f.c.Schedule.LeaderScheduleLimit),
	}
	if ev := f.ev.counts("leader_counts"); len(ev) > 0 {
		d.Evidence = append(d.Evidence, "leader_count when the ticket fired: "+countsLine("store", ev))
	}
	if len(f.evicted) > 0 {
		d.Evidence = append(d.Evidence, "left out (under evict-leader-scheduler, leaders evicted on purpose): stores "+idList(sortedKeys(f.evicted)))
	}
	if float64(diff) <= threshold {
		d.Summary = fmt.Sprintf("leader imbalance no longer visible: diff %d <= %.1f", diff, threshold)
		d.RootCause = "PD's current leader counts are within the threshold: the skew was transient (a restart or PD rebalancing) and has corrected itself."
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{"If the skew comes back, the monitor reopens the ticket."}
		d.NoActionReason = page("the imbalance is gone in PD's current numbers; nothing to move (the ticket resolves once the monitor sees it hold)")
		return d
	}
	// PD balances leader_score (leader_count or leader_size over
	// leader_weight, by leader-schedule-policy), not counts: uneven counts
	// with even scores are what PD wants (different weights or region
	// sizes) and need no action.
	if scores, ok := f.scores(ids, true); ok {
		sMax, sMin := extremes(ids, scores)
		spread := scores[sMax] - scores[sMin]
		tol := threshold * mean(ids, scores) / math.Max(m, 1)
		d.Evidence = append(d.Evidence, "leader_score now (PD's balance measure, weights applied): "+countsLine("store", roundScores(ids, scores))+
			fmt.Sprintf("; spread %.1f between store %d and store %d, tolerance %.1f (the count threshold in score units)", spread, sMax, sMin, tol),
			"leader_weight: "+countsLine("store", f.weights(ids, true)))
		if spread <= tol {
			d.Summary = fmt.Sprintf("leader counts differ (store %d: %d, store %d: %d) but PD's leader scores are even", maxID, counts[maxID], minID, counts[minID])
			d.RootCause = fmt.Sprintf("PD balances leaders on leader_score, which divides by leader_weight (and by region size with leader-schedule-policy size); the scores differ by %.1f only, within tolerance %.1f. The count difference is what the weights and region sizes ask for: PD's balance-leader scheduler would undo any transfer.", spread, tol)
			d.Confidence = diagnose.ConfidenceHigh
			d.Risks = []string{"None from waiting: the cluster is balanced the way PD measures it. Change the stores' leader weights (pd-ctl store weight) if the split is not intended."}
			d.NoActionReason = page("counts are uneven but PD's scores are even; nothing to move")
			return d
		}
		maxID, minID = sMax, sMin
		diff = counts[maxID] - counts[minID]
	}
	if minS := f.stores[minID]; minS.Status.RegionCount == 0 {
		d.RootCause = fmt.Sprintf("Store %d holds no region at all, so it cannot lead any: this is a region placement problem, not a leader one.", minID)
		if f.lowSpace(minS) {
			d.RootCause += fmt.Sprintf(" It is low on space (%s of %s available), so PD places no replica on it.", minS.Status.Available, minS.Status.Capacity)
		} else {
			d.RootCause += " A new store receives regions from PD's balance-region scheduler over time; check that it runs and that the store's labels fit the placement rules."
		}
		d.Evidence = append(d.Evidence, storeLine(minS))
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{fmt.Sprintf("The other stores carry all of store %d's share of the load.", minID)}
		d.NoActionReason = page("store %d has no regions to lead; fix why it gets no replicas (space, labels, balance-region) rather than moving leaders", minID)
		return d
	}
	maxW, minW := f.stores[maxID].Status.LeaderWeight, f.stores[minID].Status.LeaderWeight
	if maxW > 0 && minW >= 0 && maxW > minW {
		d.RootCause = fmt.Sprintf("The skew follows the stores' leader weights: PD balances leader_count / leader_weight, and store %d has weight %g while store %d has %g, so PD keeps more leaders on store %d on purpose.",
			maxID, maxW, minID, minW, maxID)
		d.Evidence = append(d.Evidence, fmt.Sprintf("leader_weight: store %d %g, store %d %g (pd-ctl store weight)", maxID, maxW, minID, minW))
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{"Moving leaders against the weights is undone by PD's balance-leader scheduler."}
		d.NoActionReason = page("the skew is what the configured leader weights ask for; change the weights (pd-ctl store weight) if it is not intended")
		return d
	}
	var cause []string
	conf := diagnose.ConfidenceMedium
	urgency := action.WhenConvenient
	switch balancer {
	case "paused":
		cause = append(cause, "PD's balance-leader-scheduler is paused (GET /pd/api/v1/schedulers?status=paused), so PD does not move leaders back; resuming it (pd-ctl scheduler resume balance-leader-scheduler) restores the balance for good.")
		conf, urgency = diagnose.ConfidenceHigh, action.Soon
		if f.hasAction(actionResumeScheduler) && !f.halted() {
			d.RootCause = cause[0]
			d.Confidence = diagnose.ConfidenceHigh
			d.ProposedAction = propose(actionResumeScheduler, map[string]any{"name": schedBalanceLeader}, action.Soon,
				"Resume PD's balance-leader-scheduler (POST /pd/api/v1/schedulers/balance-leader-scheduler {\"delay\": 0}, pd-ctl scheduler resume): it is paused, which is why the leaders of store %d (%d) never move back to store %d (%d). PD then evens the leaders out itself, under leader-schedule-limit %d, instead of one approved transfer at a time.",
				maxID, counts[maxID], minID, counts[minID], f.c.Schedule.LeaderScheduleLimit)
			d.Risks = []string{
				"Whoever paused it may have had a reason (a maintenance window, a benchmark): ask before approving.",
				"PD moves many leaders over the next minutes: brief latency blips on the regions that move.",
			}
			return d
		}
	case "absent":
		cause = append(cause, "PD's balance-leader-scheduler is not running (absent from GET /pd/api/v1/schedulers): it was removed or never added, so nothing rebalances leaders; re-adding it (pd-ctl scheduler add balance-leader-scheduler) restores the balance for good.")
		conf, urgency = diagnose.ConfidenceHigh, action.Soon
	default:
		switch {
		case f.c.Schedule.LeaderScheduleLimit == 0:
			cause = append(cause, "balance-leader-scheduler runs but leader-schedule-limit is 0, so it may not create any operator.")
			conf, urgency = diagnose.ConfidenceHigh, action.Soon
		default:
			cause = append(cause, "balance-leader-scheduler runs, yet the skew persists: placement rules or label constraints may pin leaders, the hot-region scheduler may concentrate them, or the least loaded store recently restarted and leaders are still coming back.")
		}
	}
	if f.halted() {
		d.RootCause = "PD's halt-scheduling is true: PD creates no operator at all (BR restore, unsafe recovery or a manual halt), so neither its balancer nor an approved transfer can move leaders."
		d.Evidence = append(d.Evidence, "schedule.halt-scheduling: true (GET /pd/api/v1/config/schedule)")
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"Leaders stay skewed until scheduling is resumed."}
		d.NoActionReason = page("PD halts all scheduling (halt-scheduling=true); find out who halted it and why before resuming it")
		return d
	}
	d.RootCause = strings.Join(cause, " ")
	d.Confidence = conf
	if balancer == "running" && f.c.Schedule.LeaderScheduleLimit > 0 && f.storeIncident(d, "leaders") {
		return d
	}

	// PD's own operators already moving leaders off the loaded store or
	// onto the light one: PD is rebalancing; a transfer of ours would only
	// race it.
	for _, fl := range f.opFlows() {
		if fl.from == maxID || fl.to == minID {
			d.Evidence = append(d.Evidence, fmt.Sprintf("PD's running operator %s on region %d moves load from store %d to store %d (GET /pd/api/v1/operators)", fl.name, fl.region, fl.from, fl.to))
			d.RootCause = fmt.Sprintf("PD is already rebalancing: its running operators move leaders from store %d towards store %d. The skew shrinks as they complete (leader-schedule-limit %d at a time).", fl.from, fl.to, f.c.Schedule.LeaderScheduleLimit)
			d.Confidence = diagnose.ConfidenceHigh
			d.Risks = []string{"None from waiting; a transfer of ours would race PD's operators on the same stores."}
			d.NoActionReason = page("PD's scheduler is moving leaders already (%s on region %d); re-check once its operators finish", fl.name, fl.region)
			return d
		}
	}
	// Targets: the least loaded first, then the other stores below the
	// mean, lightest first; never a slow store.
	targets := []uint64{minID}
	rest := slices.Clone(ids)
	sort.SliceStable(rest, func(i, j int) bool { return counts[rest[i]] < counts[rest[j]] })
	for _, id := range rest {
		if id != minID && id != maxID && float64(counts[id]) < m {
			targets = append(targets, id)
		}
	}
	var skipped []string
	for _, to := range targets {
		if why := f.unfit(to, true); why != "" {
			skipped = append(skipped, why)
			continue
		}
		if why := f.againstPD(maxID, to); why != "" {
			skipped = append(skipped, why)
			continue
		}
		for _, r := range f.regionsOnStore(maxID) {
			if r.Leader.StoreID != maxID {
				continue
			}
			peer, ok := f.leaderCapable(r, to)
			if !ok {
				continue
			}
			if _, busy := f.runningOperator(r.ID); busy {
				continue
			}
			d.Evidence = append(d.Evidence, f.regionLine(r)+" (GET /pd/api/v1/regions/store/"+fmt.Sprint(maxID)+")")
			if len(skipped) > 0 {
				d.Evidence = append(d.Evidence, "targets skipped: "+strings.Join(skipped, "; "))
			}
			d.ProposedAction = propose(tikv.ActionTransferLeader, map[string]any{"region_id": r.ID, "to_store_id": to}, urgency,
				"Move the leader of region %d from store %d (%d leaders) to store %d (%d leaders), which already holds a healthy voter of it (peer %d): one step of what PD's balance-leader scheduler would do.",
				r.ID, maxID, counts[maxID], to, counts[to], peer.ID)
			if balancer == "paused" {
				d.ProposedAction.Rationale += " The lasting fix is to resume balance-leader-scheduler (pd-ctl scheduler resume balance-leader-scheduler); the catalog has no resume_scheduler action yet."
			}
			d.Risks = []string{
				fmt.Sprintf("Requests in flight on region %d are retried on the new leader: a latency blip of milliseconds.", r.ID),
				fmt.Sprintf("One transfer moves one leader of a %d-leader gap: the skew persists until PD's balance-leader scheduler runs again or more transfers are approved.", diff),
			}
			if balancer == "running" {
				d.Risks = append(d.Risks, "balance-leader-scheduler is running: if a placement or label constraint prefers store "+fmt.Sprint(maxID)+", PD moves the leader back.")
			}
			d.Risks = append(d.Risks, fmt.Sprintf("Store %d takes the region's reads and writes; check it has headroom (CPU, disk) before moving many leaders.", to))
			return d
		}
	}
	d.Evidence = append(d.Evidence, fmt.Sprintf("%d gathered regions have a peer on store %d; none is led by it with a healthy voter on stores %s and no running operator",
		len(f.regionsOnStore(maxID)), maxID, idList(targets)))
	if len(skipped) > 0 {
		d.Evidence = append(d.Evidence, "targets skipped: "+strings.Join(skipped, "; "))
	}
	d.Risks = []string{"Leaders stay skewed: store " + fmt.Sprint(maxID) + " keeps serving most reads and writes."}
	d.NoActionReason = page("no region led by store %d with a healthy voter on a less loaded Up store was found; check placement rules with leader constraints (pd-ctl config placement-rules show) and the balance-leader scheduler", maxID)
	return d
}

// regionImbalance (region_imbalance): PD's balance-region scheduler moves
// many regions to fix this; a single transfer_peer is proposed only when
// one move brings the stores back within the threshold.
func regionImbalance(f *facts) *diagnose.Diagnosis {
	ids, counts := f.balanceStores(false)
	d := &diagnose.Diagnosis{}
	if len(ids) < 2 {
		d.Summary = "region imbalance: fewer than two Up TiKV stores now"
		d.RootCause = "PD lists fewer than two Up TiKV stores, so there is nothing to balance between."
		d.Evidence = []string{"Up TiKV stores: " + idList(ids)}
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("fewer than two Up TiKV stores; look at the stores that are not Up")
		return d
	}
	maxID, minID := extremes(ids, counts)
	m := mean(ids, counts)
	threshold := f.imbalanceThreshold(m, 0.3, 5)
	diff := counts[maxID] - counts[minID]
	balancer := f.scheduler(schedBalanceRegion)
	maxS, minS := f.stores[maxID], f.stores[minID]
	d.Summary = fmt.Sprintf("region imbalance: store %d holds %d regions, store %d holds %d (diff %d > %.1f)",
		maxID, counts[maxID], minID, counts[minID], diff, threshold)
	d.Evidence = []string{
		"region_count now, Up TiKV stores (GET /pd/api/v1/stores): " + countsLine("store", countsMap(ids, counts)),
		fmt.Sprintf("diff %d; threshold %.1f = max(min_diff, ratio x mean %.1f)", diff, threshold, m),
		fmt.Sprintf("balance-region-scheduler: %s; region-schedule-limit %d", balancer, f.c.Schedule.RegionScheduleLimit),
		storeLine(maxS), storeLine(minS),
	}
	if float64(diff) <= threshold {
		d.Summary = fmt.Sprintf("region imbalance no longer visible: diff %d <= %.1f", diff, threshold)
		d.RootCause = "PD's current region counts are within the threshold; PD's balancer has caught up."
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("the imbalance is gone in PD's current numbers; nothing to move")
		return d
	}
	// PD balances region_score (region size over region_weight, with a
	// low-space penalty), not counts.
	if scores, ok := f.scores(ids, false); ok {
		sMax, sMin := extremes(ids, scores)
		spread := scores[sMax] - scores[sMin]
		tol := threshold * mean(ids, scores) / math.Max(m, 1)
		d.Evidence = append(d.Evidence, "region_score now (PD's balance measure): "+countsLine("store", roundScores(ids, scores))+
			fmt.Sprintf("; spread %.1f between store %d and store %d, tolerance %.1f (the count threshold in score units)", spread, sMax, sMin, tol),
			"region_weight: "+countsLine("store", f.weights(ids, false)))
		if spread <= tol {
			d.Summary = fmt.Sprintf("region counts differ (store %d: %d, store %d: %d) but PD's region scores are even", maxID, counts[maxID], minID, counts[minID])
			d.RootCause = fmt.Sprintf("PD balances regions on region_score (region size over region_weight), not on counts; the scores differ by %.1f only, within tolerance %.1f. Stores holding regions of different sizes differ in count on purpose.", spread, tol)
			d.Confidence = diagnose.ConfidenceHigh
			d.Risks = []string{"None from waiting: PD's balance-region scheduler would undo a move made on counts."}
			d.NoActionReason = page("counts are uneven but PD's region scores are even; nothing to move")
			return d
		}
		if sMax != maxID || sMin != minID {
			maxID, minID = sMax, sMin
			maxS, minS = f.stores[maxID], f.stores[minID]
			diff = counts[maxID] - counts[minID]
		}
	}
	if balancer == "running" && f.c.Schedule.RegionScheduleLimit > 0 && f.storeIncident(d, "regions") {
		return d
	}
	var cause []string
	switch {
	case balancer != "running":
		cause = append(cause, fmt.Sprintf("PD's balance-region-scheduler is %s, so nothing moves regions to the emptier stores; resume or re-add it (pd-ctl scheduler add balance-region-scheduler).", balancer))
	case f.c.Schedule.RegionScheduleLimit == 0:
		cause = append(cause, "region-schedule-limit is 0, so balance-region creates no operator.")
	case f.lowSpace(minS):
		cause = append(cause, fmt.Sprintf("Store %d is low on space (%s of %s available), and PD does not move regions onto a low-space store.", minID, minS.Status.Available, minS.Status.Capacity))
	case minS.Status.RegionWeight > 0 && maxS.Status.RegionWeight > minS.Status.RegionWeight:
		cause = append(cause, fmt.Sprintf("region weights differ (store %d %g, store %d %g): PD balances region_size / region_weight, so the skew is partly intended.", maxID, maxS.Status.RegionWeight, minID, minS.Status.RegionWeight))
	default:
		cause = append(cause, "balance-region runs but does not close the gap: PD balances region size (region_score), not count, so stores holding regions of different sizes differ in count; location labels or placement rules can also forbid the moves that would even the counts.")
	}
	if f.c.Replication.LocationLabels != "" {
		cause = append(cause, "Location labels ("+f.c.Replication.LocationLabels+") restrict where each replica may go.")
	}
	d.RootCause = strings.Join(cause, " ")
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{"Moving a replica copies the region (a snapshot of up to its size) to the target store: network and disk IO on both stores."}

	// One move changes max by -1 and min by +1; propose it only when that
	// is enough.
	after := map[uint64]int{}
	for _, id := range ids {
		after[id] = counts[id]
	}
	after[maxID]--
	after[minID]++
	amax, amin := extremes(ids, after)
	if float64(after[amax]-after[amin]) > threshold {
		d.NoActionReason = page("one replica move cannot close a %d-region gap (threshold %.1f); PD's balance-region scheduler has to do it over many operators: %s", diff, threshold, d.RootCause)
		return d
	}
	if f.halted() || balancer == "running" && f.c.Schedule.RegionScheduleLimit > 0 && !f.lowSpace(minS) {
		// PD itself will make this move shortly; or nothing may move.
		if f.halted() {
			d.NoActionReason = page("PD halts all scheduling (halt-scheduling=true)")
		} else {
			d.NoActionReason = page("PD's balance-region scheduler is running and can make this single move itself; watch its operators (pd-ctl operator show region)")
		}
		return d
	}
	if why := f.unfit(minID, false); why != "" {
		d.NoActionReason = page("store %d cannot take a replica now: %s", minID, why)
		return d
	}
	if why := f.againstPD(maxID, minID); why != "" {
		d.NoActionReason = page("a move from store %d to store %d would fight PD: %s", maxID, minID, why)
		return d
	}
	for _, r := range f.regionsOnStore(maxID) {
		if _, on := r.PeerOn(minID); on {
			continue
		}
		if _, busy := f.runningOperator(r.ID); busy {
			continue
		}
		pm := f.model(r)
		if !pm.HasLeader() || !pm.HasQuorum() || len(pm.UnhealthyVoters()) > 0 || pm.Joint() || r.Leader.StoreID == maxID {
			continue
		}
		if p, _ := pm.On(maxID); p.Witness {
			continue
		}
		if !f.keepsIsolation(r, maxID, minID) {
			continue
		}
		d.Evidence = append(d.Evidence, f.regionLine(r))
		d.ProposedAction = propose(tikv.ActionTransferPeer, map[string]any{"region_id": r.ID, "from_store_id": maxID, "to_store_id": minID}, action.WhenConvenient,
			"Move the follower of region %d from store %d (%d regions) to store %d (%d regions): one move brings the counts within the threshold. Quorum now: %s; after the move: %s.",
			r.ID, maxID, counts[maxID], minID, counts[minID], pm.Quorum(), pm.Moved(maxID, minID).Quorum())
		d.Risks = append(d.Risks, "If balance-region is off on purpose (maintenance), moving data now may interfere with it.")
		return d
	}
	d.NoActionReason = page("no healthy follower on store %d that store %d could take was found among the gathered regions", maxID, minID)
	return d
}

// keepsIsolation reports whether moving r's peer from one store to
// another keeps the region's replicas apart on the first location label
// (when location labels are configured): the target must not share that
// label's value with another remaining peer.
func (f *facts) keepsIsolation(r *pd.Region, from, to uint64) bool {
	labels := strings.Split(f.c.Replication.LocationLabels, ",")
	key := strings.TrimSpace(labels[0])
	if key == "" {
		return true
	}
	ts, ok := f.stores[to]
	if !ok {
		return false
	}
	v := ts.Label(key)
	for _, p := range r.Peers {
		if p.StoreID == from {
			continue
		}
		if s, ok := f.stores[p.StoreID]; ok && s.Label(key) == v {
			return false
		}
	}
	return true
}

// storeNoLeaders (store_no_leaders, pingcap/tidb-operator#4483, pingcap/tiup#369): an Up store with regions
// but no leaders. With a leftover evict-leader scheduler on it:
// remove_evict_leader, unless store versions differ (a rolling upgrade may
// be running). Otherwise page with the likely cause.
func storeNoLeaders(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	d := &diagnose.Diagnosis{}
	s, ok := f.store(id)
	if !ok {
		d.Summary = fmt.Sprintf("store %d has no leaders, and PD no longer lists it", id)
		d.RootCause = "The store is gone from GET /pd/api/v1/stores (Tombstone or removed)."
		d.Evidence = []string{fmt.Sprintf("GET /pd/api/v1/stores does not list store %d", id)}
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{"If the store was removed by mistake, its replicas are being re-created elsewhere."}
		d.NoActionReason = page("store %d is no longer listed by PD; check whether it was removed on purpose", id)
		return d
	}
	d.Evidence = []string{storeLine(s)}
	if s.Store.StateName != pd.StateUp || s.Status.LeaderCount > 0 {
		d.Summary = fmt.Sprintf("store %d now has %d leaders (%s)", id, s.Status.LeaderCount, s.Store.StateName)
		d.RootCause = "The store holds leaders again or is no longer Up; the condition of the ticket no longer holds."
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{"If the store loses its leaders again, the monitor reopens the ticket."}
		d.NoActionReason = page("the condition is gone; nothing to do unless it comes back")
		return d
	}
	balancer := f.scheduler(schedBalanceLeader)
	versions := f.versions()
	d.Summary = fmt.Sprintf("store %d is Up with %d regions but no leaders", id, s.Status.RegionCount)
	d.Evidence = append(d.Evidence,
		fmt.Sprintf("schedulers (GET /pd/api/v1/schedulers): %s", strings.Join(f.c.Schedulers, ", ")),
		fmt.Sprintf("evict-leader-scheduler holds stores: %s", idList(sortedKeys(f.evicted))),
		fmt.Sprintf("TiKV versions: %s", versionsLine(versions)),
		fmt.Sprintf("balance-leader-scheduler: %s; store %d leader_weight %g, slow_score %d", balancer, id, s.Status.LeaderWeight, s.Status.SlowScore))
	if up, ok := f.ev.float("uptime_seconds"); ok {
		d.Evidence = append(d.Evidence, fmt.Sprintf("uptime %.0fs when the ticket fired", up))
	}
	comeBack := "PD's balance-leader scheduler then moves leaders back over the next minutes."
	if balancer != "running" {
		comeBack = fmt.Sprintf("balance-leader-scheduler is %s, so leaders will not come back by themselves even then: resume or re-add it too.", balancer)
	}
	switch {
	case f.evicted[id] && f.isSlow(s):
		d.RootCause = fmt.Sprintf("An evict-leader scheduler holds store %d and the store is slow (slow_score %d >= %d): the eviction may be deliberate, keeping clients off a slow disk.", id, s.Status.SlowScore, f.slowScore())
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{"Returning leaders to a slow store makes every region it leads slow."}
		d.NoActionReason = page("store %d is under evict-leader-scheduler but also slow; fix or replace its disk before removing the scheduler", id)
	case f.evicted[id] && len(versions) > 1:
		d.RootCause = fmt.Sprintf("An evict-leader scheduler holds store %d, and the TiKV stores run different versions (%s): a rolling upgrade (tiup cluster upgrade, tidb-operator) may be in progress and evicting leaders store by store.", id, versionsLine(versions))
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{"Removing the scheduler during an upgrade sends leaders back to a store about to restart: a burst of leader elections."}
		d.NoActionReason = page("store %d is under evict-leader-scheduler while TiKV versions differ; confirm no upgrade is running (tiup cluster display, tidb-operator status) before removing it with remove_evict_leader", id)
	case f.evicted[id]:
		d.RootCause = fmt.Sprintf("A leftover evict-leader scheduler holds store %d: upgrade or restart tooling (tiup, tidb-operator) adds one per TiKV before restarting it and fails to delete it on an error or timeout path (pingcap/tidb-operator#4483, pingcap/tiup#369tidb-operator#4483, tiup#369). All stores run the same version, so no upgrade seems to be in progress.", id)
		d.Confidence = diagnose.ConfidenceHigh
		d.ProposedAction = propose(tikv.ActionRemoveEvictLeader, map[string]any{"store_id": id}, action.Soon,
			"Remove store %d from evict-leader-scheduler so it can hold leaders again; it holds %d regions and serves none of them as leader. %s",
			id, s.Status.RegionCount, comeBack)
		d.Risks = []string{
			"If a rolling upgrade or maintenance of store " + fmt.Sprint(id) + " is still in progress (tiup/tidb-operator lock), leaders move back to a store about to restart: check first.",
			"Leaders return gradually; the stores now holding them shed load as they go.",
		}
		if balancer != "running" {
			d.Risks = append(d.Risks, comeBack)
		}
	case s.Status.LeaderWeight == 0 && s.Status.LeaderCount == 0 && f.hasWeights():
		d.RootCause = fmt.Sprintf("Store %d has leader_weight 0, which tells PD to keep leaders off it.", id)
		d.Confidence = diagnose.ConfidenceHigh
		d.NoActionReason = page("leader weight 0 on store %d keeps leaders away; set it back with pd-ctl store weight %d 1 1 if that is not intended", id, id)
	case f.isSlow(s):
		d.RootCause = fmt.Sprintf("Store %d is slow (slow_score %d): PD's evict-slow-store scheduler (%s) evicts the leaders of a single slow store and returns them only after the score recovers.", id, s.Status.SlowScore, f.scheduler(schedEvictSlow))
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("store %d is slow; check its disk (latency, errors) rather than forcing leaders back", id)
	case balancer == "paused" && f.hasAction(actionResumeScheduler) && !f.halted():
		d.RootCause = fmt.Sprintf("No evict-leader scheduler holds store %d, but balance-leader-scheduler is paused: after a restart nothing brings leaders back to it.", id)
		d.Confidence = diagnose.ConfidenceHigh
		d.ProposedAction = propose(actionResumeScheduler, map[string]any{"name": schedBalanceLeader}, action.Soon,
			"Resume PD's balance-leader-scheduler so that PD moves leaders back to store %d (%d regions, no leaders) by itself.", id, s.Status.RegionCount)
		d.Risks = []string{"Whoever paused it may have had a reason (a maintenance window): ask before approving.", "PD moves many leaders over the next minutes."}
	case balancer != "running":
		d.RootCause = fmt.Sprintf("No evict-leader scheduler holds store %d, but balance-leader-scheduler is %s: after a restart nothing brings leaders back to it.", id, balancer)
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("resume or re-add balance-leader-scheduler (pd-ctl scheduler resume / scheduler add balance-leader-scheduler)")
	default:
		d.RootCause = fmt.Sprintf("No evict-leader scheduler holds store %d and balance-leader runs: placement rules with leader constraints, labels, or TiKV refusing leaders (busy: %v) may keep leaders away.", id, s.Status.IsBusy)
		d.Confidence = diagnose.ConfidenceLow
		d.NoActionReason = page("cause not visible from PD: check placement rules (pd-ctl config placement-rules show), evict-slow-trend, and store %d's TiKV log", id)
	}
	if d.Risks == nil {
		d.Risks = []string{fmt.Sprintf("Store %d keeps serving no leaders: the other stores carry all reads and writes.", id)}
	}
	return d
}

// hasWeights reports whether any store reports a leader_weight (old PDs
// omit it, and a missing weight reads as 0).
func (f *facts) hasWeights() bool {
	for _, id := range f.ids {
		if f.stores[id].Status.LeaderWeight > 0 {
			return true
		}
	}
	return false
}

// versions maps each TiKV version to its Up TiKV stores.
func (f *facts) versions() map[string][]uint64 {
	out := map[string][]uint64{}
	for _, id := range f.upTiKV() {
		v := f.stores[id].Store.Version
		if v == "" {
			continue
		}
		out[v] = append(out[v], id)
	}
	return out
}

func versionsLine(v map[string][]uint64) string {
	if len(v) == 0 {
		return "not reported"
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s on stores %s", k, idList(v[k]))
	}
	return strings.Join(parts, "; ")
}

// scores returns PD's leader_score (leaders) or region_score of ids, and
// whether PD reports them (old PDs and some fixtures omit scores: then
// counts are all there is).
func (f *facts) scores(ids []uint64, leaders bool) (map[uint64]float64, bool) {
	out := make(map[uint64]float64, len(ids))
	any := false
	for _, id := range ids {
		st := f.stores[id].Status
		v := st.RegionScore
		if leaders {
			v = st.LeaderScore
		}
		out[id] = v
		any = any || v > 0
	}
	return out, any
}

// weights returns the leader_weight (leaders) or region_weight of ids.
func (f *facts) weights(ids []uint64, leaders bool) map[uint64]float64 {
	out := make(map[uint64]float64, len(ids))
	for _, id := range ids {
		st := f.stores[id].Status
		out[id] = st.RegionWeight
		if leaders {
			out[id] = st.LeaderWeight
		}
	}
	return out
}

func roundScores(ids []uint64, v map[uint64]float64) map[uint64]float64 {
	out := make(map[uint64]float64, len(ids))
	for _, id := range ids {
		out[id] = math.Round(v[id]*10) / 10
	}
	return out
}

// storeIncident pages instead of proposing a move while a TiKV store is
// failing and PD's balance scheduler runs (with a schedule limit above 0;
// the callers check both). A store is failing when PD shows it
// Disconnected or Down, or when PD's down-peer check lists peers on it:
// right after a TiKV stops, PD still shows it Up for up to 20 s while its
// leaders are re-elected on the survivors and its peers are reported
// down (a new user saw transfer_leader proposed 3 s after stopping a
// store). The skew follows the failure and PD's scheduler evens the
// survivors out; a move of ours would race it while the cluster
// recovers. The store's own ticket is the incident; the imbalance ticket
// is linked to it (SymptomInvariants). It reports whether it filled d.
func (f *facts) storeIncident(d *diagnose.Diagnosis, what string) bool {
	why := map[uint64]string{}
	for id, st := range f.stores {
		if st.IsTiFlash() {
			continue
		}
		if st.Store.StateName == pd.StateDisconnected || st.Store.StateName == pd.StateDown {
			why[id] = "is " + st.Store.StateName
		}
	}
	down := map[uint64]int{}
	if snap := f.c.Snapshot; snap != nil {
		if cs := snap.CheckSummaries[tikv.CheckDownPeer]; cs != nil {
			for id, n := range cs.DownPeersByStore {
				down[id] += n
			}
		} else {
			for _, r := range snap.Checks[tikv.CheckDownPeer] {
				for _, dp := range r.DownPeers {
					down[dp.Peer.StoreID]++
				}
			}
		}
	}
	for _, r := range f.c.Regions {
		for _, dp := range r.DownPeers {
			if _, seen := down[dp.Peer.StoreID]; !seen || f.c.Snapshot == nil {
				down[dp.Peer.StoreID]++
			}
		}
	}
	for id, n := range down {
		if _, ok := why[id]; !ok && n > 0 {
			why[id] = fmt.Sprintf("has %d down peers (PD's down-peer check)", n)
		}
	}
	if len(why) == 0 {
		return false
	}
	failing := make([]uint64, 0, len(why))
	for id := range why {
		failing = append(failing, id)
	}
	slices.Sort(failing)
	var parts []string
	for _, id := range failing {
		parts = append(parts, fmt.Sprintf("store %d %s", id, why[id]))
		if st, ok := f.stores[id]; ok {
			d.Evidence = append(d.Evidence, storeLine(st))
		}
	}
	list := strings.Join(parts, "; ")
	d.RootCause = fmt.Sprintf("A store is failing (%s): the skew follows that failure (its %s are taken over by the surviving stores, unevenly), and PD's balance scheduler runs and evens the surviving stores out over the next minutes. The failing store is the incident; see its ticket.",
		list, what)
	d.Confidence = diagnose.ConfidenceHigh
	d.Risks = []string{"None from waiting: a move of ours would race PD's balance scheduler while the cluster recovers."}
	d.NoActionReason = page("%s: the %s skew follows the failure and PD's balance scheduler evens it out; look at the store's ticket", list, what)
	return true
}
