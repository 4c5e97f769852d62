package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// storeGone (store_disconnected, store_unhealthy, store_down): no action.
// PD itself re-creates a Down store's replicas after max-store-down-time;
// what a human must find out is why the store stopped. The text follows
// the severity: Disconnected (> 20 s), unhealthy (> 10 min, no longer an
// operator target), Down (PD is re-replicating).
func storeGone(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	d := &diagnose.Diagnosis{}
	s, ok := f.store(id)
	if !ok {
		d.Summary = fmt.Sprintf("store %d is no longer listed by PD", id)
		d.RootCause = "The store is gone from GET /pd/api/v1/stores: it was removed (Tombstone) since the ticket fired."
		d.Confidence = diagnose.ConfidenceMedium
		d.NoActionReason = page("store %d is no longer listed; nothing to do unless its removal was not intended", id)
		return d
	}
	maxDown := time.Duration(f.c.Schedule.MaxStoreDownTime)
	if maxDown <= 0 {
		maxDown = pdDefaultMaxStoreDownTime
	}
	age, known := f.heartbeatAge(s)
	ageText, silent := "unknown", "an unknown time"
	if known {
		ageText, silent = roundDur(age).String()+" ago", roundDur(age).String()
	}
	d.Evidence = []string{
		storeLine(s),
		fmt.Sprintf("last heartbeat %s (PD clock %s); Disconnected after 20s, unhealthy after 10m, Down after max-store-down-time %s", ageText, f.c.Time.UTC().Format(time.RFC3339), maxDown),
	}
	if s.Store.StateName == pd.StateUp {
		d.Summary = fmt.Sprintf("store %d is Up again", id)
		d.RootCause = "The store heartbeats again; it was restarted or its network recovered."
		d.Confidence = diagnose.ConfidenceMedium
		d.Risks = []string{"If it flaps, look for the restart cause in its log (OOM kills, panics)."}
		d.NoActionReason = page("store %d is back Up; check why it restarted (TiKV log, dmesg for OOM kills) if it was not planned", id)
		return d
	}
	others := slices.DeleteFunc(f.tikvIn(pd.StateDisconnected, pd.StateDown), func(x uint64) bool { return x == id })
	up := f.upTiKV()
	mr := f.maxReplicas()
	regions := f.regionsOnStore(id)
	lost := f.lostQuorum(regions)
	if len(others) > 0 {
		d.Evidence = append(d.Evidence, "other TiKV stores not heartbeating: "+idList(others))
	}
	d.Evidence = append(d.Evidence, fmt.Sprintf("Up TiKV stores %s for max-replicas %d", idList(up), mr))
	if len(regions) > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("%d of its regions examined (GET /pd/api/v1/regions/store/%d); without a majority of live voters: %s", len(regions), id, idList(lost)))
	}
	if ops := f.replicaOperators(); ops > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("%d replica-repair operators running (GET /pd/api/v1/operators)", ops))
	}
	// The text follows the store's state now: a Disconnected store may
	// have become unhealthy or Down since its ticket fired.
	kind := f.c.Ticket.Invariant
	switch {
	case s.Store.StateName == pd.StateDown:
		kind = invariant.NameStoreDown
	case s.Store.StateName == pd.StateDisconnected && known && age > pdUnhealthyAfter:
		kind = invariant.NameStoreUnhealthy
	case s.Store.StateName == pd.StateDisconnected:
		kind = invariant.NameStoreDisconnected
	}
	check := fmt.Sprintf("check the TiKV process at %s (systemctl status / kubectl get pod), its log (panic, \"No space left on device\"), dmesg for OOM kills, the disk, and the network between the store and PD", s.Store.Address)
	var cause []string
	cause = append(cause, fmt.Sprintf("TiKV store %d stopped heartbeating to PD (heartbeats come every 10 s): its process is down or restarting, its host or disk failed, or the network between it and PD is cut.", id))
	switch kind {
	case invariant.NameStoreDown:
		d.Summary = fmt.Sprintf("store %d is Down: last heartbeat %s (> max-store-down-time %s)", id, ageText, maxDown)
		if ops := f.replicaOperators(); ops > 0 {
			cause = append(cause, fmt.Sprintf("PD marked it Down and is re-creating its replicas on the other stores: %d replica-repair operators are running (GET /pd/api/v1/operators).", ops))
		} else {
			cause = append(cause, "PD marked it Down, but runs no replica-repair operator now: it is not re-creating the store's replicas (check replica-schedule-limit, store limits, and whether enough Up stores with space remain).")
		}
	case invariant.NameStoreUnhealthy:
		d.Summary = fmt.Sprintf("store %d has been silent for %s: unhealthy, not Down yet", id, silent)
		cause = append(cause, fmt.Sprintf("After 10 minutes PD no longer uses it as an operator target; at max-store-down-time (%s) it becomes Down and PD starts re-creating its replicas elsewhere.", maxDown))
	default:
		d.Summary = fmt.Sprintf("store %d is Disconnected: last heartbeat %s", id, ageText)
		cause = append(cause, fmt.Sprintf("PD does nothing yet: a planned restart comes back within minutes; if it stays away for max-store-down-time (%s), PD marks it Down and re-creates its replicas elsewhere.", maxDown))
	}
	if len(up) < mr {
		cause = append(cause, fmt.Sprintf("Only %d TiKV stores are Up for max-replicas %d, so PD cannot re-create the missing replicas anywhere: the store must come back, or a TiKV store must be added.", len(up), mr))
	}
	if len(lost) > 0 {
		cause = append(cause, fmt.Sprintf("Regions %s have lost their majority of live voters: they are unavailable until their stores return (unsafe recovery, pd-ctl unsafe remove-failed-stores, is a last resort with PingCAP's guidance).", idList(lost)))
	}
	if len(others) > 0 {
		cause = append(cause, fmt.Sprintf("Stores %s are not heartbeating either: look for a shared cause (a rack, a network switch, a deploy).", idList(others)))
	}
	d.RootCause = strings.Join(cause, " ")
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{
		fmt.Sprintf("Until the store returns or PD re-creates its replicas, regions with a peer on store %d run with one replica fewer: another failure among their stores costs them their quorum.", id),
	}
	if kind == invariant.NameStoreDown {
		d.Risks = append(d.Risks,
			"Re-replication copies the store's data over the network and disks of the remaining stores for a while.",
			fmt.Sprintf("If the machine is gone for good, decommission the store afterwards with drain_store %d (never with force), so PD stops waiting for it.", id))
		d.NoActionReason = page("the store is Down; %s", check)
	} else {
		d.NoActionReason = page("PD acts on its own once the store is Down (after max-store-down-time %s); meanwhile %s", maxDown, check)
	}
	if len(lost) > 0 {
		d.Confidence = diagnose.ConfidenceHigh
	}
	return d
}

