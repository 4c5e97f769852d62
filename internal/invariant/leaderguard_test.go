package invariant

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// leaderSnap is three stores read at PD time at, with PD leader member
// leader; store 3 heartbeated hbAgo before at and is in state.
func leaderSnap(at time.Time, leader uint64, state string, hbAgo time.Duration) *tikv.Snapshot {
	s := snap(store(1, 10, 30), store(2, 10, 30), store(3, 10, 30))
	s.Time = at
	for i := range s.Stores {
		s.Stores[i].Store.LastHeartbeat = at.Add(-2 * time.Second).UnixNano()
	}
	s.Stores[2].Store.StateName = state
	s.Stores[2].Store.LastHeartbeat = at.Add(-hbAgo).UnixNano()
	if leader != 0 {
		m := pd.Member{Name: "pd-" + idKey(leader), MemberID: leader}
		s.Members = pd.Members{Members: []pd.Member{m}, Leader: &m}
	}
	return s
}

func heldErr(t *testing.T, inv Invariant, s *tikv.Snapshot, now time.Time) *HeldError {
	t.Helper()
	vs, err := inv.Eval(t.Context(), s, now)
	var he *HeldError
	if !errors.As(err, &he) || !errors.Is(err, ErrHeld) {
		t.Fatalf("%s at %s: want held, got %v, %v", inv.Name(), now.Sub(t0), vs, err)
	}
	return he
}

// TestLeaderGuardMemberChange: a new PD leader shows store 3 Disconnected
// (its persisted last_heartbeat): held for the hold, with the reason;
// still Disconnected after it, it fires.
func TestLeaderGuardMemberChange(t *testing.T) {
	cfg := DefaultConfig()
	invs := Default(cfg)
	disc := one(t, cfg, NameStoreDisconnected)
	if got := eval(t, disc, leaderSnap(t0, 1, pd.StateUp, 2*time.Second), t0); len(got) != 0 {
		t.Fatalf("before: %v", got)
	}
	at := t0.Add(10 * time.Second)
	he := heldErr(t, disc, leaderSnap(at, 2, pd.StateDisconnected, 4*time.Minute), at)
	if !strings.Contains(he.Reason, "PD leader changed from member pd-1 (1) to pd-2 (2)") ||
		!he.Until.Equal(at.Add(DefaultPDLeaderChangeHold)) || he.Invariant != NameStoreDisconnected {
		t.Errorf("held = %+v", he)
	}
	// Every invariant of the held list is held, by the one shared guard;
	// the others evaluate.
	s := leaderSnap(at.Add(time.Second), 2, pd.StateDisconnected, 4*time.Minute)
	for _, inv := range Default(cfg) {
		_, err := inv.Eval(t.Context(), s, at)
		if held := errors.Is(err, ErrHeld); held {
			t.Errorf("%s held by a fresh guard that saw one snapshot", inv.Name())
		}
	}
	for _, inv := range invs {
		_, err := inv.Eval(t.Context(), leaderSnap(at.Add(-time.Second), 1, pd.StateUp, time.Second), t0)
		if err != nil {
			t.Fatalf("%s: %v", inv.Name(), err)
		}
	}
	for _, inv := range invs {
		_, err := inv.Eval(t.Context(), s, at)
		if held := errors.Is(err, ErrHeld); held != slices.Contains(HeldByLeaderChange, inv.Name()) {
			t.Errorf("%s: held=%v (%v)", inv.Name(), held, err)
		}
	}
	last := at.Add(DefaultPDLeaderChangeHold - time.Millisecond)
	heldErr(t, disc, leaderSnap(last, 2, pd.StateDisconnected, 4*time.Minute), last)
	end := at.Add(DefaultPDLeaderChangeHold)
	if got := subjects(eval(t, disc, leaderSnap(end, 2, pd.StateDisconnected, 4*time.Minute), end)); !slices.Equal(got, []string{"store:3"}) {
		t.Errorf("after the hold: %v, want store:3", got)
	}
}

// TestLeaderGuardHeartbeatRegression: a single PD restarts (same member
// id): store 3's last_heartbeat goes back to the persisted one. A
// snapshot that is not later in PD time is no successor; a missing leader
// is no change.
func TestLeaderGuardHeartbeatRegression(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PDLeaderChangeHold = 15 * time.Second
	capa := one(t, cfg, NameStoreCapacitySuspect)
	if got := eval(t, capa, leaderSnap(t0, 1, pd.StateUp, 2*time.Second), t0); len(got) != 0 {
		t.Fatalf("before: %v", got)
	}
	// Same PD time, older heartbeat: not a successor, no hold.
	eval(t, capa, leaderSnap(t0, 1, pd.StateUp, 8*time.Second), t0)
	// No leader listed: no change either.
	eval(t, capa, leaderSnap(t0.Add(time.Second), 0, pd.StateUp, 3*time.Second), t0.Add(time.Second))
	at := t0.Add(20 * time.Second)
	he := heldErr(t, capa, leaderSnap(at, 1, pd.StateDisconnected, 5*time.Minute), at)
	if !strings.Contains(he.Reason, "last_heartbeat went back on stores [3]") || !he.Until.Equal(at.Add(15*time.Second)) {
		t.Errorf("held = %+v", he)
	}
	if got := eval(t, capa, leaderSnap(at.Add(15*time.Second), 1, pd.StateUp, time.Second), at.Add(15*time.Second)); len(got) != 0 {
		t.Errorf("after: %v", got)
	}
}

// TestGuardKeepsForAndState: the wrapper keeps the invariant's `for` and
// its persisted history.
func TestGuardKeepsForAndState(t *testing.T) {
	cfg := DefaultConfig()
	cfg.For = map[string]time.Duration{NameStoreLowSpace: 3 * time.Minute}
	if d := For(one(t, cfg, NameStoreLowSpace)); d != 3*time.Minute {
		t.Errorf("for = %s", d)
	}
	var names []string
	for _, s := range StatesOf(Default(cfg)) {
		names = append(names, s.StateName())
	}
	drop := one(t, cfg, NameStoreLeaderDrop).(Stateful)
	if !slices.Contains(names, drop.StateName()) || !slices.Contains(names, "history") {
		t.Errorf("states %v lack %s or history", names, drop.StateName())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.PDLeaderChangeHold = -time.Second
	if err := cfg.Validate(); err == nil {
		t.Error("negative hold accepted")
	}
}
