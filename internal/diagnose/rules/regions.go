package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// sampleRegions returns the context's regions among the ticket's sample
// ids, in the evidence's order, and renders them into d's evidence.
func (f *facts) sampleRegions(d *diagnose.Diagnosis) []*pd.Region {
	var out []*pd.Region
	for _, id := range f.ev.ids("sample_region_ids") {
		if r, ok := f.regions[id]; ok {
			out = append(out, r)
			d.Evidence = append(d.Evidence, regionLine(r))
		}
	}
	return out
}

// regionCheckHead fills the common summary and evidence of a region check
// ticket.
func (f *facts) regionCheckHead(what string) *diagnose.Diagnosis {
	n, _ := f.ev.uint("region_count")
	threshold, _ := f.ev.uint("threshold")
	check := f.ev.str("pd_check")
	if check == "" {
		check = strings.ReplaceAll(strings.TrimPrefix(f.c.Ticket.Invariant, "region_"), "_", "-")
	}
	return &diagnose.Diagnosis{
		Summary: fmt.Sprintf("%d regions %s", n, what),
		Evidence: []string{fmt.Sprintf("GET /pd/api/v1/regions/check/%s lists %d regions (threshold %d); samples %s",
			check, n, threshold, idList(f.ev.ids("sample_region_ids")))},
	}
}

// topStore renders the store holding most flagged peers.
func (f *facts) topStore(d *diagnose.Diagnosis) (*pd.StoreInfo, bool) {
	per := f.ev.counts("peers_by_store")
	if len(per) > 0 {
		d.Evidence = append(d.Evidence, "flagged peers by store: "+countsLine("store", per))
	}
	top, ok := f.ev.uint("top_store_id")
	if !ok {
		return nil, false
	}
	s, ok := f.store(top)
	if ok {
		d.Evidence = append(d.Evidence, storeLine(s))
	}
	return s, ok
}

// regionDownPeer (region_down_peer): page; the store holding the down
// peers is what to look at.
func regionDownPeer(f *facts) *diagnose.Diagnosis {
	d := f.regionCheckHead("have a down peer")
	top, ok := f.topStore(d)
	samples := f.sampleRegions(d)
	lost := f.lostQuorum(samples)
	d.Confidence = diagnose.ConfidenceMedium
	var cause []string
	switch {
	case !ok:
		cause = append(cause, "Region leaders report peers that have not answered for a while (TiKV max-peer-down-duration, 10 min); the evidence names no single store.")
	case top.Store.StateName == pd.StateUp:
		cause = append(cause, fmt.Sprintf("Store %d is Up (it heartbeats to PD), yet region leaders report its peers down: the stores cannot reach each other (a network partition between TiKV nodes, TiKV_server_report_failure_msg_total) or the peers are stuck on that store.", top.Store.ID))
	default:
		cause = append(cause, fmt.Sprintf("Store %d is %s: its peers are down because the store is. PD replaces them once the store has been down for max-store-down-time; the store's own ticket covers it.", top.Store.ID, top.Store.StateName))
	}
	if len(lost) > 0 {
		cause = append(cause, fmt.Sprintf("Sample regions %s no longer have a majority of live voters: they are unavailable until their stores return.", idList(lost)))
		d.Confidence = diagnose.ConfidenceHigh
	}
	d.RootCause = strings.Join(cause, " ")
	d.Risks = []string{"Regions with a down peer run with one replica fewer; another failure among their stores costs them their quorum."}
	where := "the stores holding the down peers"
	if ok {
		where = fmt.Sprintf("store %d (%s)", top.Store.ID, top.Store.Address)
	}
	d.NoActionReason = page("look at %s: process, disk, and network reachability from the other TiKV stores; PD re-creates the peers by itself once their store is Down", where)
	return d
}