// replicaOperators counts PD's running operators that repair or move
// replicas (descriptions starting "replace-", "add-rule-peer",
// "fix-", "make-up").
func (f *facts) replicaOperators() int {
	n := 0
	for _, op := range f.c.Operators {
		if op.Status != opCreated && op.Status != opStarted {
			continue
		}
		for _, p := range []string{"replace-", "add-rule-peer", "fix-", "make-up"} {
			if strings.HasPrefix(op.Desc, p) {
				n++
				break
			}
		}
	}
	return n
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

// spaceRow is one store's space figures.
type spaceRow struct {
	s                            *pd.StoreInfo
	capacity, avail, used, other uint64
	ratio                        float64
}

func (f *facts) spaceRows() []spaceRow {
	var out []spaceRow
	for _, id := range f.ids {
		s := f.stores[id]
		if s.Store.StateName == pd.StateTombstone {
			continue
		}
		r := spaceRow{s: s, capacity: uint64(s.Status.Capacity), avail: uint64(s.Status.Available), used: uint64(s.Status.UsedSize)}
		if r.capacity > 0 {
			r.ratio = float64(r.avail) / float64(r.capacity)
			if r.avail+r.used < r.capacity {
				r.other = r.capacity - r.avail - r.used
			}
		}
		out = append(out, r)
	}
	return out
}

func (r spaceRow) line() string {
	s := fmt.Sprintf("store %d (%s): %s of %s available (%s), used by TiKV %s", r.s.Store.ID, r.s.Store.StateName,
		bytesOf(r.avail), bytesOf(r.capacity), pct(r.ratio), bytesOf(r.used))
	if r.used > 0 && r.other > 0 {
		s += ", not explained by TiKV " + bytesOf(r.other)
	}
	return s
}

// unexplained reports tikv/pd#9858, tikv/pd#6252's check: capacity - available - used >
// max(10% of capacity, 50 GiB), other data on the disk.
func (r spaceRow) unexplained() bool {
	return r.used > 0 && r.other > max(r.capacity/10, 50<<30)
}

// storeLowSpace (store_low_space, tikv/tikv#5420, tikv/pd#9858, tikv/pd#6252): always page. With
// every store low, balancing cannot help; with room elsewhere, PD's
// balance-region moves regions off by itself. Never raise low-space-ratio:
// it hides a disk that is really filling up.
func storeLowSpace(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	ratio := f.lowSpaceRatio()
	rows := f.spaceRows()
	var low, room []uint64
	var self *spaceRow
	for i := range rows {
		r := &rows[i]
		if r.s.Store.ID == id {
			self = r
		}
		if r.s.IsTiFlash() || r.s.Store.StateName == pd.StateDown || r.capacity == 0 {
			continue
		}
		switch {
		case r.ratio < 1-ratio:
			low = append(low, r.s.Store.ID)
		case r.s.Store.StateName == pd.StateUp && r.ratio >= 1-f.highSpaceRatio():
			room = append(room, r.s.Store.ID)
		}
	}
	d := &diagnose.Diagnosis{
		Summary: fmt.Sprintf("store %d is low on space (low-space-ratio %g)", id, ratio),
		Evidence: []string{fmt.Sprintf("low when available/capacity < %s (1 - low-space-ratio %g, GET /pd/api/v1/config/schedule); stores below: %s; stores with room (< high-space-ratio %g used): %s",
			pct(1-ratio), ratio, idList(low), f.highSpaceRatio(), idList(room))},
		Confidence: diagnose.ConfidenceMedium,
	}
	for _, r := range rows {
		d.Evidence = append(d.Evidence, r.line())
	}
	if self != nil && self.s.IsTiFlash() {
		d.Summary = fmt.Sprintf("TiFlash store %d is low on space: %s of %s available", id, bytesOf(self.avail), bytesOf(self.capacity))
		d.RootCause = "A TiFlash store holds columnar replicas of the tables that have TiFlash replicas; PD can only move them to other TiFlash stores."
		d.Risks = []string{"A full TiFlash store stops replicating, and analytical queries fall back to TiKV or fail.", "Do not raise low-space-ratio: it hides the problem."}
		d.NoActionReason = page("add TiFlash capacity or reduce the tables with TiFlash replicas (ALTER TABLE ... SET TIFLASH REPLICA)")
		return d
	}
	if self == nil || !slices.Contains(low, id) {
		d.Summary = fmt.Sprintf("store %d is no longer low on space", id)
		d.RootCause = "The store's available space is back above the low-space threshold (data was deleted or compacted, or regions moved away)."
		d.NoActionReason = page("store %d is no longer low on space; keep an eye on the trend", id)
		return d
	}
	below := pct(self.ratio) + " < " + pct(1-ratio)
	if pct(self.ratio) == pct(1-ratio) {
		below = "just under " + pct(1-ratio)
	}
	d.Summary = fmt.Sprintf("store %d is low on space: %s of %s available (%s)", id, bytesOf(self.avail), bytesOf(self.capacity), below)
	never := "Do not raise low-space-ratio (set_low_space_threshold): it only hides a disk that is really filling up (tikv/tikv#5420, tikv/pd#9858, tikv/pd#6252)."
	switch {
	case len(room) == 0:
		d.RootCause = fmt.Sprintf("Every TiKV store is at or near its low-space threshold (low: %s): there is nowhere to move regions, so balancing cannot help (tikv/tikv#5420). Once a store is full, TiKV stops with \"No space left on device\" and cannot restart.", idList(low))
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"Stores that fill up stop accepting writes and may not restart.", never}
		d.NoActionReason = page("every store is low on space; add capacity (new TiKV stores or bigger disks) or delete data (DROP/TRUNCATE, then GC), watching time to full per store; TiKV's space_placeholder_file is the emergency reserve if a store crashes")
	case self.unexplained():
		d.RootCause = fmt.Sprintf("On store %d, %s of the disk is used by something other than TiKV (capacity - available - used_size): the disk is shared with other data (logs, backups, another TiKV), which PD cannot move (tikv/pd#9858, tikv/pd#6252tikv/pd#9858).", id, bytesOf(self.other))
		d.Confidence = diagnose.ConfidenceHigh
		d.Risks = []string{"The foreign data keeps growing and fills the disk regardless of how regions are balanced.", never}
		d.NoActionReason = page("find and remove the non-TiKV data on store %d's disk (%s unexplained), or give TiKV its own disk", id, bytesOf(self.other))
	default:
		bal := f.scheduler(schedBalanceRegion)
		d.RootCause = fmt.Sprintf("Store %d holds more data than its disk comfortably allows while stores %s have room. PD's balance-region scheduler (%s) moves regions away from low-space stores by itself (their region score rises steeply).", id, idList(room), bal)
		if bal != "running" {
			d.RootCause += " It is not running, so nothing moves: resume or re-add it (pd-ctl scheduler add balance-region-scheduler)."
		}
		if self.capacity < medianCapacity(rows)/2 {
			d.RootCause += " Its disk is much smaller than the others', and PD balances by size; give it a disk like the others'."
		}
		d.Risks = []string{"If data grows faster than PD moves regions away, the store fills up.", never}
		d.NoActionReason = page("PD's balancer is the right tool here; check that it moves regions off store %d (pd-ctl operator show region) and that the disk trend is flat", id)
	}
	return d
}

