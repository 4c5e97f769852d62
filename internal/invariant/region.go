package invariant

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/pd"
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
