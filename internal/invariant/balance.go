package invariant

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

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
