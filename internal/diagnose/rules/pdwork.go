package rules

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
)

// regionNoLeader (region_no_leader): never an operator (PD can run none on
// a region without a leader); page with the region ids, key ranges and
// sizes, from PD's current read when available, else from the ticket's
// evidence.
func regionNoLeader(f *facts) *diagnose.Diagnosis {
	n, _ := f.ev.uint("region_count")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("%d regions have no leader", n),
		Confidence: diagnose.ConfidenceHigh,
		Risks: []string{
			"A region without a leader serves no reads or writes: every request to its key range fails or hangs.",
			"Unsafe recovery (pd-ctl unsafe remove-failed-stores) can lose the latest writes; use it only with PingCAP's guidance.",
		},
	}
	var none []*pd.Region
	var stores []uint64
	for _, id := range f.ev.ids("sample_region_ids") {
		r, ok := f.regions[id]
		if !ok {
			continue
		}
		d.Evidence = append(d.Evidence, f.regionLine(r)+" (GET /pd/api/v1/region/id/"+fmt.Sprint(id)+")")
		if r.HasLeader() {
			d.Evidence = append(d.Evidence, fmt.Sprintf("region %d has a leader again (store %d)", r.ID, r.Leader.StoreID))
			continue
		}
		none = append(none, r)
		for _, p := range f.model(r).Peers {
			if !p.Live() {
				stores = append(stores, p.StoreID)
			}
		}
	}
	if len(none) == 0 {
		// Fall back on the monitor's samples (key range and size as seen).
		var samples []struct {
			ID      uint64   `json:"region_id"`
			Start   string   `json:"start_key"`
			End     string   `json:"end_key"`
			SizeMiB int64    `json:"approximate_size_mib"`
			Stores  []uint64 `json:"peer_store_ids"`
		}
		if raw, ok := f.ev["samples"]; ok && json.Unmarshal(raw, &samples) == nil {
			for _, s := range samples {
				none = append(none, &pd.Region{ID: s.ID, StartKey: s.Start, EndKey: s.End, ApproximateSize: s.SizeMiB})
				d.Evidence = append(d.Evidence, fmt.Sprintf("region %d (when the ticket fired): peers on stores %s, %d MiB", s.ID, idList(s.Stores), s.SizeMiB))
			}
		}
	}
	if len(none) == 0 {
		d.Confidence = diagnose.ConfidenceMedium
		d.RootCause = "PD shows a leader for every sampled region now: the regions elected a leader since the ticket fired."
		d.NoActionReason = page("the sampled regions have leaders again; re-check GET /pd/api/v1/regions/check/down-peer and the ticket's regions")
		return d
	}
	slicesSortUniq(&stores)
	d.RootCause = "A region elects a leader only with a majority of its voters reachable; these regions have none, so PD cannot run any operator on them (every operator needs the leader to propose it). "
	if len(stores) > 0 {
		d.RootCause += fmt.Sprintf("Their voters on stores %s are down or on stores that do not heartbeat: bringing those stores back restores the leaders.", idList(stores))
	} else {
		d.RootCause += "Their stores heartbeat, so the peers may be stuck (a TiKV panic loop on that region, a damaged Raft log): their TiKV logs tell."
	}
	d.NoActionReason = leaderlessPage(none)
	return d
}

func slicesSortUniq(ids *[]uint64) {
	m := map[uint64]bool{}
	for _, id := range *ids {
		m[id] = true
	}
	*ids = sortedKeys(m)
}

