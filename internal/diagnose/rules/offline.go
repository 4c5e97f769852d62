package rules

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// noForce is said wherever a drain is involved: a forced removal marks the
// store physically destroyed and skips PD's replica checks.
const noForce = "Never force the removal (DELETE /store/{id}?force=true, tiup --force): it marks the store physically destroyed, skips PD's replica safety check and can lose data."

// cancelDrainRisks are the risks of cancel_drain on store id.
func cancelDrainRisks(id uint64) []string {
	return []string{
		fmt.Sprintf("Store %d becomes a normal Up member again and keeps its replicas and leaders; drain it again only once enough other TiKV stores are Up.", id),
		fmt.Sprintf("If the machine behind store %d is already being torn down (disks wiped, host returned), bringing the store Up does not help: add a TiKV store instead and let the drain finish.", id),
		noForce,
	}
}

// storeOfflineStuck (store_offline_stuck, pingcap/tidb#10619, pingcap/tidb-ansible#632, tikv/tikv#18771, tikv/tikv#9918, tikv/pd#3730).
func storeOfflineStuck(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	d := &diagnose.Diagnosis{}
	s, ok := f.store(id)
	if !ok || !isOffline(s) {
		state := "no longer listed (Tombstone: the drain finished)"
		if ok {
			state = s.Store.StateName
		}
		d.Summary = fmt.Sprintf("store %d is %s", id, state)
		d.RootCause = "The store is no longer Offline: the drain finished or was cancelled since the ticket fired."
		d.Evidence = []string{fmt.Sprintf("store %d in GET /pd/api/v1/stores: %s", id, state)}
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{"None from the drain itself; if it was cancelled, the store is a normal member again."}
		d.NoActionReason = page("the drain of store %d is no longer stuck (store is %s); nothing to do", id, state)
		return d
	}
	mr := f.maxReplicas()
	targets := f.targets()
	up := f.upTiKV()
	offline := f.offlineTiKV()
	unchanged, _ := f.ev.float("unchanged_seconds")
	regions := f.regionsOnStore(id)
	lost := f.lostQuorum(regions)
	d.Summary = fmt.Sprintf("store %d is Offline but not draining: %d regions left", id, s.Status.RegionCount)
	d.Evidence = []string{
		storeLine(s),
		fmt.Sprintf("Up TiKV stores: %s; able to take replicas (not low on space): %s; max-replicas %d (GET /pd/api/v1/config/replicate)", idList(up), idList(targets), mr),
		fmt.Sprintf("Offline TiKV stores: %s", idList(offline)),
	}
	if unchanged > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("region_count unchanged for %s when the ticket fired", roundDur(time.Duration(unchanged*float64(time.Second)))))
	}
	if p, ok := f.ev.float("progress"); ok {
		d.Evidence = append(d.Evidence, fmt.Sprintf("PD removal progress %s (GET /pd/api/v1/stores/progress?id=%d)", pct(p), id))
	}
	if len(regions) > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("%d of its regions examined (GET /pd/api/v1/regions/store/%d); without a majority of live voters: %s", len(regions), id, idList(lost)))
	}
	if s.Store.PhysicallyDestroyed {
		d.RootCause = fmt.Sprintf("Store %d was removed with force (physically_destroyed): PD will not bring it back, and the drain needs %d stores able to take replicas (%d now).", id, mr, len(targets))
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"Regions that had a replica on the store run with one fewer until PD can place it elsewhere."}
		d.NoActionReason = page("store %d is physically destroyed and cannot be brought back; add TiKV stores so PD can re-create its replicas", id)
		return d
	}
	if nl := leaderless(regions); len(nl) > 0 {
		d.RootCause = fmt.Sprintf("Regions %s with a peer on store %d have no leader: PD can run no operator on them, so the drain cannot move them (PD's region_count only counts regions whose leader reports, so the store can look empty while they remain).", idList(regionIDs(nl)), id)
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"These regions are unavailable until a majority of their voters return.", noForce}
		d.NoActionReason = leaderlessPage(nl)
		return d
	}
	if len(targets) < mr {
		why := fmt.Sprintf("only %d Up TiKV stores", len(up))
		if len(targets) < len(up) {
			why = fmt.Sprintf("only %d Up TiKV stores with free space (%d Up, the others low on space)", len(targets), len(up))
		}
		d.RootCause = fmt.Sprintf("The drain of store %d cannot finish: every region needs %d replicas on distinct stores, and PD has %s to put them on, so it never moves the last replicas off store %d (pingcap/tidb#10619: \"you only have two tikv nodes but need at least three replicas\"; PD logs \"no extra up node has enough space\").", id, mr, why, id)
		d.Confidence = diagnose.ConfidenceHigh
		if alive, hb := f.heartbeating(s); !alive {
			d.Evidence = append(d.Evidence, hb)
			d.Risks = []string{noForce}
			d.NoActionReason = page("the drain of store %d cannot finish, but cancelling it would not help: %s, so its process or data may be gone; add TiKV stores (scale out) so PD can re-create its replicas elsewhere", id, hb)
			return d
		} else {
			d.Evidence = append(d.Evidence, hb)
		}
		d.ProposedAction = propose(tikv.ActionCancelDrain, map[string]any{"store_id": id}, action.Soon,
			"Cancel the decommission of store %d (back to Up, pd-ctl store cancel-delete): its drain cannot finish with %s for max-replicas %d, and meanwhile its %d regions depend on a store that is on its way out. The other way is to add a TiKV store (scale out) first, then PD finishes the drain by itself.",
			id, why, mr, s.Status.RegionCount)
		d.Risks = cancelDrainRisks(id)
		if len(offline) > 1 {
			d.Risks = append(d.Risks, fmt.Sprintf("Stores %s are all Offline: drain them one at a time (pingcap/tidb-ansible#632).", idList(offline)))
		}
		return d
	}
	if len(lost) > 0 {
		d.RootCause = fmt.Sprintf("Regions %s on store %d no longer have a majority of live voters: PD cannot change their membership (a conf change needs a quorum), so they cannot move off the store (tikv/tikv#18771 (b)).", idList(lost), id)
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"These regions are unavailable or one failure away from it; do not remove store " + fmt.Sprint(id) + "'s process.", noForce}
		d.NoActionReason = page("regions %s lost their quorum; bring their other stores back up (unsafe recovery, pd-ctl unsafe remove-failed-stores, only as a last resort with PingCAP's guidance)", idList(lost))
		return d
	}
	if s.Status.LeaderCount > 0 && !f.evicted[id] {
		d.RootCause = fmt.Sprintf("PD has enough stores to place the replicas, but store %d still leads %d regions: as leader it must generate every snapshot for the replicas being moved away, and TiKV's snapshot IO limit makes the add-learner steps time out (tikv/tikv#9918, tikv/pd#3730fixed by moving the leader first in PD#3730).", id, s.Status.LeaderCount)
		d.Confidence = diagnose.ConfidenceMedium
		d.ProposedAction = propose(tikv.ActionEvictLeader, map[string]any{"store_id": id}, action.WhenConvenient,
			"Move the %d leaders off store %d (evict-leader-scheduler), the documented way to speed up a drain: the other replicas then send the snapshots, and store %d is being removed anyway.",
			s.Status.LeaderCount, id, id)
		d.Risks = []string{
			"The other stores take over the reads and writes of these leaders.",
			fmt.Sprintf("The evict-leader scheduler stays after the drain: remove it (remove_evict_leader %d) once the store is Tombstone, or it lingers (pingcap/tidb-operator#4483, pingcap/tiup#369).", id),
			noForce,
		}
		return d
	}
	d.RootCause = fmt.Sprintf("PD has %d stores able to take replicas for max-replicas %d and the examined regions have a quorum, yet region_count does not fall: replica operators may be timing out, replica-schedule-limit (%d) or store limits may throttle them, or placement rules/location labels leave no valid target.", len(targets), mr, f.c.Schedule.ReplicaScheduleLimit)
	d.Confidence = diagnose.ConfidenceLow
	d.Risks = []string{noForce}
	d.NoActionReason = page("check PD's operators for store %d's regions (pd-ctl operator show, operator timeouts in the PD log), placement rules (pd-ctl config placement-rules show) and store limits (pd-ctl store limit)", id)
	return d
}

