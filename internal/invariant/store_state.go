package invariant

import (
	"context"
	"fmt"
	"time"

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