// operatorTimeouts (operator_timeouts, tikv/pd#6573, tikv/tikv#9918, tikv/pd#3730): PD keeps retrying
// an operator that times out. On a region with orphan learners left by
// the timed-out attempts, remove the oldest one that is not the
// replacement copy (as region_extra_peer); otherwise page with the
// operators.
func operatorTimeouts(f *facts) *diagnose.Diagnosis {
	n, _ := f.ev.uint("timeouts")
	window, _ := f.ev.float("window_seconds")
	ops := f.ev.strs("operators")
	d := &diagnose.Diagnosis{Confidence: diagnose.ConfidenceMedium,
		Risks: []string{"Each timed-out attempt may leave a learner behind and keeps the region (or the target store) busy with snapshots."}}
	var ev []string
	for i, op := range ops {
		if i == 5 {
			ev = append(ev, fmt.Sprintf("... %d more", len(ops)-5))
			break
		}
		ev = append(ev, clipText(op, 200))
	}
	d.Evidence = []string{fmt.Sprintf("%d PD operators timed out within %s (GET /pd/api/v1/operators/records): %s", n, roundDur(time.Duration(window*float64(time.Second))), strings.Join(ev, "; "))}
	if rid, ok := subjectRegion(f); ok {
		d.Summary = fmt.Sprintf("PD's operators on region %d keep timing out (%d times)", rid, n)
		r, found := f.regions[rid]
		if !found {
			d.RootCause = "The region is no longer known to PD (split or merged since)."
			d.NoActionReason = page("region %d is gone; nothing to do unless the timeouts continue on its successors", rid)
			return d
		}
		d.Evidence = append(d.Evidence, f.regionLine(r))
		if text, ok := f.repairing(r); ok {
			d.Evidence = append(d.Evidence, text)
		}
		m := f.model(r)
		if !m.HasLeader() {
			d.RootCause = "The region has no leader, so no operator step can be proposed: every attempt times out."
			d.NoActionReason = leaderlessPage([]*pd.Region{r})
			return d
		}
		d.RootCause = "PD creates an operator for this region again and again and each times out: a step never completes (a learner that cannot receive or apply its snapshot — TiKV's snapshot IO limit on the sending store, tikv/tikv#9918, tikv/pd#3730 — or a rule checker bug leaving orphan learners, tikv/pd#6573, tikv/pd#6573)."
		if len(m.Learners()) > 0 && len(r.Peers) > f.maxReplicas() {
			sf := *f
			sf.ev = evidence{"sample_region_ids": mustJSON([]uint64{rid})}
			if sub := regionExtraPeer(&sf); sub.ProposedAction != nil {
				d.RootCause += fmt.Sprintf(" Region %d carries learners left behind by the timed-out attempts (%d peers for max-replicas %d).", rid, len(r.Peers), f.maxReplicas())
				d.ProposedAction, d.Risks = sub.ProposedAction, sub.Risks
				return d
			}
		}
		d.NoActionReason = page("look at the stores the operators target (their TiKV logs: snapshot generation and apply) and at PD's log for region %d; upgrading PD fixes the orphan-learner variant (tikv/pd#6574)", rid)
		return d
	}
	id, _ := subjectStore(f)
	d.Summary = fmt.Sprintf("PD's operators targeting store %d keep timing out (%d times)", id, n)
	if s, ok := f.store(id); ok {
		d.Evidence = append(d.Evidence, storeLine(s))
		if s.Status.IsBusy {
			d.Evidence = append(d.Evidence, fmt.Sprintf("store %d reports is_busy", id))
		}
		if s.Status.ReceivingSnapCount > 0 {
			d.Evidence = append(d.Evidence, fmt.Sprintf("store %d is receiving %d snapshots", id, s.Status.ReceivingSnapCount))
		}
	}
	d.Evidence = append(d.Evidence, "regions: "+idList(f.ev.ids("region_ids")))
	d.RootCause = fmt.Sprintf("Operators adding peers or leaders on store %d time out: the store cannot take snapshots fast enough (disk, snapshot IO limit, receiving backlog) or keeps rejecting them.", id)
	d.NoActionReason = page("check store %d's TiKV log (snapshot apply errors), disk and receiving_snap_count; lower its add-peer store limit (pd-ctl store limit %d <rate> add-peer) if it is overloaded", id, id)
	return d
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// regionPendingPeerStuck (region_pending_peer_stuck): a pending peer that
// never catches up; page, with the store it lags on.
func regionPendingPeerStuck(f *facts) *diagnose.Diagnosis {
	d := regionPendingPeer(f)
	n, _ := f.ev.uint("region_count")
	d.Summary = fmt.Sprintf("%d regions have a pending peer that has not caught up for %s", n,
		roundDur(time.Duration(must(f.ev.float("threshold_seconds"))*float64(time.Second))))
	if per := f.ev.counts("pending_peers_by_store"); len(per) > 0 {
		d.Evidence = append(d.Evidence, "stuck pending peers by store: "+countsLine("store", per))
	}
	if since := f.ev.str("oldest_pending_since"); since != "" {
		d.Evidence = append(d.Evidence, "oldest pending since "+clipText(since, 40))
	}
	d.RootCause += " A peer pending this long is not merely slow: its snapshot may keep failing to apply (an oversized region, PingCAP docs: tune-region-performance) or its store cannot receive."
	return d
}

// storeDuplicateAddress (store_duplicate_address, pingcap/tidb-operator#124, tikv/pd#4422): page.
func storeDuplicateAddress(f *facts) *diagnose.Diagnosis {
	d := &diagnose.Diagnosis{
		Summary:    "several store records share one address",
		Confidence: diagnose.ConfidenceHigh,
		RootCause:  "PD accepts a new store on the address of an old one once the old record is force-deleted (physically destroyed) or while it is Offline: tooling that finds stores by address (tiup, tidb-operator, scripts) may then act on the wrong record (pingcap/tidb-operator#124, tikv/pd#4422). The newest record (highest store id) is the live one.",
		Risks:      []string{"A drain, a label or a scheduler applied by address may hit the old record instead of the live store."},
	}
	var by map[string][]uint64
	if raw, ok := f.ev["store_ids_by_address"]; ok {
		_ = json.Unmarshal(raw, &by)
	}
	for _, a := range sortedStrings(by) {
		line := fmt.Sprintf("address %s: stores %s", clipText(a, 100), idList(by[a]))
		for _, id := range by[a] {
			if s, ok := f.store(id); ok {
				line += fmt.Sprintf("; store %d %s", id, s.Store.StateName)
			}
		}
		d.Evidence = append(d.Evidence, line)
	}
	d.NoActionReason = page("check which record is live (the highest store id that heartbeats) and make sure tooling addresses stores by id; drain or bury the stale record only after checking it holds no region (GET /pd/api/v1/regions/store/{id})")
	return d
}

func sortedStrings[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slicesSortStrings(out)
	return out
}

// storeLeaderDrop (store_leader_drop): a store lost most of its leaders in
// one poll; page with the likely cause.
func storeLeaderDrop(f *facts) *diagnose.Diagnosis {
	id, _ := subjectStore(f)
	before, _ := f.ev.uint("leader_count_before")
	after, _ := f.ev.uint("leader_count_after")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("store %d lost %d of its %d leaders within one poll", id, int64(before)-int64(after), before),
		Confidence: diagnose.ConfidenceMedium,
		Risks:      []string{"The other stores suddenly carry its leaders' reads and writes; if it was a restart, leaders come back over minutes."},
	}
	s, ok := f.store(id)
	if !ok {
		d.RootCause = "The store is no longer listed by PD."
		d.NoActionReason = page("store %d is gone from PD; check whether it was removed on purpose", id)
		return d
	}
	d.Evidence = []string{storeLine(s), fmt.Sprintf("leader_count %d -> %d between two polls; now %d", before, after, s.Status.LeaderCount)}
	up, recent := f.restartedRecently(s)
	switch {
	case s.Store.StateName != pd.StateUp:
		d.RootCause = fmt.Sprintf("Store %d is %s: its leaders moved because it stopped heartbeating; its own ticket covers it.", id, s.Store.StateName)
	case recent:
		d.RootCause = fmt.Sprintf("Store %d restarted %s ago (uptime): a TiKV restart drops all its leaders, and PD's balance-leader scheduler brings them back over the next minutes.", id, roundDur(up))
	case f.evicted[id]:
		d.RootCause = fmt.Sprintf("An evict-leader scheduler holds store %d: someone or something (tiup, tidb-operator, evict-slow-store) is moving its leaders off on purpose.", id)
	case f.isSlow(s):
		d.RootCause = fmt.Sprintf("Store %d is slow (slow_score %d): PD's evict-slow-store scheduler moves leaders off a slow store.", id, s.Status.SlowScore)
	case s.Status.IsBusy:
		d.RootCause = fmt.Sprintf("Store %d reports is_busy: an overloaded raftstore misses elections and loses leaders.", id)
	default:
		d.RootCause = fmt.Sprintf("Store %d is Up, not restarted, not evicted and not slow, yet lost its leaders at once: a network partition between it and the other TiKV stores (leaders re-elected elsewhere) or a stall of its raftstore is likely.", id)
	}
	if h := s.Label("host"); h != "" {
		d.Evidence = append(d.Evidence, "host label "+clipText(h, 100)+": check the other stores on that host")
	}
	d.NoActionReason = page("check store %d's TiKV log around the drop (restarts, election timeouts, stalls) and the network to the other stores; moving leaders back by hand fights PD while the cause persists", id)
	return d
}

