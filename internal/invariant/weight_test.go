package invariant

import (
	"testing"
	"time"
)

// PD balances count/weight: a store with leader_weight 2 is meant to hold
// twice the leaders (pd-ctl store weight). Uneven counts with even scores
// are balanced, not a ticket; the same counts with equal weights are.
func TestLeaderImbalanceUsesStoreWeights(t *testing.T) {
	inv := one(t, DefaultConfig(), NameLeaderImbalance)
	heavy := store(1, 40, 40)
	heavy.Status.LeaderWeight = 2
	s := snap(heavy, store(2, 20, 40), store(3, 20, 40))
	s.Schedulers = []string{"balance-leader-scheduler"}
	if vs := eval(t, inv, s, t0); len(vs) != 0 {
		t.Errorf("weights 2/1/1 with leaders 40/20/20 (even scores): %+v", vs)
	}
	heavy.Status.LeaderWeight = 1
	s = snap(heavy, store(2, 20, 40), store(3, 20, 40))
	s.Schedulers = []string{"balance-leader-scheduler"}
	vs := eval(t, inv, s, t0)
	if len(vs) != 1 {
		t.Fatalf("equal weights with leaders 40/20/20: %+v", vs)
	}
	// A weight of 0 (absent on old PDs) counts as 1.
	heavy.Status.LeaderWeight = 0
	s = snap(heavy, store(2, 20, 40), store(3, 20, 40))
	s.Schedulers = []string{"balance-leader-scheduler"}
	if vs := eval(t, inv, s, t0); len(vs) != 1 {
		t.Errorf("weight 0 taken as something else than 1: %+v", vs)
	}
}

// A store PD rebalances (30 leaders of 30 down to 12, the others 9 each)
// did not collapse; a store that falls to 2 while the others rise did.
func TestStoreLeaderDropIgnoresRebalancing(t *testing.T) {
	for _, tc := range []struct {
		name          string
		after, others int
		want          int
	}{
		{"rebalanced to its share", 12, 9, 0},
		{"collapsed", 2, 14, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := one(t, DefaultConfig(), NameStoreLeaderDrop)
			before := snap(store(1, 30, 30), store(2, 0, 30), store(3, 0, 30))
			eval(t, inv, before, t0)
			after := snap(store(1, tc.after, 30), store(2, tc.others, 30), store(3, tc.others, 30))
			after.Time = t0.Add(10 * time.Second)
			vs := eval(t, inv, after, t0.Add(10*time.Second))
			n := 0
			for _, v := range vs {
				if v.Subject == StoreSubject(1) {
					n++
				}
			}
			if n != tc.want {
				t.Errorf("store_leader_drop on store 1: %d violations, want %d (%+v)", n, tc.want, vs)
			}
		})
	}
}
