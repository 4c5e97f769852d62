package invariant

import (
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// The guard's memory survives an operator restart (it is one of the
// histories the monitor persists): a PD leader change that happened while
// the operator was stopped still holds the store-state invariants at its
// first cycle, instead of opening store_disconnected tickets for every
// store the new leader has not heard from yet.
func TestLeaderGuardStateSurvivesRestart(t *testing.T) {
	cfg := DefaultConfig()
	before := one(t, cfg, NameStoreDisconnected)
	if got := eval(t, before, leaderSnap(t0, 1, pd.StateUp, 2*time.Second), t0); len(got) != 0 {
		t.Fatalf("before: %v", got)
	}
	var doc []byte
	for _, s := range StatesOf([]Invariant{before}) {
		if s.StateName() == "invariant/pd-leader-guard" {
			d, err := s.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			doc = d
		}
	}
	if doc == nil {
		t.Fatal("the guard is not among the persisted states (StatesOf)")
	}
	// A new operator process: fresh invariants, state restored.
	after := one(t, cfg, NameStoreDisconnected)
	for _, s := range StatesOf([]Invariant{after}) {
		if s.StateName() == "invariant/pd-leader-guard" {
			if err := s.UnmarshalState(doc); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := t0.Add(2 * time.Minute)
	he := heldErr(t, after, leaderSnap(at, 2, pd.StateDisconnected, 4*time.Minute), at)
	if he.Invariant != NameStoreDisconnected {
		t.Errorf("held = %+v", he)
	}
}
