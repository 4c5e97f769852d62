package invariant_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/monitor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikv"
)

// TestRealLeaderChangeHold: a real pd-server restarts (its leadership is
// re-elected and it reloads the stores from storage) while the simulated
// stores hold their store heartbeats: PD shows every store with its
// persisted last_heartbeat, capacity 0 and no leaders. The monitor holds
// the store-state invariants — no ticket opens although the unguarded
// invariants would open some — and says why. A store that stays down
// fires once the hold ends; the others open nothing.
func TestRealLeaderChangeHold(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 6, StoreHeartbeat: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pdc, err := pd.New([]string{tc.PDURL}, pd.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "t.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := invariant.DefaultConfig()
	cfg.LowSpaceMinRegionCount = 0
	cfg.NoLeadersMinUptime = 0
	var invs []invariant.Invariant
	for _, inv := range invariant.Default(cfg) {
		if slices.Contains(invariant.HeldByLeaderChange, inv.Name()) {
			invs = append(invs, inv)
		}
	}
	mon := monitor.New(monitor.Options{Invariants: invs, Sink: st,
		Collect: func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, pdc) }})
	ids := tc.Sim.StoreIDs()
	stores := func() map[uint64]pd.StoreInfo {
		ss, err := pdc.Stores(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[uint64]pd.StoreInfo{}
		for _, s := range ss {
			out[s.Store.ID] = s
		}
		return out
	}
	// PD persists a store's last_heartbeat at its first heartbeat, then at
	// most every 5 minutes: wait for one heartbeat past the persisted one.
	first := stores()[ids[0]].Store.LastHeartbeat
	if err := tc.WaitFor(ctx, func() (bool, error) {
		return stores()[ids[0]].Store.LastHeartbeat > first+int64(time.Second), nil
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cycle := func(at time.Time) monitor.CycleResult {
		t.Helper()
		res, err := mon.RunOnce(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := cycle(now); len(res.Opened) != 0 || len(res.Pending) != 0 {
		t.Fatalf("healthy cluster: opened %v pending %v", res.Opened, res.Pending)
	}

	tc.Sim.PauseStoreHeartbeats(true)
	if err := tc.StopPD(); err != nil {
		t.Fatal(err)
	}
	if err := tc.Sim.StopStore(ids[2]); err != nil {
		t.Fatal(err)
	}
	if err := tc.StartPD(ctx); err != nil {
		t.Fatal(err)
	}
	changed := now.Add(10 * time.Second)
	res := cycle(changed)
	if len(res.Opened) != 0 {
		t.Fatalf("opened right after PD's restart: %+v", res.Opened)
	}
	for _, s := range res.Invariants {
		if s.Name == invariant.NamePDUnreachable {
			continue
		}
		if s.Health != monitor.HealthHeld || !strings.Contains(s.Err, "last_heartbeat went back") {
			t.Errorf("%s: health %s %q, want held", s.Name, s.Health, s.Err)
		}
	}
	// What the hold prevented: the same snapshot, unguarded.
	var would []string
	for _, inv := range invs {
		vs, err := inv.(interface{ Unwrap() invariant.Invariant }).Unwrap().Eval(ctx, res.Snapshot, changed)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			would = append(would, inv.Name()+"/"+v.Subject)
		}
	}
	t.Logf("held after PD's restart: %s; unguarded they would open %v", res.Invariants[1].Err, would)
	if len(would) == 0 {
		t.Fatalf("the new leader's store figures (%+v) violate nothing: the test shows no hold", res.Snapshot.Stores)
	}

	// Stores 1 and 2 heartbeat again; store 3 stays stopped until PD shows
	// it Disconnected.
	tc.Sim.PauseStoreHeartbeats(false)
	if err := tc.WaitFor(ctx, func() (bool, error) {
		ss := stores()
		return ss[ids[0]].Status.Capacity > 0 && ss[ids[1]].Status.Capacity > 0 &&
			ss[ids[0]].Store.StateName == pd.StateUp && ss[ids[1]].Store.StateName == pd.StateUp &&
			ss[ids[2]].Store.StateName == pd.StateDisconnected, nil
	}); err != nil {
		t.Fatalf("stores after PD's restart: %v", err)
	}
	if res := cycle(changed.Add(cfg.PDLeaderChangeHold - time.Second)); len(res.Opened) != 0 {
		t.Fatalf("opened within the hold: %+v", res.Opened)
	}
	res = cycle(changed.Add(cfg.PDLeaderChangeHold))
	var opened []string
	for _, tk := range res.Opened {
		opened = append(opened, tk.Key)
	}
	for _, s := range res.Invariants {
		if s.Health != monitor.HealthGood {
			t.Errorf("%s after the hold: %s %s", s.Name, s.Health, s.Err)
		}
	}
	want := invariant.NameStoreDisconnected + "/" + invariant.StoreSubject(ids[2])
	if !slices.Contains(opened, want) {
		t.Fatalf("after the hold opened %v, want %s", opened, want)
	}
	for _, k := range opened {
		if strings.HasSuffix(k, invariant.StoreSubject(ids[0])) || strings.HasSuffix(k, invariant.StoreSubject(ids[1])) {
			t.Errorf("ticket %s for a store that heartbeats again", k)
		}
	}
	if !errors.Is(&invariant.HeldError{}, invariant.ErrHeld) {
		t.Error("HeldError does not match ErrHeld")
	}
}
