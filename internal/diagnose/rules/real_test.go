package rules_test

// Tests on the real parts: one real pd-server with four simulated TiKV
// stores (internal/testcluster) shared by the tests of this file, in file
// order; each test undoes the faults it injects. A ticket is built the way
// the monitor builds it (the invariant's Eval over tikv.Collect's
// snapshot), its context gathered by package gather, diagnosed by the rules
// backend and validated against the real TiKV action catalog: the proposal
// must name real ids and pass the action's dry run against PD.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/diagnosetest"
	"github.com/tikvops/operator/internal/diagnose/gather"
	"github.com/tikvops/operator/internal/diagnose/rules"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

var shared struct {
	once sync.Once
	c    *testcluster.Cluster
	err  error
}

// TestMain closes the shared cluster (started lazily by the first test
// that needs it, so that the pure-logic tests never start one).
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		if err := shared.c.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close test cluster:", err)
		}
	}
	os.Exit(code)
}

// env is the shared cluster with a PD client, the real catalog, the
// gatherer and the rules backend.
type env struct {
	t   *testing.T
	tc  *testcluster.Cluster
	pd  *pd.Client
	cat *action.Catalog
	g   *gather.Gatherer
	b   *rules.Backend
	ctx context.Context
}

// newEnv returns the shared cluster: 4 stores, 12 regions (+4 PD keyspace
// splits), every leader on the first store, PD's balance-leader,
// balance-region and hot-region schedulers off so that the skew and the
// hot spot persist, max-store-down-time 30s so that Down is reachable.
func newEnv(t *testing.T) *env {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.c, shared.err = testcluster.New(ctx, testcluster.Options{
			Stores: 4, Regions: 12, SkewLeaders: true,
			DisableSchedulers: []string{"balance-leader", "balance-region", "hot-region"},
			MaxStoreDownTime:  30 * time.Second,
		})
	})
	if shared.err != nil {
		t.Fatalf("start test cluster: %v", shared.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	client, err := pd.New([]string{shared.c.PDURL}, pd.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cat := tikv.NewCatalog(client, tikv.WithVerifyTimeout(30*time.Second), tikv.WithPollInterval(100*time.Millisecond))
	return &env{t: t, tc: shared.c, pd: client, cat: cat, ctx: ctx,
		g: gather.New(client, gather.Options{Catalog: cat, Logger: slog.New(slog.DiscardHandler)}),
		b: rules.New(rules.Options{})}
}

// config is the invariant configuration of these tests: thresholds fit for
// a small simulated cluster.
func config() invariant.Config {
	cfg := invariant.DefaultConfig()
	cfg.LowSpaceMinRegionCount = 0
	cfg.NoLeadersMinUptime = 0
	cfg.PendingPeerMaxRegions = 0
	return cfg
}

// violations evaluates the invariant named name over a fresh snapshot.
func (e *env) violations(name string) []invariant.Violation {
	e.t.Helper()
	snap, err := tikv.Collect(e.ctx, e.pd)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, inv := range invariant.Default(config()) {
		if inv.Name() != name {
			continue
		}
		vs, err := inv.Eval(e.ctx, snap, time.Now())
		if err != nil {
			e.t.Fatalf("%s: %v", name, err)
		}
		return vs
	}
	e.t.Fatalf("no invariant %s", name)
	return nil
}

// waitViolation polls until the invariant reports subject and returns
// the ticket the monitor would open for it.
func (e *env) waitViolation(name, subject string, limit time.Duration) ticket.Ticket {
	e.t.Helper()
	var last []invariant.Violation
	deadline := time.Now().Add(limit)
	for {
		last = e.violations(name)
		for _, v := range last {
			if v.Subject == subject {
				return ticketOf(e.t, name, v)
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s on %s not reported within %s; violations %+v", name, subject, limit, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ticketOf is the open ticket Store.Observe would create for v.
func ticketOf(t *testing.T, name string, v invariant.Violation) ticket.Ticket {
	t.Helper()
	obs, err := v.Observation(name)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	return ticket.Ticket{ID: 1, Key: obs.Key(), Invariant: obs.Invariant, Subject: obs.Subject, Severity: obs.Severity,
		Status: ticket.Open, Summary: obs.Summary, Evidence: obs.Evidence, FirstEvidence: obs.Evidence,
		FirstSeen: now, LastSeen: now, Occurrences: 1, UpdatedAt: now}
}

// diagnose gathers, diagnoses and validates tk.
func (e *env) diagnose(tk ticket.Ticket) (*diagnose.Context, *diagnose.Diagnosis) {
	e.t.Helper()
	c, err := e.g.Gather(e.ctx, tk)
	if err != nil {
		e.t.Fatalf("gather: %v", err)
	}
	d, err := e.b.Diagnose(e.ctx, c)
	if err != nil {
		e.t.Fatalf("diagnose: %v", err)
	}
	if err := diagnose.Validate(e.ctx, d, e.cat); err != nil {
		e.t.Fatalf("validate: %v", err)
	}
	e.t.Logf("diagnosis of %s:\n%s", tk.Key, d.Markdown())
	return c, d
}

// proposed asserts d proposes actionType with a valid dry run and returns
// its params.
func proposed(t *testing.T, d *diagnose.Diagnosis, actionType string) map[string]any {
	t.Helper()
	if d.ProposedAction == nil {
		t.Fatalf("no proposal: %s (rejected %+v)", d.NoActionReason, d.RejectedAction)
	}
	if d.ProposedAction.ActionType != actionType {
		t.Fatalf("proposed %s, want %s", d.ProposedAction.ActionType, actionType)
	}
	if d.DryRun == nil || !d.DryRun.Valid {
		t.Fatalf("dry run %+v", d.DryRun)
	}
	var p map[string]any
	if err := json.Unmarshal(d.ProposedAction.Params, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func id(p map[string]any, key string) uint64 {
	f, _ := p[key].(float64)
	return uint64(f)
}

func (e *env) region(id uint64) *pd.Region {
	e.t.Helper()
	r, err := e.pd.Region(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) store(id uint64) *pd.StoreInfo {
	e.t.Helper()
	s, err := e.pd.Store(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) execute(d *diagnose.Diagnosis) action.Outcome {
	e.t.Helper()
	a, err := e.cat.Lookup(d.ProposedAction.ActionType)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := a.Execute(e.ctx, d.ProposedAction.Params)
	if err != nil || !out.Success {
		e.t.Fatalf("execute %s %s: %+v, %v", d.ProposedAction.ActionType, d.ProposedAction.Params, out, err)
	}
	return out
}

// TestRealLeaderImbalance: every leader on the first store and PD's
// balance-leader scheduler off -> transfer_leader of a region led by that
// store to the least loaded store, which holds a voter of it; executing
// the proposal moves the leader there.
func TestRealLeaderImbalance(t *testing.T) {
	e := newEnv(t)
	tk := e.waitViolation(invariant.NameLeaderImbalance, invariant.SubjectCluster, 30*time.Second)
	c, d := e.diagnose(tk)
	p := proposed(t, d, tikv.ActionTransferLeader)
	rid, to := id(p, "region_id"), id(p, "to_store_id")
	skewed := e.tc.Sim.StoreIDs()[0]
	r := e.region(rid)
	if r.Leader.StoreID != skewed {
		t.Errorf("region %d leader on store %d, want the loaded store %d", rid, r.Leader.StoreID, skewed)
	}
	if peer, ok := r.PeerOn(to); !ok || !peer.IsVoter() {
		t.Errorf("target store %d holds no voter of region %d: %+v", to, rid, r.Peers)
	}
	if s := e.store(to); s.Store.StateName != pd.StateUp || s.Status.LeaderCount != 0 {
		t.Errorf("target store %d is %s with %d leaders, want an Up store with the fewest (0)", to, s.Store.StateName, s.Status.LeaderCount)
	}
	if !strings.Contains(d.RootCause, "balance-leader-scheduler is not running") || d.Confidence != diagnose.ConfidenceHigh {
		t.Errorf("root cause %q (confidence %s) does not blame the missing balance-leader-scheduler", d.RootCause, d.Confidence)
	}
	if len(c.Regions) == 0 || len(c.Stores) != 4 {
		t.Errorf("context has %d regions and %d stores", len(c.Regions), len(c.Stores))
	}
	// The proposal is actionable: PD moves the leader.
	e.execute(d)
	if now := e.region(rid); now.Leader.StoreID != to {
		t.Errorf("after execution the leader of region %d is on store %d, want %d", rid, now.Leader.StoreID, to)
	}
}

// TestRealRunnerStoresProposal: the runner with a real SQLite store turns
// an open leader_imbalance ticket into a diagnosed ticket with a stored
// proposal in status proposed, naming ids PD confirms.
func TestRealRunnerStoresProposal(t *testing.T) {
	e := newEnv(t)
	tk := e.waitViolation(invariant.NameLeaderImbalance, invariant.SubjectCluster, 30*time.Second)
	db, err := store.Open(e.ctx, filepath.Join(t.TempDir(), "operator.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	now := time.Now().UTC()
	obs := ticket.Observation{Invariant: tk.Invariant, Subject: tk.Subject, Severity: tk.Severity, Summary: tk.Summary, Evidence: tk.Evidence}
	opened, _, err := db.Observe(e.ctx, obs, now)
	if err != nil {
		t.Fatal(err)
	}
	r := &diagnose.Runner{Source: db, Gather: e.g, Backend: e.b, Catalog: e.cat,
		Sink: diagnosetest.StoreSink{S: db}, Logger: slog.New(slog.DiscardHandler)}
	st, err := r.RunOnce(e.ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Diagnosed != 1 || st.Proposals != 1 || st.Failed != 0 {
		t.Fatalf("stats %+v, want one diagnosis with one proposal", st)
	}
	got, err := db.Ticket(e.ctx, opened.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ticket.Diagnosed || got.DiagnosisBackend != rules.Name || !strings.Contains(got.DiagnosisMarkdown, "transfer_leader") {
		t.Errorf("ticket %s by %q, markdown:\n%s", got.Status, got.DiagnosisBackend, got.DiagnosisMarkdown)
	}
	props, err := db.Proposals(e.ctx, store.ProposalFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(props) != 1 || props[0].Status != action.Proposed || props[0].ActionType != tikv.ActionTransferLeader ||
		props[0].TicketID != opened.ID || props[0].ProposedBy != rules.Name {
		t.Fatalf("proposals %+v", props)
	}
	var p map[string]any
	if err := json.Unmarshal(props[0].Params, &p); err != nil {
		t.Fatal(err)
	}
	reg := e.region(id(p, "region_id"))
	if peer, ok := reg.PeerOn(id(p, "to_store_id")); !ok || !peer.IsVoter() || reg.Leader.StoreID == id(p, "to_store_id") {
		t.Errorf("stored proposal %s does not match region %d in PD (leader %d, peers %+v)", props[0].Params, reg.ID, reg.Leader.StoreID, reg.Peers)
	}
}

// TestRealHotWriteRegion: a region with a sustained write flow, led by
// the loaded store -> hot_write_store on that store -> split_region of
// that region; executing the split makes two regions of its range.
func TestRealHotWriteRegion(t *testing.T) {
	e := newEnv(t)
	skewed := e.tc.Sim.StoreIDs()[0]
	var hot uint64
	for _, rid := range e.tc.Sim.RegionIDs() {
		if r := e.region(rid); r.Leader.StoreID == skewed && r.ApproximateSize > 10 {
			hot = rid
			break
		}
	}
	if hot == 0 {
		t.Fatal("no region led by the loaded store")
	}
	if err := e.tc.Sim.SetWriteFlow(hot, 32<<20, 32<<10); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.tc.Sim.SetWriteFlow(hot, 0, 0) })
	tk := e.waitViolation(invariant.NameHotWriteStore, invariant.StoreSubject(skewed), 60*time.Second)
	_, d := e.diagnose(tk)
	p := proposed(t, d, tikv.ActionSplitRegion)
	if id(p, "region_id") != hot || p["policy"] != "approximate" {
		t.Fatalf("proposal %v, want split_region of hot region %d with policy approximate", p, hot)
	}
	before := e.region(hot)
	e.execute(d)
	parts, err := e.pd.ScanRegions(e.ctx, before.StartKey, before.EndKey, 16)
	if err != nil || len(parts) != 2 {
		t.Errorf("after the split, the range of region %d holds %d regions (%v)", hot, len(parts), err)
	}
}

// TestRealLeftoverEvictLeader: a store under evict-leader-scheduler with
// regions and no leaders -> remove_evict_leader of that store; a store
// without leaders but without the scheduler -> no action; executing the
// proposal removes the store from PD's evict-leader list.
func TestRealLeftoverEvictLeader(t *testing.T) {
	e := newEnv(t)
	ids := e.tc.Sim.StoreIDs()
	victim := ids[1]
	if err := e.pd.AddScheduler(e.ctx, map[string]any{"name": pd.EvictLeaderScheduler, "store_id": victim}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.pd.RemoveScheduler(context.Background(), fmt.Sprintf("%s-%d", pd.EvictLeaderScheduler, victim))
	})
	tk := e.waitViolation(invariant.NameStoreNoLeaders, invariant.StoreSubject(victim), 30*time.Second)
	_, d := e.diagnose(tk)
	p := proposed(t, d, tikv.ActionRemoveEvictLeader)
	if id(p, "store_id") != victim {
		t.Fatalf("proposal %v, want store %d", p, victim)
	}
	if s := e.store(victim); s.Status.RegionCount == 0 || s.Status.LeaderCount != 0 {
		t.Errorf("store %d has %d regions and %d leaders", victim, s.Status.RegionCount, s.Status.LeaderCount)
	}

	// A leaderless store that no scheduler holds (earlier tests moved a
	// leader or two, so look it up): page.
	var bare uint64
	for _, sid := range ids[1:] {
		if s := e.store(sid); sid != victim && s.Status.LeaderCount == 0 && s.Status.RegionCount > 0 {
			bare = sid
			break
		}
	}
	if bare == 0 {
		t.Fatal("no leaderless store without a scheduler")
	}
	other := e.waitViolation(invariant.NameStoreNoLeaders, invariant.StoreSubject(bare), 30*time.Second)
	_, od := e.diagnose(other)
	if od.ProposedAction != nil || !strings.HasPrefix(od.NoActionReason, rules.NoActionPrefix) ||
		!strings.Contains(od.RootCause, "balance-leader-scheduler is absent") {
		t.Errorf("store %d without scheduler: proposal %+v, reason %q, root cause %q", bare, od.ProposedAction, od.NoActionReason, od.RootCause)
	}

	e.execute(d)
	list, err := e.pd.EvictLeaderStores(e.ctx)
	if err != nil || slices.Contains(list, victim) {
		t.Errorf("evict-leader stores after execution: %v, %v", list, err)
	}
}

// TestRealSlowStore: one store with slow_score 85 that still leads
// regions, below the 100 at which PD's evict-slow-store scheduler acts ->
// evict_leader of that store.
func TestRealSlowStore(t *testing.T) {
	e := newEnv(t)
	slow := e.tc.Sim.StoreIDs()[0] // the loaded store: it leads most regions
	if err := e.tc.Sim.SetSlowScore(slow, 85); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.tc.Sim.SetSlowScore(slow, 1) })
	tk := e.waitViolation(invariant.NameStoreSlow, invariant.StoreSubject(slow), 30*time.Second)
	_, d := e.diagnose(tk)
	if p := proposed(t, d, tikv.ActionEvictLeader); id(p, "store_id") != slow {
		t.Fatalf("proposal %v, want evict_leader of store %d", p, slow)
	}
	if s := e.store(slow); s.Status.SlowScore != 85 || s.Status.LeaderCount == 0 {
		t.Errorf("store %d: slow_score %d, %d leaders", slow, s.Status.SlowScore, s.Status.LeaderCount)
	}
}

// TestRealOversizedRegion: a region reporting 2 GiB and 20M keys -> PD's
// oversized-region check lists it -> split_region of it, soon.
func TestRealOversizedRegion(t *testing.T) {
	e := newEnv(t)
	big := e.tc.Sim.RegionIDs()[2]
	before := e.region(big)
	if err := e.tc.Sim.SetRegionSize(big, 2<<30, 20_000_000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.tc.Sim.SetRegionSize(big, uint64(before.ApproximateSize)<<20, uint64(before.ApproximateKeys))
	})
	tk := e.waitViolation(invariant.NameRegionOversized, invariant.RegionSubject(big), 30*time.Second)
	_, d := e.diagnose(tk)
	p := proposed(t, d, tikv.ActionSplitRegion)
	if id(p, "region_id") != big || p["policy"] != "approximate" || d.ProposedAction.Urgency != action.Soon {
		t.Fatalf("proposal %v (%s), want split_region of region %d, policy approximate, soon", p, d.ProposedAction.Urgency, big)
	}
	if r := e.region(big); r.ApproximateSize < 2048 {
		t.Errorf("region %d is %d MiB in PD", big, r.ApproximateSize)
	}
}

// TestRealOrphanLearner: a learner added to a region that already has its
// three voters, with PD's rule checker paused so that it stays (cases.md
// 09) -> region_extra_peer -> remove_peer of that learner; executing it
// leaves the three voters.
func TestRealOrphanLearner(t *testing.T) {
	e := newEnv(t)
	if err := e.pd.PauseChecker(e.ctx, "rule", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.pd.PauseChecker(context.Background(), "rule", 0) })
	var r *pd.Region
	var outsider uint64
	for _, rid := range e.tc.Sim.RegionIDs() {
		cand := e.region(rid)
		for _, sid := range e.tc.Sim.StoreIDs() {
			if _, on := cand.PeerOn(sid); !on && len(cand.Peers) == 3 {
				r, outsider = cand, sid
			}
		}
		if r != nil {
			break
		}
	}
	if r == nil {
		t.Fatal("no region without a peer on some store")
	}
	if err := e.pd.CreateOperator(e.ctx, map[string]any{"name": "add-learner", "region_id": r.ID, "store_id": outsider}); err != nil {
		t.Fatal(err)
	}
	if err := e.tc.WaitFor(e.ctx, func() (bool, error) {
		p, ok := e.region(r.ID).PeerOn(outsider)
		return ok && !p.IsVoter(), nil
	}); err != nil {
		t.Fatalf("learner never added: %v", err)
	}
	tk := e.waitViolation(invariant.NameRegionExtraPeer, invariant.SubjectCluster, 30*time.Second)
	_, d := e.diagnose(tk)
	p := proposed(t, d, tikv.ActionRemovePeer)
	if id(p, "region_id") != r.ID || id(p, "store_id") != outsider {
		t.Fatalf("proposal %v, want remove_peer of region %d's learner on store %d", p, r.ID, outsider)
	}
	e.execute(d)
	after := e.region(r.ID)
	voters := 0
	for _, peer := range after.Peers {
		if peer.IsVoter() {
			voters++
		}
	}
	if _, on := after.PeerOn(outsider); on || voters != 3 {
		t.Errorf("region %d after removal: peers %+v", r.ID, after.Peers)
	}
}

// TestRealOfflineStoreTooFewUp: four stores, store 4 drained (Offline),
// then store 3 stopped until Down: the drain cannot finish (2 Up stores
// for max-replicas 3) -> cancel_drain of store 4 for both
// store_offline_stuck and up_stores_below_max_replicas; the Down store
// itself gets no action. Executing cancel_drain brings store 4 back Up.
func TestRealOfflineStoreTooFewUp(t *testing.T) {
	e := newEnv(t)
	ids := e.tc.Sim.StoreIDs()
	drained, stopped := ids[3], ids[2]
	// Keep PD from moving replicas, so the drain stays where it is.
	for _, name := range []string{"rule", "replica"} {
		if err := e.pd.PauseChecker(e.ctx, name, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.tc.Sim.StartStore(stopped)
		if s, err := e.pd.Store(ctx, drained); err == nil && s.Store.StateName == pd.StateOffline {
			_ = e.pd.SetStoreState(ctx, drained, pd.StateUp)
		}
		for _, name := range []string{"rule", "replica"} {
			_ = e.pd.PauseChecker(ctx, name, 0)
		}
	})
	if err := e.pd.DeleteStore(e.ctx, drained); err != nil {
		t.Fatal(err)
	}
	if err := e.tc.Sim.StopStore(stopped); err != nil {
		t.Fatal(err)
	}
	if err := e.tc.WaitFor(e.ctx, func() (bool, error) {
		s, err := e.pd.Store(e.ctx, stopped)
		return err == nil && s.Store.StateName == pd.StateDown, nil
	}); err != nil {
		t.Fatalf("store %d never Down: %v", stopped, err)
	}

	for _, name := range []string{invariant.NameStoreOfflineStuck, invariant.NameUpStoresBelowReplicas} {
		subject := invariant.SubjectCluster
		if name == invariant.NameStoreOfflineStuck {
			subject = invariant.StoreSubject(drained)
		}
		tk := e.waitViolation(name, subject, 30*time.Second)
		_, d := e.diagnose(tk)
		p := proposed(t, d, tikv.ActionCancelDrain)
		if id(p, "store_id") != drained {
			t.Errorf("%s: proposal %v, want cancel_drain of store %d", name, p, drained)
		}
		if !strings.Contains(d.ProposedAction.Rationale, "add a TiKV store") {
			t.Errorf("%s: rationale %q does not mention adding a TiKV store", name, d.ProposedAction.Rationale)
		}
		if s, _ := json.Marshal(d); strings.Contains(string(s), "force=true\"") {
			t.Errorf("%s proposes a forced removal: %s", name, s)
		}
	}

	down := e.waitViolation(invariant.NameStoreDown, invariant.StoreSubject(stopped), 30*time.Second)
	_, dd := e.diagnose(down)
	if dd.ProposedAction != nil || dd.RejectedAction != nil || !strings.HasPrefix(dd.NoActionReason, rules.NoActionPrefix) {
		t.Errorf("store_down: proposal %+v, reason %q", dd.ProposedAction, dd.NoActionReason)
	}

	// Execute the cancel_drain proposal: PD shows store 4 Up again.
	tk := e.waitViolation(invariant.NameStoreOfflineStuck, invariant.StoreSubject(drained), 30*time.Second)
	_, d := e.diagnose(tk)
	proposed(t, d, tikv.ActionCancelDrain)
	e.execute(d)
	if s := e.store(drained); s.Store.StateName != pd.StateUp || s.Store.PhysicallyDestroyed {
		t.Errorf("store %d after cancel_drain: %s (physically destroyed %v)", drained, s.Store.StateName, s.Store.PhysicallyDestroyed)
	}
}
