package invariant

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/peers"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

const (
	checkMissPeer    = tikv.CheckMissPeer
	checkDownPeer    = tikv.CheckDownPeer
	checkPendingPeer = tikv.CheckPendingPeer
	checkExtraPeer   = tikv.CheckExtraPeer
	// pingcapMissPeerCritical is PD_miss_peer_region_count's threshold.
	pingcapMissPeerCritical = 100
)

// RegionCheck (region_miss_peer, region_down_peer, region_pending_peer,
// region_extra_peer) counts the regions PD's GET /regions/check/{Check}
// lists (computed by PD on region heartbeats, so stale by up to 60s) and is
// violated when there are more than MaxRegions. The subject is "cluster":
// one ticket per problem kind, whatever the number of regions. Evidence
// has the count, the threshold, up to Samples region ids and, for down and
// pending peers, the per-store breakdown of the flagged peers with the most
// affected store (TiKV_raft_log_lag and TiKV_server_report_failure_msg_total
// approximated from PD, pd-api.md section 4), which points at the store to
// look at. Severity: miss-peer critical above 100 regions (PingCAP
// PD_miss_peer_region_count), warning otherwise. Constructed by Default.
type RegionCheck struct {
	base
	// Check is the tikv.Check* name.
	Check      string
	MaxRegions int
	Samples    int
}

// Eval implements Invariant.
func (inv *RegionCheck) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, tikv.SourceCheck(inv.Check)); err != nil {
		return nil, err
	}
	regions := s.Checks[inv.Check]
	// The count and per-store breakdown cover every region PD listed
	// (tikv.CheckSummary, one streaming pass); samples come from the
	// regions Collect kept.
	sum := s.CheckSummaries[inv.Check]
	count := s.CheckCount(inv.Check)
	if count <= inv.MaxRegions {
		return nil, nil
	}
	ev := map[string]any{
		"pd_check":          inv.Check,
		"region_count":      count,
		"threshold":         inv.MaxRegions,
		"sample_region_ids": sampleIDs(regions, inv.Samples),
	}
	if s.Replication.MaxReplicas > 0 {
		ev["max_replicas"] = s.Replication.MaxReplicas
	}
	sev := ticket.Warning
	what := map[string]string{
		checkMissPeer:    "missing a replica",
		checkDownPeer:    "with a down peer",
		checkPendingPeer: "with a pending peer",
		checkExtraPeer:   "with an extra peer",
	}[inv.Check]
	detail := ""
	switch inv.Check {
	case checkMissPeer:
		if count > pingcapMissPeerCritical {
			sev = ticket.Critical
		}
		ev["sample_peer_counts"] = peerCounts(regions, inv.Samples)
	case checkExtraPeer:
		ev["sample_peer_counts"] = peerCounts(regions, inv.Samples)
	case checkDownPeer, checkPendingPeer:
		byStore := map[uint64]int{}
		maxDown := map[uint64]uint64{}
		switch {
		case sum != nil && inv.Check == checkDownPeer && sum.DownPeersByStore != nil:
			byStore, maxDown = sum.DownPeersByStore, sum.MaxDownSecondsByStore
			regions = nil
		case sum != nil && inv.Check == checkPendingPeer && sum.PendingPeersByStore != nil:
			byStore = sum.PendingPeersByStore
			regions = nil
		}
		for i := range regions {
			r := &regions[i]
			if inv.Check == checkDownPeer {
				for _, d := range r.DownPeers {
					byStore[d.Peer.StoreID]++
					maxDown[d.Peer.StoreID] = max(maxDown[d.Peer.StoreID], d.DownSeconds)
				}
			} else {
				for _, p := range r.PendingPeers {
					byStore[p.StoreID]++
				}
			}
		}
		per := map[string]int{}
		var top uint64
		total := 0
		for _, id := range sortedIDs(byStore) {
			per[idKey(id)] = byStore[id]
			total += byStore[id]
			if top == 0 || byStore[id] > byStore[top] {
				top = id
			}
		}
		ev["peers_by_store"] = per
		if top != 0 {
			ev["top_store_id"] = top
			ev["top_store_peers"] = byStore[top]
			ev["top_store_share"] = roundRatio(float64(byStore[top]) / float64(total))
			detail = fmt.Sprintf("; store %d has %d of %d flagged peers", top, byStore[top], total)
		}
		if inv.Check == checkDownPeer {
			md := map[string]uint64{}
			for id, d := range maxDown {
				md[idKey(id)] = d
			}
			ev["max_down_seconds_by_store"] = md
		}
	}
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: sev,
		Summary:  fmt.Sprintf("%d regions %s (> %d)%s", count, what, inv.MaxRegions, detail),
		Evidence: ev,
	}}, nil
}

