package invariant

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// StoreDisconnected is PingCAP's PD_cluster_lost_connect_tikv_nums: a store
// PD shows as state_name "Disconnected" (last heartbeat > 20s ago, PD
// pkg/core/store.go storeDisconnectDuration) whose heartbeat is at most
// UnhealthyAfter old. Warning; one violation per store. Constructed by
// Default.
type StoreDisconnected struct {
	base
	// UnhealthyAfter is the age above which the store is StoreUnhealthy
	// instead.
	UnhealthyAfter time.Duration
}

// StoreUnhealthy is PingCAP's PD_cluster_unhealthy_tikv_nums: a store PD
// shows as "Disconnected" whose last heartbeat is older than
// UnhealthyAfter (PD storeUnhealthyDuration, 10m) but that is not yet Down.
// PD refuses such stores as operator targets. Warning; one violation per
// store. Constructed by Default.
type StoreUnhealthy struct {
	base
	UnhealthyAfter time.Duration
}

// StoreDown is PingCAP's PD_cluster_down_tikv_nums: a store PD shows as
// state_name "Down" (no heartbeat for more than schedule.max-store-down-time,
// default 30m); PD starts replacing its replicas. Emergency; one violation
// per store. Constructed by Default.
type StoreDown struct{ base }

// Eval implements Invariant.
func (inv *StoreDisconnected) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	return evalDisconnected(inv.name, s, now, inv.UnhealthyAfter, false)
}

// Eval implements Invariant.
func (inv *StoreUnhealthy) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	return evalDisconnected(inv.name, s, now, inv.UnhealthyAfter, true)
}

func evalDisconnected(name string, s *tikv.Snapshot, now time.Time, unhealthyAfter time.Duration, unhealthy bool) ([]Violation, error) {
	if err := needSources(name, s, sourceStores); err != nil {
		return nil, err
	}
	ref := refTime(s, now)
	var out []Violation
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName != pd.StateDisconnected {
			continue
		}
		age, known := heartbeatAge(st, ref)
		// A store PD calls Disconnected whose heartbeat time we cannot read
		// is treated as freshly disconnected: PD's word wins.
		isUnhealthy := known && age > unhealthyAfter
		if isUnhealthy != unhealthy {
			continue
		}
		ev := storeEvidence(st, ref)
		ev["threshold_seconds"] = seconds(pdDisconnectAfter)
		ev["unhealthy_after_seconds"] = seconds(unhealthyAfter)
		var summary string
		if unhealthy {
			ev["threshold_seconds"] = seconds(unhealthyAfter)
			summary = fmt.Sprintf("store %d (%s) is unhealthy: last heartbeat %s ago (> %s), not Down yet",
				st.Store.ID, st.Store.Address, age.Round(time.Second), unhealthyAfter)
		} else if known {
			summary = fmt.Sprintf("store %d (%s) is Disconnected: last heartbeat %s ago (> 20s)",
				st.Store.ID, st.Store.Address, age.Round(time.Second))
		} else {
			summary = fmt.Sprintf("store %d (%s) is Disconnected (> 20s without heartbeat)", st.Store.ID, st.Store.Address)
		}
		sev := ticket.Warning
		out = append(out, Violation{Subject: StoreSubject(st.Store.ID), Severity: sev, Summary: summary, Evidence: ev})
	}
	return out, nil
}

// Eval implements Invariant.
func (inv *StoreDown) Eval(_ context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores); err != nil {
		return nil, err
	}
	ref := refTime(s, now)
	maxDown := time.Duration(s.Schedule.MaxStoreDownTime)
	if maxDown <= 0 {
		maxDown = pdDefaultStoreDownMax
	}
	var out []Violation
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName != pd.StateDown {
			continue
		}
		ev := storeEvidence(st, ref)
		ev["max_store_down_time_seconds"] = seconds(maxDown)
		ev["threshold_seconds"] = seconds(maxDown)
		summary := fmt.Sprintf("store %d (%s) is Down: no heartbeat for more than max-store-down-time %s",
			st.Store.ID, st.Store.Address, maxDown)
		if age, ok := heartbeatAge(st, ref); ok {
			summary = fmt.Sprintf("store %d (%s) is Down: last heartbeat %s ago (> max-store-down-time %s); %d regions, %d leaders",
				st.Store.ID, st.Store.Address, age.Round(time.Second), maxDown, st.Status.RegionCount, st.Status.LeaderCount)
		}
		out = append(out, Violation{Subject: StoreSubject(st.Store.ID), Severity: ticket.Emergency, Summary: summary, Evidence: ev})
	}
	return out, nil
}

// storeEvidence is the common evidence of a store: its identity, state and
// heartbeat as PD reported them.
func storeEvidence(st *pd.StoreInfo, ref time.Time) map[string]any {
	ev := map[string]any{
		"store_id":     st.Store.ID,
		"address":      st.Store.Address,
		"state_name":   st.Store.StateName,
		"node_state":   st.Store.NodeState,
		"engine":       engine(st),
		"region_count": st.Status.RegionCount,
		"leader_count": st.Status.LeaderCount,
		"pd_time":      ref.UTC().Format(time.RFC3339Nano),
	}
	if hb := lastHeartbeat(st); !hb.IsZero() {
		ev["last_heartbeat"] = hb.UTC().Format(time.RFC3339Nano)
		ev["heartbeat_age_seconds"] = seconds(ref.Sub(hb))
	}
	if st.Store.Version != "" {
		ev["version"] = st.Store.Version
	}
	return ev
}

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// storeStateFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var storeStateFamilies = map[string]family{
	// A store that stopped heartbeating: PD acts after
	// max-store-down-time; a human finds out why.
	NameStoreDisconnected: {storeGone, nil},
	NameStoreUnhealthy:    {storeGone, nil},
	NameStoreDown:         {storeGone, nil},
}

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
		kind = NameStoreDown
	case s.Store.StateName == pd.StateDisconnected && known && age > pdUnhealthyAfter:
		kind = NameStoreUnhealthy
	case s.Store.StateName == pd.StateDisconnected:
		kind = NameStoreDisconnected
	}
	check := fmt.Sprintf("check the TiKV process at %s (systemctl status / kubectl get pod), its log (panic, \"No space left on device\"), dmesg for OOM kills, the disk, and the network between the store and PD", s.Store.Address)
	var cause []string
	cause = append(cause, fmt.Sprintf("TiKV store %d stopped heartbeating to PD (heartbeats come every 10 s): its process is down or restarting, its host or disk failed, or the network between it and PD is cut.", id))
	switch kind {
	case NameStoreDown:
		d.Summary = fmt.Sprintf("store %d is Down: last heartbeat %s (> max-store-down-time %s)", id, ageText, maxDown)
		if ops := f.replicaOperators(); ops > 0 {
			cause = append(cause, fmt.Sprintf("PD marked it Down and is re-creating its replicas on the other stores: %d replica-repair operators are running (GET /pd/api/v1/operators).", ops))
		} else {
			cause = append(cause, "PD marked it Down, but runs no replica-repair operator now: it is not re-creating the store's replicas (check replica-schedule-limit, store limits, and whether enough Up stores with space remain).")
		}
	case NameStoreUnhealthy:
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
	if kind == NameStoreDown {
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
