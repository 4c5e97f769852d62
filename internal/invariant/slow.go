package invariant

import (
	"context"
	"fmt"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// StoreSlow is PingCAP's PD_cluster_slow_tikv_nums: an Up store whose
// slow_score (TiKV's disk-latency score, 1..100, reported in store
// heartbeats) is >= MinScore (PD IsSlow: 80). PD counts a store as slow
// only when it is not Down, unhealthy or Disconnected, so only state_name
// "Up" stores are checked. Critical; one violation per store. Evidence
// says whether PD's evict-slow-store scheduler is running (it evicts the
// leaders of a single slow store once its score reaches 100). Constructed
// by Default.
type StoreSlow struct {
	base
	MinScore uint64
}

// Eval implements Invariant.
func (inv *StoreSlow) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	ref := refTime(s, now)
	evictSlow := false
	for _, n := range s.Schedulers {
		if n == "evict-slow-store-scheduler" {
			evictSlow = true
		}
	}
	var out []Violation
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName != pd.StateUp || st.Status.SlowScore < inv.MinScore {
			continue
		}
		ev := storeEvidence(st, ref)
		ev["slow_score"] = st.Status.SlowScore
		ev["threshold"] = inv.MinScore
		ev["evict_slow_store_scheduler"] = evictSlow
		if st.Status.SlowTrend != nil {
			ev["slow_trend"] = st.Status.SlowTrend
		}
		out = append(out, Violation{
			Subject:  StoreSubject(st.Store.ID),
			Severity: ticket.Critical,
			Summary: fmt.Sprintf("store %d (%s) is slow: slow_score %d >= %d",
				st.Store.ID, st.Store.Address, st.Status.SlowScore, inv.MinScore),
			Evidence: ev,
		})
	}
	return out, nil
}

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// slowFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var slowFamilies = map[string]family{
	NameStoreSlow: {storeSlow, []string{tikv.ActionEvictLeader}},
}

// storeSlow (store_slow): when exactly one store is slow, still leads
// regions and PD's evict-slow-store scheduler did not evict it, propose
// evict_leader; otherwise page.
func storeSlow(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	d := &diagnose.Diagnosis{}
	s, ok := f.store(id)
	if !ok {
		d.Summary = fmt.Sprintf("store %d is no longer listed by PD", id)
		d.RootCause = "The store is gone from GET /pd/api/v1/stores since the ticket fired."
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("store %d is no longer listed; nothing to do", id)
		return d
	}
	var slow []uint64
	for _, sid := range f.upTiKV() {
		if f.isSlow(f.stores[sid]) {
			slow = append(slow, sid)
		}
	}
	evictSlow := f.scheduler(schedEvictSlow)
	d.Summary = fmt.Sprintf("store %d is slow: slow_score %d >= %d", id, s.Status.SlowScore, f.slowScore())
	d.Evidence = []string{
		storeLine(s),
		fmt.Sprintf("slow_score %d (TiKV disk-latency probe, 1 healthy .. 100); PD counts >= %d as slow; its evict-slow-store-scheduler (%s) evicts leaders of a single slow store at %d", s.Status.SlowScore, f.slowScore(), evictSlow, pdEvictSlowScore),
		"slow Up TiKV stores: " + idList(slow),
		fmt.Sprintf("under evict-leader-scheduler: %s", idList(sortedKeys(f.evicted))),
	}
	if s.Status.IsBusy {
		d.Evidence = append(d.Evidence, fmt.Sprintf("store %d reports is_busy", id))
	}
	if !f.isSlow(s) || s.Store.StateName != pd.StateUp {
		d.Summary = fmt.Sprintf("store %d is no longer slow (slow_score %d, %s)", id, s.Status.SlowScore, s.Store.StateName)
		d.RootCause = "The store's slow score has recovered (it decays back to 1 over at least 5 minutes without slow probes)."
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("store %d is no longer slow; check its disk history if it recurs", id)
		return d
	}
	d.RootCause = fmt.Sprintf("TiKV's inspection probes on store %d's disk keep timing out, so its slow score climbed to %d: a failing or saturated disk (or a noisy neighbour on shared storage). Every region it leads answers slowly.", id, s.Status.SlowScore)
	d.Confidence = diagnose.ConfidenceMedium
	others := 0
	for _, sid := range f.upTiKV() {
		if sid != id && !f.isSlow(f.stores[sid]) && !f.evicted[sid] {
			others++
		}
	}
	switch {
	case len(slow) > 1:
		d.RootCause += fmt.Sprintf(" Stores %s are all slow: PD's evict-slow-store scheduler does nothing when more than one store is slow, and a shared cause (cluster-wide load, shared storage, the network) is more likely than one bad disk.", idList(slow))
		d.Risks = []string{"Evicting leaders from several stores concentrates load on the rest and can make things worse."}
		d.NoActionReason = page("stores %s are slow at once; look for a shared cause (load, storage, network) before moving leaders", idList(slow))
	case f.evicted[id]:
		d.Risks = []string{fmt.Sprintf("The evict-leader scheduler on store %d must be removed after the disk is fixed (remove_evict_leader), or leaders never come back (pingcap/tidb-operator#4483, pingcap/tiup#369).", id)}
		d.NoActionReason = page("store %d's leaders are already evicted (evict-leader-scheduler); fix or replace its disk", id)
	case s.Status.LeaderCount == 0:
		d.RootCause += fmt.Sprintf(" It already leads no region (PD's %s evicted them, or they moved away).", schedEvictSlow)
		d.Risks = []string{"Its followers still slow down writes that need its acknowledgement when another replica lags."}
		d.NoActionReason = page("store %d already leads no region; fix or replace its disk (check iostat, SMART, the cloud volume)", id)
	case others == 0:
		d.NoActionReason = page("no other healthy Up TiKV store can take store %d's leaders", id)
	default:
		why := fmt.Sprintf("its score %d is below the %d at which PD's evict-slow-store scheduler acts", s.Status.SlowScore, pdEvictSlowScore)
		if evictSlow != "running" {
			why = fmt.Sprintf("PD's evict-slow-store scheduler is %s", evictSlow)
		}
		d.ProposedAction = propose(tikv.ActionEvictLeader, map[string]any{"store_id": id}, action.Soon,
			"Move the %d leaders off store %d (evict-leader-scheduler) so clients stop waiting on its slow disk, as PD's evict-slow-store scheduler would; PD did not, because %s. Remove the scheduler (remove_evict_leader) once the disk is fixed.",
			s.Status.LeaderCount, id, why)
		d.Risks = []string{
			fmt.Sprintf("The %d other healthy stores take the leaders' reads and writes.", others),
			fmt.Sprintf("The scheduler stays until removed: after fixing the disk, remove_evict_leader %d, or the store never leads again (pingcap/tidb-operator#4483, pingcap/tiup#369).", id),
			"If the slowness comes from load rather than the disk, moving leaders moves the problem.",
		}
	}
	if d.Risks == nil {
		d.Risks = []string{"Regions led by a slow store keep high latency."}
	}
	return d
}