// RegionOfflinePeer (region_offline_peer, pingcap/tidb-ansible#632) looks at the regions
// PD's GET /regions/check/offline-peer lists (a peer on a store being
// removed) and is violated by those whose voters on Offline (Removing)
// stores form a Raft quorum: they lose their majority if the stores being
// drained go away, and they are the ones that stall a drain of several
// stores. Regions with a single offline peer are the normal course of a
// drain and are only counted in the evidence (store_offline_stuck watches
// the drain's progress). Critical; subject "cluster". Constructed by Default.
type RegionOfflinePeer struct {
	base
	Samples int
}

// Eval implements Invariant.
func (inv *RegionOfflinePeer) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores, tikv.SourceCheck(tikv.CheckOfflinePeer)); err != nil {
		return nil, err
	}
	regions := s.Checks[tikv.CheckOfflinePeer]
	if len(regions) == 0 {
		return nil, nil
	}
	offline := map[uint64]bool{}
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName == pd.StateOffline || st.Store.NodeState == pd.NodeRemoving {
			offline[st.Store.ID] = true
		}
	}
	var atRisk []pd.Region
	byStore := map[uint64]int{}
	for i := range regions {
		r := &regions[i]
		voters, onOffline := 0, 0
		for _, p := range r.Peers {
			if offline[p.StoreID] {
				byStore[p.StoreID]++
			}
			if !p.IsVoter() {
				continue
			}
			voters++
			if offline[p.StoreID] {
				onOffline++
			}
		}
		if voters > 0 && onOffline >= voters/2+1 {
			atRisk = append(atRisk, *r)
		}
	}
	if len(atRisk) == 0 {
		return nil, nil
	}
	per := map[string]int{}
	for id, n := range byStore {
		per[idKey(id)] = n
	}
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Critical,
		Summary: fmt.Sprintf("%d regions have a quorum of their voters on Offline stores %v (%d regions with offline peers in all)",
			len(atRisk), sortedIDs(offline), len(regions)),
		Evidence: map[string]any{
			"pd_check":               tikv.CheckOfflinePeer,
			"offline_peer_regions":   len(regions),
			"quorum_at_risk_regions": len(atRisk),
			"threshold":              0,
			"offline_store_ids":      sortedIDs(offline),
			"offline_peers_by_store": per,
			"sample_region_ids":      sampleIDs(atRisk, inv.Samples),
			"sample_peer_store_ids":  peerStores(atRisk, inv.Samples),
			"rule":                   "voters on Offline stores >= voters/2+1",
			"offline_region_ids":     sampleIDs(regions, inv.Samples),
		},
	}}, nil
}

// RegionOversized (region_oversized, PingCAP TiKV_approximate_region_size,
// PingCAP docs: tune-region-performance) is one violation per region PD's GET
// /regions/check/oversized-region lists (approximate size >= TiKV
// region-max-size or keys >= region-max-keys: a split is not keeping up),
// the largest MaxSubjects first, plus every region already reported the
// cycle before while PD still lists it (stateful). Warning; subject "region:ID". Constructed
// by Default.
type RegionOversized struct {
	base
	MaxSubjects int

	mu       sync.Mutex
	reported map[uint64]bool
}

// StateName implements Stateful: the regions reported last cycle.
func (inv *RegionOversized) StateName() string { return "invariant/" + NameRegionOversized }

// MarshalState implements Stateful.
func (inv *RegionOversized) MarshalState() (json.RawMessage, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return json.Marshal(sortedIDs(inv.reported))
}