// regionPendingPeer (region_pending_peer): page; pending peers lag behind
// their leader's log, usually on one slow or recovering store.
func regionPendingPeer(f *facts) *diagnose.Diagnosis {
	d := f.regionCheckHead("have a pending (lagging) peer")
	top, ok := f.topStore(d)
	f.sampleRegions(d)
	d.Confidence = diagnose.ConfidenceMedium
	d.RootCause = "Pending peers have not caught up with their leader's Raft log: the follower's store applies or receives logs and snapshots too slowly."
	where := "the stores holding the pending peers"
	if ok {
		where = fmt.Sprintf("store %d", top.Store.ID)
		up := time.Duration(top.Status.Uptime)
		switch {
		case top.Store.StateName != pd.StateUp:
			d.RootCause += fmt.Sprintf(" Store %d is %s, so its peers fall behind.", top.Store.ID, top.Store.StateName)
		case up > 0 && up < 10*time.Minute:
			d.RootCause += fmt.Sprintf(" Store %d restarted %s ago and is catching up; this should clear by itself.", top.Store.ID, roundDur(up))
		case f.isSlow(top):
			d.RootCause += fmt.Sprintf(" Store %d is slow (slow_score %d): its disk cannot keep up.", top.Store.ID, top.Status.SlowScore)
		case top.Status.IsBusy:
			d.RootCause += fmt.Sprintf(" Store %d reports is_busy (raftstore overloaded or applying a backlog).", top.Store.ID)
		default:
			d.RootCause += fmt.Sprintf(" Most flagged peers are on store %d: check its disk IO and Raft log lag (TiKV_raft_log_lag).", top.Store.ID)
		}
	}
	d.Risks = []string{"A lagging follower cannot take over quickly if the leader fails; leader transfers to it are refused."}
	d.NoActionReason = page("check %s: disk latency, apply/append durations and snapshot traffic (Grafana TiKV-Details); PD cannot speed up a slow follower", where)
	return d
}

// regionMissPeer (region_miss_peer): regions with fewer replicas than
// configured. When replica-schedule-limit is 0, PD cannot repair them:
// propose restoring PD's default 64. Otherwise page.
func regionMissPeer(f *facts) *diagnose.Diagnosis {
	d := f.regionCheckHead("are missing a replica")
	f.sampleRegions(d)
	mr := f.maxReplicas()
	up := f.upTiKV()
	targets := f.targets()
	down := f.tikvIn(pd.StateDown, pd.StateDisconnected)
	ops := f.replicaOperators()
	d.Evidence = append(d.Evidence,
		fmt.Sprintf("max-replicas %d; Up TiKV stores %s (with free space %s); Down or Disconnected %s", mr, idList(up), idList(targets), idList(down)),
		fmt.Sprintf("replica-schedule-limit %d; %d replica-repair operators running", f.c.Schedule.ReplicaScheduleLimit, ops))
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{"Under-replicated regions lose their quorum with fewer further failures than planned."}
	configRead := f.sourceError(tikv.SourceSchedule) == "" && (f.c.Schedule.LeaderScheduleLimit > 0 || f.c.Schedule.RegionScheduleLimit > 0)
	switch {
	case len(targets) < mr:
		d.RootCause = fmt.Sprintf("Only %d TiKV stores can take replicas for max-replicas %d: PD has no store to put the missing replicas on.", len(targets), mr)
		d.Confidence = diagnose.ConfidenceHigh
		d.NoActionReason = page("add TiKV stores or bring stores %s back; PD repairs the regions by itself once it has targets", idList(down))
	case configRead && f.c.Schedule.ReplicaScheduleLimit == 0 && !f.halted():
		d.RootCause = "replica-schedule-limit is 0: PD's replica and rule checkers may not create the operators that add the missing replicas, so the regions stay under-replicated."
		d.Confidence = diagnose.ConfidenceHigh
		d.ProposedAction = propose(tikv.ActionSetReplicaScheduleLimit, map[string]any{"limit": pdDefaultReplicaLimit}, action.Soon,
			"Set replica-schedule-limit back to PD's default %d so PD repairs the %d under-replicated regions by itself.", pdDefaultReplicaLimit, int(must(f.ev.float("region_count"))))
		d.Risks = append(d.Risks, "Repairs copy region data between stores: network and disk IO while they run.",
			"Someone may have set the limit to 0 on purpose (a maintenance window): ask before approving.")
	case len(down) > 0:
		d.RootCause = fmt.Sprintf("Stores %s are not heartbeating: PD re-creates their replicas once they are Down (after max-store-down-time); %d repair operators are running now.", idList(down), ops)
		d.NoActionReason = page("PD repairs these regions by itself once stores %s are Down; follow the store tickets and the miss-peer count", idList(down))
	default:
		d.RootCause = "PD has targets and the limit allows repairs, yet replicas are missing: placement rules or location labels may ask for a placement no store satisfies, or the checkers are paused (pd-ctl config placement-rules show, GET /pd/api/v1/checker/replica)."
		d.Confidence = diagnose.ConfidenceLow
		d.NoActionReason = page("check placement rules and store labels against the sample regions (pd-ctl region check miss-peer)")
	}
	return d
}

