package invariant

import (
	"context"
	"fmt"
	"time"

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