// UnmarshalState implements Stateful.
func (inv *RegionOversized) UnmarshalState(doc json.RawMessage) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.reported = map[uint64]bool{}
	var ids []uint64
	if err := json.Unmarshal(doc, &ids); err != nil {
		return fmt.Errorf("%s state: %w", NameRegionOversized, err)
	}
	for _, id := range ids {
		inv.reported[id] = true
	}
	return nil
}

// Eval implements Invariant.
func (inv *RegionOversized) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, tikv.SourceCheck(tikv.CheckOversizedRegion)); err != nil {
		return nil, err
	}
	regions := append([]pd.Region(nil), s.Checks[tikv.CheckOversizedRegion]...)
	sort.SliceStable(regions, func(i, j int) bool {
		if regions[i].ApproximateSize != regions[j].ApproximateSize {
			return regions[i].ApproximateSize > regions[j].ApproximateSize
		}
		return regions[i].ID < regions[j].ID
	})
	total := len(regions)
	if inv.MaxSubjects > 0 && len(regions) > inv.MaxSubjects {
		// The cap bounds new subjects only: a region reported before
		// stays reported while PD still lists it, so a ticket is never
		// resolved because larger regions pushed it out of the top N.
		inv.mu.Lock()
		kept := regions[:0:0]
		for i := range regions {
			if i < inv.MaxSubjects || inv.reported[regions[i].ID] {
				kept = append(kept, regions[i])
			}
		}
		inv.mu.Unlock()
		regions = kept
	}
	inv.mu.Lock()
	inv.reported = make(map[uint64]bool, len(regions))
	for i := range regions {
		inv.reported[regions[i].ID] = true
	}
	inv.mu.Unlock()
	out := make([]Violation, 0, len(regions))
	for i := range regions {
		r := &regions[i]
		stores := make([]uint64, 0, len(r.Peers))
		for _, p := range r.Peers {
			stores = append(stores, p.StoreID)
		}
		ev := map[string]any{
			"pd_check":             tikv.CheckOversizedRegion,
			"region_id":            r.ID,
			"approximate_size_mib": r.ApproximateSize,
			"approximate_keys":     r.ApproximateKeys,
			"leader_store_id":      r.Leader.StoreID,
			"peer_store_ids":       stores,
			"start_key":            r.StartKey,
			"end_key":              r.EndKey,
			"epoch":                map[string]uint64{"conf_ver": r.Epoch.ConfVer, "version": r.Epoch.Version},
			"threshold":            "TiKV region-max-size / region-max-keys as PD applies them",
			"oversized_regions":    total,
		}
		out = append(out, Violation{
			Subject:  RegionSubject(r.ID),
			Severity: ticket.Warning,
			Summary: fmt.Sprintf("region %d is oversized: %d MiB, %d keys (leader on store %d); it is not splitting",
				r.ID, r.ApproximateSize, r.ApproximateKeys, r.Leader.StoreID),
			Evidence: ev,
		})
	}
	return out, nil
}

