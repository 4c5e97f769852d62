package rules

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/peers"
	"github.com/tikvops/operator/internal/tikv"
)

// sampleRegions returns the context's regions among the ticket's sample
// ids, in the evidence's order, and renders them into d's evidence.
func (f *facts) sampleRegions(d *diagnose.Diagnosis) []*pd.Region {
	var out []*pd.Region
	for _, id := range f.ev.ids("sample_region_ids") {
		if r, ok := f.regions[id]; ok {
			out = append(out, r)
			d.Evidence = append(d.Evidence, f.regionLine(r))
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

// regionDownPeer (region_down_peer): down peers are repaired by PD only
// once their store has been down for max-store-down-time (PD v8.1 rule
// checker isDownPeer: the peer's store must be down too); while the store
// heartbeats, PD never replaces them. "PD repairs it" is said only when PD
// runs an operator on the region; otherwise, for a down peer on a store
// that is Up, propose transfer_peer to a fit store (or remove_peer when
// the region has more voters than max-replicas) with the quorum stated. A
// region without a leader or without a quorum gets a page, never an
// operator.
func regionDownPeer(f *facts) *diagnose.Diagnosis {
	d := f.regionCheckHead("have a down peer")
	top, ok := f.topStore(d)
	samples := f.sampleRegions(d)
	return f.downPeers(d, top, ok, samples)
}

// regionDownPeerUnrepaired (region_down_peer_unrepaired): the monitor saw
// down peers PD is not repairing (on an Up store, or no PD operator for a
// while); diagnosed like region_down_peer, over both sample lists.
func regionDownPeerUnrepaired(f *facts) *diagnose.Diagnosis {
	n, _ := f.ev.uint("region_count")
	onUp, _ := f.ev.uint("up_store_region_count")
	noOp, _ := f.ev.uint("no_operator_region_count")
	d := &diagnose.Diagnosis{
		Summary: fmt.Sprintf("%d regions have down peers PD is not repairing", n),
		Evidence: []string{fmt.Sprintf("%d regions with a down peer on an Up store, %d with no PD operator for %s (monitor, from GET /pd/api/v1/regions/check/down-peer and /operators); samples %s and %s",
			onUp, noOp, roundDur(time.Duration(must(f.ev.float("threshold_seconds"))*float64(time.Second))),
			idList(f.ev.ids("sample_up_store_region_ids")), idList(f.ev.ids("sample_no_operator_region_ids")))},
	}
	per := f.ev.counts("unrepaired_peers_by_store")
	var top *pd.StoreInfo
	ok := false
	if len(per) > 0 {
		d.Evidence = append(d.Evidence, "unrepaired down peers by store: "+countsLine("store", per))
		var best uint64
		for _, id := range sortedKeys(per) {
			if best == 0 || per[id] > per[best] {
				best = id
			}
		}
		if top, ok = f.store(best); ok {
			d.Evidence = append(d.Evidence, storeLine(top))
		}
	}
	var samples []*pd.Region
	for _, key := range []string{"sample_up_store_region_ids", "sample_no_operator_region_ids"} {
		for _, id := range f.ev.ids(key) {
			if r, found := f.regions[id]; found && !slices.Contains(samples, r) {
				samples = append(samples, r)
				d.Evidence = append(d.Evidence, f.regionLine(r))
			}
		}
	}
	return f.downPeers(d, top, ok, samples)
}

// downPeers is the shared judgement of down peers: top is the store
// holding most of them (ok false when unknown), samples the regions read.
func (f *facts) downPeers(d *diagnose.Diagnosis, top *pd.StoreInfo, ok bool, samples []*pd.Region) *diagnose.Diagnosis {
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{"Regions with a down peer run with one replica fewer; another failure among their stores costs them their quorum."}
	if nl := leaderless(samples); len(nl) > 0 {
		d.RootCause = fmt.Sprintf("Regions %s have no leader: a majority of their voters cannot be reached, so they serve no reads or writes and PD can run no operator on them.", idList(regionIDs(nl)))
		d.Confidence = diagnose.ConfidenceHigh
		d.NoActionReason = leaderlessPage(nl)
		return d
	}
	if lost := f.lostQuorum(samples); len(lost) > 0 {
		d.RootCause = fmt.Sprintf("Sample regions %s no longer have a majority of live voters: they are unavailable until their stores return, and no membership change can run on them.", idList(lost))
		d.Confidence = diagnose.ConfidenceHigh
		d.NoActionReason = page("regions %s lost their quorum; bring the stores of their down voters back (unsafe recovery only with PingCAP's guidance)", idList(lost))
		return d
	}
	var unrepaired []*pd.Region
	for _, r := range samples {
		if text, ok := f.repairing(r); ok {
			d.Evidence = append(d.Evidence, text)
			continue
		}
		unrepaired = append(unrepaired, r)
	}
	if len(unrepaired) > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("PD runs no operator on regions %s (GET /pd/api/v1/operators?object)", idList(regionIDs(unrepaired))))
	}
	if t := f.timeouts(samples); t != "" {
		d.Evidence = append(d.Evidence, t)
	}
	maxDown := f.maxStoreDownTime()
	var cause []string
	switch {
	case !ok:
		cause = append(cause, "Region leaders report peers that have not answered for a while (TiKV max-peer-down-duration, 10 min); the evidence names no single store.")
	case top.Store.StateName == pd.StateUp:
		cause = append(cause, fmt.Sprintf("Store %d is Up (it heartbeats to PD), yet region leaders report its peers down: the peers are stuck on that store (a corrupted or stalled Raft peer) or the TiKV nodes cannot reach each other (TiKV_server_report_failure_msg_total). PD replaces a down peer only once its store is down for max-store-down-time (%s), which never happens while the store heartbeats: PD will not repair these peers by itself.", top.Store.ID, maxDown))
	case top.Store.StateName == pd.StateDown && len(unrepaired) == 0:
		cause = append(cause, fmt.Sprintf("Store %d is Down and PD is repairing every sample region (operators above).", top.Store.ID))
	case top.Store.StateName == pd.StateDown:
		cause = append(cause, fmt.Sprintf("Store %d is Down (past max-store-down-time %s), yet PD runs no operator on regions %s: PD is not repairing them. Check replica-schedule-limit (%d), store limits and whether a store can take the replicas.", top.Store.ID, maxDown, idList(regionIDs(unrepaired)), f.c.Schedule.ReplicaScheduleLimit))
	default:
		cause = append(cause, fmt.Sprintf("Store %d is %s: its peers are down because the store is. PD starts replacing them only after max-store-down-time (%s); it runs no operator on regions %s now.", top.Store.ID, top.Store.StateName, maxDown, idList(regionIDs(unrepaired))))
	}
	d.RootCause = strings.Join(cause, " ")
	where := "the stores holding the down peers"
	if ok {
		where = fmt.Sprintf("store %d (%s)", top.Store.ID, clipText(top.Store.Address, 100))
	}
	if len(unrepaired) == 0 || f.halted() {
		d.NoActionReason = page("look at %s: process, disk, and network reachability from the other TiKV stores", where)
		if f.halted() {
			d.NoActionReason = page("PD halts all scheduling (halt-scheduling=true); look at %s", where)
		}
		return d
	}
	var skipped []string
	for _, r := range unrepaired {
		m := f.model(r)
		if m.Joint() || !m.HasQuorum() {
			continue
		}
		// The down peer to move: one on a store that heartbeats (Up), which
		// PD never repairs; a Disconnected or Down store is PD's to handle.
		var p peers.Peer
		found := false
		for _, q := range m.Peers {
			if q.Down && q.StoreState == pd.StateUp && (!found || q.StoreID < p.StoreID) {
				p, found = q, true
			}
		}
		if !found {
			continue
		}
		from := p.StoreID
		if s, known := f.stores[from]; known {
			if alive, hb := f.heartbeating(s); !alive {
				if _, measured := f.heartbeatAge(s); measured {
					skipped = append(skipped, hb)
					continue
				}
			}
		}
		if to, why := f.replicaTarget(r, from); to != 0 {
			d.Evidence = append(d.Evidence, why)
			d.Confidence = diagnose.ConfidenceHigh
			d.ProposedAction = propose(tikv.ActionTransferPeer, map[string]any{"region_id": r.ID, "from_store_id": from, "to_store_id": to}, action.Soon,
				"PD is not repairing region %d: its %s on store %d has been down %s while the store stays Up, and PD runs no operator on the region. Move that peer to store %d (PD adds it there, then removes the down one). Quorum now: %s; after the move: %s.",
				r.ID, strings.ToLower(string(p.Role)), from, roundDur(time.Duration(p.DownSeconds)*time.Second), to, m.Quorum(), m.Moved(from, to).Quorum())
			d.Risks = append(d.Risks, fmt.Sprintf("Adding the replica on store %d sends it a snapshot of region %d (%d MiB).", to, r.ID, r.ApproximateSize),
				fmt.Sprintf("Other regions with down peers on store %d need the same; find why the peers are stuck there (its TiKV log).", from))
			return d
		} else if why != "" {
			skipped = append(skipped, why)
		}
		if len(m.Voters()) > f.maxReplicas() && p.Voting() {
			after := m.Without(from)
			if after.HasQuorum() {
				d.ProposedAction = propose(tikv.ActionRemovePeer, map[string]any{"region_id": r.ID, "store_id": from}, action.Soon,
					"PD is not repairing region %d and no store can take a replacement; it has %d voters for max-replicas %d, so remove its down peer on store %d. Quorum now: %s; after the removal: %s.",
					r.ID, len(m.Voters()), f.maxReplicas(), from, m.Quorum(), after.Quorum())
				return d
			}
		}
	}
	if len(skipped) > 0 {
		d.Evidence = append(d.Evidence, "no target store: "+strings.Join(skipped, "; "))
	}
	d.NoActionReason = page("PD is not repairing regions %s and no safe move was found; look at %s (TiKV log of the stuck peers) and add capacity if no store can take the replicas", idList(regionIDs(unrepaired)), where)
	return d
}

// replicaTarget returns a store that can take r's peer from store from:
// Up TiKV, holding no peer of r, fit (facts.unfit), not against PD's
// running operators and keeping location-label isolation; the lightest
// region_score first. It returns 0 and why none fits.
func (f *facts) replicaTarget(r *pd.Region, from uint64) (uint64, string) {
	cands := f.upTiKV()
	sort.SliceStable(cands, func(i, j int) bool {
		return f.stores[cands[i]].Status.RegionScore < f.stores[cands[j]].Status.RegionScore
	})
	var why []string
	for _, id := range cands {
		if _, on := r.PeerOn(id); on {
			continue
		}
		if w := f.unfit(id, false); w != "" {
			why = append(why, w)
			continue
		}
		if w := f.againstPD(from, id); w != "" {
			why = append(why, w)
			continue
		}
		if !f.keepsIsolation(r, from, id) {
			why = append(why, fmt.Sprintf("store %d would break location-label isolation", id))
			continue
		}
		line := fmt.Sprintf("target store %d: %s", id, storeLine(f.stores[id]))
		if len(why) > 0 {
			line += "; skipped: " + strings.Join(why, "; ")
		}
		return id, line
	}
	if len(why) == 0 {
		return 0, fmt.Sprintf("every Up TiKV store already holds a peer of region %d", r.ID)
	}
	return 0, strings.Join(why, "; ")
}

// timeouts summarises PD's recent operator timeouts on the given regions
// (GET /pd/api/v1/operators/records), "" when there are none or PD's
// records were not read.
func (f *facts) timeouts(rs []*pd.Region) string {
	n := map[uint64]int{}
	for _, rec := range f.c.OperatorRecords {
		if strings.EqualFold(rec.Outcome, "timeout") {
			n[rec.RegionID]++
		}
	}
	var parts []string
	for _, r := range rs {
		if n[r.ID] > 0 {
			parts = append(parts, fmt.Sprintf("region %d: %d", r.ID, n[r.ID]))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "PD operators that timed out recently (GET /pd/api/v1/operators/records): " + strings.Join(parts, ", ") + ": PD tried and failed, it is not repairing them"
}

func (f *facts) maxStoreDownTime() time.Duration {
	if d := time.Duration(f.c.Schedule.MaxStoreDownTime); d > 0 {
		return d
	}
	return pdDefaultMaxStoreDownTime
}

func regionIDs(rs []*pd.Region) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// regionPendingPeer (region_pending_peer): page; pending peers lag behind
// their leader's log, usually on one slow or recovering store.
func regionPendingPeer(f *facts) *diagnose.Diagnosis {
	d := f.regionCheckHead("have a pending (lagging) peer")
	top, ok := f.topStore(d)
	samples := f.sampleRegions(d)
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
	// A huge region's snapshot keeps failing to apply (PingCAP docs: tune-region-performance): the
	// follower can never catch up until the region is split.
	for _, r := range samples {
		if r.ApproximateSize < f.opts.UrgentRegionSizeMiB || len(r.PendingPeers) == 0 || !r.HasLeader() || f.halted() {
			continue
		}
		if _, busy := f.runningOperator(r.ID); busy {
			continue
		}
		d.RootCause += fmt.Sprintf(" Region %d is %d MiB: a snapshot that large keeps failing or timing out, so its pending peer never catches up (PingCAP docs: tune-region-performance).", r.ID, r.ApproximateSize)
		d.Confidence = diagnose.ConfidenceHigh
		d.ProposedAction = propose(tikv.ActionSplitRegion, map[string]any{"region_id": r.ID, "policy": "approximate"}, action.Soon,
			"Split region %d (%d MiB, pending peer on stores %s) at its approximate middle so that its snapshots shrink and the lagging peer can catch up; repeat on the halves, with policy scan if approximate picks a poor key.",
			r.ID, r.ApproximateSize, idList(pendingStores(r)))
		d.Risks = append(d.Risks, "A split is not directly reversible; small halves are merged back by PD after split-merge-interval.",
			"policy scan, if needed, reads the whole region on its leader's store.")
		return d
	}
	d.NoActionReason = page("check %s: disk latency, apply/append durations and snapshot traffic (Grafana TiKV-Details); PD cannot speed up a slow follower", where)
	return d
}

func pendingStores(r *pd.Region) []uint64 {
	var out []uint64
	for _, p := range r.PendingPeers {
		out = append(out, p.StoreID)
	}
	slices.Sort(out)
	return out
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
		if ops > 0 {
			d.RootCause = fmt.Sprintf("Stores %s are not heartbeating; PD is repairing: %d replica-repair operators are running (GET /pd/api/v1/operators).", idList(down), ops)
		} else {
			d.RootCause = fmt.Sprintf("Stores %s are not heartbeating, and PD runs no replica-repair operator now: it is not repairing these regions. PD starts only once a store is Down (max-store-down-time %s); if a store is already Down, something blocks the repair (store limits, placement rules).", idList(down), f.maxStoreDownTime())
		}
		d.NoActionReason = page("follow the tickets of stores %s and the miss-peer count; if PD still runs no repair operator once they are Down, check store limits (pd-ctl store limit) and placement rules", idList(down))
	default:
		d.RootCause = "PD has targets and the limit allows repairs, yet replicas are missing: placement rules or location labels may ask for a placement no store satisfies, or the checkers are paused (pd-ctl config placement-rules show, GET /pd/api/v1/checker/replica)."
		d.Confidence = diagnose.ConfidenceLow
		d.NoActionReason = page("check placement rules and store labels against the sample regions (pd-ctl region check miss-peer)")
	}
	return d
}

// regionExtraPeer (region_extra_peer, tikv/pd#6573): when a sample region
// has all its voters plus a learner on a TiKV store that no rule needs
// (TiFlash learners are required by TiFlash replicas and left alone),
// propose removing that learner; else page.
func regionExtraPeer(f *facts) *diagnose.Diagnosis {
	d := f.regionCheckHead("have more peers than configured")
	samples := f.sampleRegions(d)
	mr := f.maxReplicas()
	d.Evidence = append(d.Evidence, fmt.Sprintf("max-replicas %d, placement rules enabled: %s", mr, orUnknown(f.c.Replication.EnablePlacementRules)))
	d.RootCause = "Regions carry more peers than max-replicas or their placement rules ask for. PD's rule checker normally removes extra peers within seconds; when they persist, it is refusing to (tikv/pd#6573: with a down voter the checker left orphan learners behind while replace-down-peer operators kept timing out, tikv/pd#6573)."
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{"Extra learners use disk and receive every write; left alone they accumulate."}
	if f.halted() {
		d.NoActionReason = page("PD halts all scheduling (halt-scheduling=true)")
		return d
	}
	for _, r := range samples {
		m := f.model(r)
		if !m.HasLeader() {
			continue
		}
		rep, hasRep := m.Replacement()
		if hasRep {
			d.Evidence = append(d.Evidence, fmt.Sprintf("region %d: the learner on store %d (peer %d) is the replacement copy of its unhealthy voter on stores %s; it is never removed", r.ID, rep.StoreID, rep.ID, idList(m.UnhealthyVoters())))
		}
		var learner *peers.Peer
		for i := range m.Peers {
			p := m.Peers[i]
			if p.Role != peers.Learner || p.TiFlash || p.Witness || p.StoreState == "" || (hasRep && p.ID == rep.ID) {
				continue
			}
			if learner == nil || p.ID < learner.ID {
				learner = &p
			}
		}
		voters := len(m.Voters())
		if learner == nil || voters < mr || len(r.Peers) <= mr || m.Joint() {
			continue
		}
		if _, busy := f.runningOperator(r.ID); busy {
			continue
		}
		if !m.HasQuorum() {
			continue
		}
		d.RootCause += fmt.Sprintf(" Region %d has %d voters (max-replicas %d) plus a learner on TiKV store %d that no rule needs.", r.ID, voters, mr, learner.StoreID)
		d.ProposedAction = propose(tikv.ActionRemovePeer, map[string]any{"region_id": r.ID, "store_id": learner.StoreID}, action.WhenConvenient,
			"Remove the orphan learner of region %d on store %d (peer %d, the oldest learner that is not the region's replacement copy): a learner does not vote, so the quorum is unchanged: %s. Remove one learner at a time and re-read the region in between; upgrading PD fixes the cause (tikv/pd#6574).",
			r.ID, learner.StoreID, learner.ID, m.Quorum())
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