func medianCapacity(rows []spaceRow) uint64 {
	var caps []uint64
	for _, r := range rows {
		if r.capacity > 0 && !r.s.IsTiFlash() {
			caps = append(caps, r.capacity)
		}
	}
	if len(caps) == 0 {
		return 0
	}
	slices.Sort(caps)
	return caps[len(caps)/2]
}

// clusterSpaceUsed (cluster_space_used): page with the per-store table.
func clusterSpaceUsed(f *facts) *diagnose.Diagnosis {
	used, _ := f.ev.uint("used_bytes")
	capacity, _ := f.ev.uint("capacity_bytes")
	ratio, _ := f.ev.float("used_ratio")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("cluster space used %s: %s of %s", pct(ratio), bytesOf(used), bytesOf(capacity)),
		Evidence:   []string{fmt.Sprintf("sum of used_size / capacity over non-Tombstone stores: %s (%s)", pct(ratio), f.ev.str("used_source"))},
		RootCause:  "The data stored has grown close to the cluster's total capacity: balancing moves data between stores but cannot create room (tikv/tikv#5420).",
		Confidence: diagnose.ConfidenceHigh,
		Risks:      []string{"When stores fill up they stop accepting writes; a full TiKV may not restart.", "Do not raise low-space-ratio: it hides the problem."},
	}
	for _, r := range f.spaceRows() {
		d.Evidence = append(d.Evidence, r.line())
	}
	d.NoActionReason = page("plan capacity: add TiKV stores or bigger disks, or delete data (then GC); estimate time to full from the growth rate")
	return d
}