// hostStoresFailing (host_stores_failing): several stores on one host
// fail together; one incident, page.
func hostStoresFailing(f *facts) *diagnose.Diagnosis {
	host := clipText(f.ev.str("host"), 100)
	label := clipText(f.ev.str("host_label"), 50)
	ids := f.ev.ids("failing_store_ids")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("stores %s on %s %s fail together", idList(ids), label, host),
		Confidence: diagnose.ConfidenceHigh,
		RootCause:  fmt.Sprintf("Stores %s share the %s label value %s and fail at the same time: one cause on that machine (power, kernel, disk controller, network interface, a noisy neighbour) rather than separate store problems.", idList(ids), label, host),
		Risks:      []string{"If the host's stores hold more than one replica of some regions (location labels not separating them), those regions lose their quorum together."},
	}
	var reasons map[string]string
	if raw, ok := f.ev["reason_by_store"]; ok {
		_ = json.Unmarshal(raw, &reasons)
	}
	for _, id := range ids {
		line := fmt.Sprintf("store %d: %s", id, clipText(reasons[fmt.Sprint(id)], 100))
		if s, ok := f.store(id); ok {
			line = storeLine(s) + "; " + clipText(reasons[fmt.Sprint(id)], 100)
		}
		d.Evidence = append(d.Evidence, line)
	}
	if ll := f.c.Replication.LocationLabels; ll != "" {
		d.Evidence = append(d.Evidence, "replication location-labels: "+clipText(ll, 100))
	} else {
		d.Evidence = append(d.Evidence, "replication location-labels: none: PD may place several replicas of a region on this host")
	}
	d.NoActionReason = page("look at host %s itself (dmesg, disks, NIC, power) rather than at each store", host)
	return d
}

// replicationIsolationRisk pages: adding a failure domain or changing
// labels is a human's topology decision.
func replicationIsolationRisk(f *facts) *diagnose.Diagnosis {
	d := &diagnose.Diagnosis{
		Summary:    "one failure domain can hold a quorum of replicas",
		Confidence: diagnose.ConfidenceHigh,
		RootCause:  "The stores' location labels give fewer failure domains than max-replicas needs: PD places several replicas of a region in one domain (zone/host), so that domain's failure loses the region's Raft quorum (PD docs: schedule replicas by topology labels; isolation-level).",
		Risks:      []string{"A single zone or host failure makes the affected regions unavailable until it returns."},
	}
	var reasons []string
	if raw, ok := f.ev["reasons"]; ok {
		_ = json.Unmarshal(raw, &reasons)
	}
	for _, r := range reasons {
		d.Evidence = append(d.Evidence, clipText(r, 300))
	}
	d.NoActionReason = page("add stores in another failure domain (a third zone for 3 replicas) or change the topology labels / isolation-level deliberately; no PD action fixes the topology")
	return d
}
