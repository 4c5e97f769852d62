package invariant

import "testing"

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