// storeCapacitySuspect (store_capacity_suspect, tikv/pd#9858, tikv/pd#6252): page.
func storeCapacitySuspect(f *facts) *diagnose.Diagnosis {
	id, _ := f.ev.uint("store_id")
	if sid, ok := subjectStore(f); ok {
		id = sid
	}
	reason := f.ev.str("reason")
	d := &diagnose.Diagnosis{
		Summary:    fmt.Sprintf("store %d reports an implausible capacity (%s)", id, reason),
		Confidence: diagnose.ConfidenceMedium,
		Risks:      []string{"PD's space math (low space, balance) is wrong while the figure is wrong: regions may be placed badly."},
	}
	if s, ok := f.store(id); ok {
		d.Evidence = append(d.Evidence, storeLine(s))
	}
	if m := f.ev.str("median_capacity"); m != "" {
		d.Evidence = append(d.Evidence, fmt.Sprintf("median capacity of its peers %s (ratio %.2g)", m, must(f.ev.float("capacity_to_median_ratio"))))
	}
	if strings.Contains(reason, "0 B") {
		d.RootCause = "A store reporting capacity 0 B is usually a crashed or stuck TiKV whose heartbeats carry no disk statistics (tikv/pd#6252: PD ignores such stores for low space); it skews the cluster's space totals."
	} else {
		d.RootCause = "A capacity far below its peers usually comes from TiKV's own configuration (storage.reserve-space or raftstore.capacity set too small, tikv/tikv#2913) or from a wrong or full mount under the data directory."
	}
	d.NoActionReason = page("check store %d's TiKV configuration (raftstore.capacity) and the disk under its data directory; no PD action fixes a reported capacity", id)
	return d
}

func must(v float64, _ bool) float64 { return v }
