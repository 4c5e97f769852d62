package rules_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/gather"
	"github.com/tikvops/operator/internal/diagnose/rules"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/monitor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikv"
)

// TestRealHotWriteCPUImbalance: a real pd-server with three simulated
// stores, each serving TiKV's tikv_thread_cpu_seconds_total at its
// status_address, scraped by a real Prometheus. Every store leads one hot
// region with the same write flow, so PD's hot write bytes and keys per
// store are even. With even CPU the monitor opens no ticket; once store 1
// burns 6 cores against 1, hot_write_cpu_imbalance opens for store 1 only,
// after its `for`, and the rules page a human.
func TestRealHotWriteCPUImbalance(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{
		Stores: 3, Regions: 6, StatusServers: true,
		DisableSchedulers: []string{"balance-leader", "balance-region", "hot-region"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ids := tc.Sim.StoreIDs()
	var targets []string
	for _, id := range ids {
		addr, err := tc.Sim.StatusAddress(id)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, addr)
		if err := tc.Sim.SetCPU(id, 1.0); err != nil {
			t.Fatal(err)
		}
	}
	// One hot region led by each store, same flow: PD's figures are even.
	hot := map[uint64]bool{}
	for _, r := range tc.Sim.Dump(true).Regions {
		if hot[r.LeaderStoreID] {
			continue
		}
		hot[r.LeaderStoreID] = true
		if err := tc.Sim.SetWriteFlow(r.ID, 4<<20, 4000); err != nil {
			t.Fatal(err)
		}
	}
	if len(hot) != len(ids) {
		t.Fatalf("leaders on %d of %d stores", len(hot), len(ids))
	}
	prom := testcluster.StartPrometheus(t, testcluster.PrometheusOptions{Targets: map[string][]string{"tikv": targets}})
	pdc, err := pd.New([]string{tc.PDURL}, pd.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tikv.NewProm(prom.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	collect := tikv.WithStoreCPU(func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, pdc) }, pc)

	// Prometheus' rate(...[1m]) of a series younger than a minute is
	// scaled down by the part of the minute it covers (its extrapolation
	// stops near the first sample), equally for every store: the ratio
	// between stores is right within seconds, the cores only after a
	// minute. So the test lowers min-cores instead of waiting a minute.
	cfg := invariant.DefaultConfig()
	cfg.CPUImbalanceMinCores = 0.1
	// Wait until every store's CPU reads above min-cores and PD lists a
	// hot write region led by every store.
	if err := testcluster.WaitFor(ctx, func() (bool, error) {
		s, err := collect(ctx)
		if err != nil {
			return false, err
		}
		for _, id := range ids {
			if s.StoreCPU[id] < 2*cfg.CPUImbalanceMinCores {
				return false, nil
			}
		}
		return len(s.HotWrite.AsLeader) == len(ids), nil
	}); err != nil {
		t.Fatalf("CPU and hot write per store: %v", err)
	}

	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "t.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inv := []invariant.Invariant{}
	for _, i := range invariant.Default(cfg) {
		if i.Name() == invariant.NameHotWriteCPUImbalance {
			inv = append(inv, i)
		}
	}
	forDur := invariant.For(inv[0])
	mon := monitor.New(monitor.Options{Invariants: inv, Collect: collect, Sink: st})
	now := time.Now()
	// cycle runs one monitor cycle at now; later moves the clock past the
	// invariant's `for` afterwards.
	cycle := func(later bool) monitor.CycleResult {
		t.Helper()
		res, err := mon.RunOnce(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range res.Invariants {
			if s.Health != monitor.HealthGood {
				t.Fatalf("%s: %s %s", s.Name, s.Health, s.Err)
			}
		}
		if later {
			now = now.Add(forDur + time.Second)
		}
		return res
	}
	for range 2 {
		if res := cycle(true); len(res.Pending)+len(res.Firing) != 0 {
			t.Fatalf("even CPU: alerts %+v (CPU %v)", append(res.Pending, res.Firing...), res.Snapshot.StoreCPU)
		}
	}

	// Store 1 burns 6 cores; Prometheus' 1m rate follows within seconds.
	hotStore := ids[0]
	if err := tc.Sim.SetCPU(hotStore, 6.0); err != nil {
		t.Fatal(err)
	}
	var pending monitor.CycleResult
	if err := testcluster.WaitFor(ctx, func() (bool, error) {
		pending = cycle(false)
		return len(pending.Pending) > 0, nil
	}); err != nil {
		t.Fatalf("no pending alert for store %d: %v", hotStore, err)
	}
	if len(pending.Opened) != 0 {
		t.Fatalf("opened before its for: %+v", pending.Opened)
	}
	now = now.Add(forDur + time.Second)
	res := cycle(false)
	var keys []string
	for _, tk := range res.Opened {
		keys = append(keys, tk.Key)
	}
	want := invariant.NameHotWriteCPUImbalance + "/" + invariant.StoreSubject(hotStore)
	if !slices.Equal(keys, []string{want}) {
		t.Fatalf("opened %v, want [%s] (CPU %v)", keys, want, res.Snapshot.StoreCPU)
	}
	tk := res.Opened[0]
	t.Logf("ticket: %s", tk.Summary)

	cat := tikv.NewCatalog(pdc)
	g := gather.New(pdc, gather.Options{Prom: pc, Catalog: cat, Logger: slog.New(slog.DiscardHandler)})
	c, err := g.Gather(ctx, tk)
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	d, err := rules.New(rules.Options{}).Diagnose(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := diagnose.Validate(ctx, d, cat); err != nil {
		t.Fatal(err)
	}
	if d.ProposedAction != nil || d.NoActionReason == "" {
		t.Fatalf("want a page, got %+v", d.ProposedAction)
	}
	if !strings.Contains(d.Summary, fmt.Sprintf("store %d's TiKV write-path CPU", hotStore)) {
		t.Errorf("summary %q", d.Summary)
	}
	t.Logf("diagnosis:\n%s", d.Markdown())
}