// regionExtraPeer (region_extra_peer, cases.md 09): when a sample region
// has all its voters plus a learner on a TiKV store that no rule needs
// (TiFlash learners are required by TiFlash replicas and left alone),
// propose removing that learner; else page.
func regionExtraPeer(f *facts) *diagnose.Diagnosis {
	d := f.regionCheckHead("have more peers than configured")
	samples := f.sampleRegions(d)
	mr := f.maxReplicas()
	d.Evidence = append(d.Evidence, fmt.Sprintf("max-replicas %d, placement rules enabled: %s", mr, orUnknown(f.c.Replication.EnablePlacementRules)))
	d.RootCause = "Regions carry more peers than max-replicas or their placement rules ask for. PD's rule checker normally removes extra peers within seconds; when they persist, it is refusing to (tikv/pd#6573: with a down voter the checker left orphan learners behind while replace-down-peer operators kept timing out, cases.md 09)."
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{"Extra learners use disk and receive every write; left alone they accumulate."}
	if f.halted() {
		d.NoActionReason = page("PD halts all scheduling (halt-scheduling=true)")
		return d
	}
	for _, r := range samples {
		var voters int
		var learner *pd.Peer
		for i := range r.Peers {
			p := r.Peers[i]
			if p.IsVoter() {
				voters++
				continue
			}
			s, ok := f.stores[p.StoreID]
			if !ok || s.IsTiFlash() || p.IsWitness {
				continue
			}
			if learner == nil || p.StoreID < learner.StoreID {
				learner = &p
			}
		}
		if learner == nil || voters < mr || len(r.Peers) <= mr {
			continue
		}
		if _, busy := f.runningOperator(r.ID); busy {
			continue
		}
		if q := tikv.RegionQuorum(r, f.c.Stores); !q.HasMajority() {
			continue
		}
		d.RootCause += fmt.Sprintf(" Region %d has %d voters (max-replicas %d) plus a learner on TiKV store %d that no rule needs.", r.ID, voters, mr, learner.StoreID)
		d.ProposedAction = propose(tikv.ActionRemovePeer, map[string]any{"region_id": r.ID, "store_id": learner.StoreID}, action.WhenConvenient,
			"Remove the orphan learner of region %d on store %d (peer %d): the region keeps all %d voters, so its quorum is untouched. Remove one learner at a time and re-read the region in between; upgrading PD fixes the cause (tikv/pd#6574).",
			r.ID, learner.StoreID, learner.ID, voters)
		d.Risks = append(d.Risks,
			"If a placement rule does ask for a learner on this store (rare outside TiFlash), PD adds it back.",
			"More orphan learners may remain on other regions; each needs its own removal.")
		return d
	}
	d.NoActionReason = page("no sample region has an orphan learner on a TiKV store that is safe to remove; PD's rule checker normally removes extra voters by itself: check placement rules (pd-ctl config placement-rules show) and operator timeouts in the PD log")
	return d
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