// upStoresBelowReplicas (up_stores_below_max_replicas, pingcap/tidb#10619):
// cancel the drain of an Offline store when one exists, else page.
func upStoresBelowReplicas(f *facts) *diagnose.Diagnosis {
	mr := f.maxReplicas()
	up := f.upTiKV()
	disc := f.tikvIn(pd.StateDisconnected)
	down := f.tikvIn(pd.StateDown)
	offline := f.offlineTiKV()
	holding := len(up) + len(disc)
	d := &diagnose.Diagnosis{
		Summary: fmt.Sprintf("only %d TiKV stores hold replicas for max-replicas %d", holding, mr),
		Evidence: []string{
			fmt.Sprintf("max-replicas %d (GET /pd/api/v1/config/replicate)", mr),
			fmt.Sprintf("TiKV stores: Up %s; Disconnected %s; Down %s; Offline %s", idList(up), idList(disc), idList(down), idList(offline)),
		},
	}
	if f.c.Snapshot != nil {
		if n := len(f.c.Snapshot.Checks[tikv.CheckMissPeer]); n > 0 {
			d.Evidence = append(d.Evidence, fmt.Sprintf("%d regions miss a replica (GET /pd/api/v1/regions/check/miss-peer)", n))
		}
	}
	if holding >= mr {
		d.Summary = fmt.Sprintf("%d TiKV stores hold replicas again for max-replicas %d", holding, mr)
		d.RootCause = "Enough TiKV stores are Up or only briefly disconnected; the condition of the ticket no longer holds."
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("the condition is gone; nothing to do")
		return d
	}
	// The Offline store holding the most regions is the one whose return
	// restores the most replicas.
	cands := append([]uint64(nil), offline...)
	sort.SliceStable(cands, func(i, j int) bool {
		return f.stores[cands[i]].Status.RegionCount > f.stores[cands[j]].Status.RegionCount
	})
	var silent []string
	for _, id := range cands {
		s := f.stores[id]
		if s.Store.PhysicallyDestroyed {
			continue
		}
		if alive, hb := f.heartbeating(s); !alive {
			silent = append(silent, hb)
			continue
		}
		d.Evidence = append(d.Evidence, storeLine(s))
		d.RootCause = fmt.Sprintf("Store %d is being drained although only %d TiKV stores would remain for max-replicas %d: PD cannot place every region's replicas on distinct stores, so regions stay under-replicated and the drain can never finish (pingcap/tidb#10619).", id, holding, mr)
		d.Confidence = diagnose.ConfidenceHigh
		enough := fmt.Sprintf("with it, %d TiKV stores hold replicas for max-replicas %d", holding+1, mr)
		if holding+1 < mr {
			enough = fmt.Sprintf("that keeps its replicas, but only %d TiKV stores then hold replicas for max-replicas %d: %d more must be added or brought back", holding+1, mr, mr-holding-1)
		}
		d.ProposedAction = propose(tikv.ActionCancelDrain, map[string]any{"store_id": id}, action.Soon,
			"Cancel the decommission of store %d (back to Up): %s. The other way is to add a TiKV store (scale out) first, then PD finishes the drain by itself.",
			id, enough)
		d.Risks = cancelDrainRisks(id)
		return d
	}
	var cause []string
	if len(silent) > 0 {
		d.Evidence = append(d.Evidence, "Offline stores not brought back (cancel_drain needs a store that heartbeats): "+strings.Join(silent, "; "))
	}
	if len(down)+len(disc) > 0 {
		cause = append(cause, fmt.Sprintf("Stores %s are Down or Disconnected: PD cannot re-create their replicas because too few stores are left.", idList(append(append([]uint64(nil), down...), disc...))))
	}
	cause = append(cause, fmt.Sprintf("max-replicas %d needs at least %d TiKV stores; if it was raised above the number of stores by mistake, lowering it is a configuration decision for a human.", mr, mr))
	d.RootCause = strings.Join(cause, " ")
	d.Confidence = diagnose.ConfidenceHigh
	d.Risks = []string{"Every region runs with fewer replicas than configured: one more store failure can cost regions their quorum.", noForce}
	d.NoActionReason = page("no Offline store to bring back; bring the Down stores back or add TiKV stores (scale out)")
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

// tombstonePileup (tombstone_pileup, pingcap/tidb-operator#124, tikv/pd#4422): page; the cleanup is
// DELETE /stores/remove-tombstone, which the catalog does not offer.
func tombstonePileup(f *facts) *diagnose.Diagnosis {
	n, _ := f.ev.uint("tombstone_count")
	ids := f.ev.ids("tombstone_store_ids")
	dupList := f.ev.strs("duplicate_addresses")
	d := &diagnose.Diagnosis{
		Summary:  fmt.Sprintf("%d Tombstone store records are kept by PD", n),
		Evidence: []string{fmt.Sprintf("Tombstone stores (GET /pd/api/v1/stores/check?state=tombstone): %s", idList(ids))},
		RootCause: "PD keeps the record of every removed store until someone runs remove-tombstone (or for 30 days); scale-in/scale-out cycles pile them up, and tooling that looks stores up by address can pick a Tombstone record that shares the address of a live store (pingcap/tidb-operator#124, tikv/pd#4422). " +
			"PD 4.0.13 had a bug where remove-tombstone silently skipped records (tikv/pd#4422).",
		Confidence: diagnose.ConfidenceHigh,
		Risks:      []string{"Low: Tombstone records hold no data. Removing them only changes what store lists show."},
	}
	if len(dupList) > 0 {
		d.Evidence = append(d.Evidence, "addresses used by more than one record: "+strings.Join(dupList, ", ")+" (always pick the highest store id per address)")
	}
	d.NoActionReason = page("run pd-ctl store remove-tombstone (DELETE /pd/api/v1/stores/remove-tombstone; not in the action catalog), then re-read the list: if records survive on PD 4.0.13, upgrade PD")
	return d
}