// sampleIDs returns up to n region ids in ascending order.
func sampleIDs(regions []pd.Region, n int) []uint64 {
	ids := make([]uint64, 0, len(regions))
	for i := range regions {
		ids = append(ids, regions[i].ID)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if n > 0 && len(ids) > n {
		ids = ids[:n]
	}
	return ids
}

// peerCounts maps up to n sampled region ids to their peer count.
func peerCounts(regions []pd.Region, n int) map[string]int {
	out := map[string]int{}
	for _, id := range sampleIDs(regions, n) {
		for i := range regions {
			if regions[i].ID == id {
				out[idKey(id)] = len(regions[i].Peers)
				break
			}
		}
	}
	return out
}

// peerStores maps up to n sampled region ids to their peers' store ids.
func peerStores(regions []pd.Region, n int) map[string][]uint64 {
	out := map[string][]uint64{}
	for _, id := range sampleIDs(regions, n) {
		for i := range regions {
			if regions[i].ID != id {
				continue
			}
			stores := make([]uint64, 0, len(regions[i].Peers))
			for _, p := range regions[i].Peers {
				stores = append(stores, p.StoreID)
			}
			out[idKey(id)] = stores
			break
		}
	}
	return out
}

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// regionFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var regionFamilies = map[string]family{
	NameRegionOversized:   {regionOversized, []string{tikv.ActionSplitRegion}},
	NameRegionOfflinePeer: {regionOfflinePeer, []string{tikv.ActionCancelDrain}},
	// Down peers PD does not repair (their store heartbeats): move or
	// remove the down peer with the quorum stated.
	NameRegionDownPeer: {regionDownPeer, []string{tikv.ActionTransferPeer, tikv.ActionRemovePeer}},
	// A pending peer that never catches up on a huge region: split it.
	NameRegionPendingPeer: {regionPendingPeer, []string{tikv.ActionSplitRegion}},
	NameRegionMissPeer:    {regionMissPeer, []string{tikv.ActionSetReplicaScheduleLimit}},
	// Orphan learners (tikv/pd#6573), never the replacement copy.
	NameRegionExtraPeer: {regionExtraPeer, []string{tikv.ActionRemovePeer}},
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

// regionOfflinePeer (region_offline_peer, pingcap/tidb-ansible#632): several stores
// draining at once leave regions with a quorum of voters on leaving
// stores. Keep the most advanced drain going and cancel the one with the
// most regions left; with one Offline store, page.
func regionOfflinePeer(f *facts) *diagnose.Diagnosis {
	offline := f.offlineTiKV()
	atRisk, _ := f.ev.uint("quorum_at_risk_regions")
	samples := f.ev.ids("sample_region_ids")
	d := &diagnose.Diagnosis{
		Summary: fmt.Sprintf("%d regions have a quorum of their voters on Offline stores %s", atRisk, idList(offline)),
		Evidence: []string{
			fmt.Sprintf("quorum-at-risk regions (voters on Offline stores >= voters/2+1): %d; samples %s", atRisk, idList(samples)),
			"Offline TiKV stores: " + idList(offline),
		},
	}
	for _, id := range offline {
		d.Evidence = append(d.Evidence, storeLine(f.stores[id]))
	}
	for _, rid := range samples {
		if r, ok := f.regions[rid]; ok {
			d.Evidence = append(d.Evidence, f.regionLine(r))
		}
	}
	d.RootCause = "Several stores are being drained at the same time, so some regions have most of their voters on leaving stores; PD moves them slowly if at all, and losing those stores would cost these regions their quorum (pingcap/tidb-ansible#632: \"delete TiKVs one by one\")."
	d.Confidence = diagnose.ConfidenceHigh
	var cands []uint64
	for _, id := range offline {
		if f.stores[id].Store.PhysicallyDestroyed {
			continue
		}
		if alive, hb := f.heartbeating(f.stores[id]); !alive {
			d.Evidence = append(d.Evidence, hb+": not a candidate for cancel_drain")
			continue
		}
		cands = append(cands, id)
	}
	if len(offline) < 2 || len(cands) == 0 {
		d.RootCause = "Regions have a quorum of voters on the Offline store(s) while fewer than two drains can be cancelled: the regions already lack healthy replicas elsewhere (down or missing peers)."
		d.Risks = []string{"These regions lose their quorum if the Offline store stops.", noForce}
		d.NoActionReason = page("check the sample regions' other peers (pd-ctl region %s) and keep store(s) %s running until they are healthy", idList(samples), idList(offline))
		return d
	}
	sort.SliceStable(cands, func(i, j int) bool {
		return f.stores[cands[i]].Status.RegionCount > f.stores[cands[j]].Status.RegionCount
	})
	id := cands[0]
	d.ProposedAction = propose(tikv.ActionCancelDrain, map[string]any{"store_id": id}, action.Soon,
		"Cancel the drain of store %d (%d regions left, the most of the Offline stores %s) so that fewer stores leave at once; re-drain it after the others are Tombstone, one store at a time.",
		id, f.stores[id].Status.RegionCount, idList(offline))
	d.Risks = cancelDrainRisks(id)
	return d
}

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
