package monitor

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/ticket"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func runOnce(t *testing.T, m *Monitor, now time.Time) CycleResult {
	t.Helper()
	res, err := m.RunOnce(context.Background(), now)
	if err != nil {
		t.Fatalf("RunOnce at %s: %v", now, err)
	}
	return res
}

func alertKeys(as []Alert) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.Key())
	}
	return out
}

// TestPendingToFiring passes time step by step: a violation stays pending
// for its invariant's For, then fires and opens one ticket, which is
// updated while the violation lasts and resolved after the quiet period.
func TestPendingToFiring(t *testing.T) {
	inv := &fakeInv{name: "store_slow", pending: 30 * time.Second}
	sink := &memSink{}
	col := &fakeCollect{}
	reg := prometheus.NewPedanticRegistry()
	m := New(Options{Invariants: []invariant.Invariant{inv}, Collect: col.collect, Sink: sink, Quiet: 20 * time.Second, Registerer: reg})

	inv.set("store:1")
	steps := []struct {
		at              int
		subjects        []string
		pending, firing []string
		opened          int
		resolved        int
		occurrences     int64 // of the open ticket, 0 = none open
	}{
		{0, []string{"store:1"}, []string{"store_slow/store:1"}, nil, 0, 0, 0},
		{10, []string{"store:1"}, []string{"store_slow/store:1"}, nil, 0, 0, 0},
		{29, []string{"store:1"}, []string{"store_slow/store:1"}, nil, 0, 0, 0},
		{30, []string{"store:1"}, nil, []string{"store_slow/store:1"}, 1, 0, 1},
		{40, []string{"store:1"}, nil, []string{"store_slow/store:1"}, 0, 0, 2},
		{50, nil, nil, nil, 0, 0, 2}, // cleared, quiet period starts
		// Back within the quiet period: the open ticket's problem is back,
		// it fires at once (no new pending) and the quiet period restarts.
		{60, []string{"store:1"}, nil, []string{"store_slow/store:1"}, 0, 0, 3},
		{70, nil, nil, nil, 0, 0, 3},
		{89, nil, nil, nil, 0, 0, 3},
		{90, nil, nil, nil, 0, 1, 0}, // 20s quiet since 70 -> resolved
		{100, []string{"store:1"}, []string{"store_slow/store:1"}, nil, 0, 0, 0},
		{130, []string{"store:1"}, nil, []string{"store_slow/store:1"}, 1, 0, 1}, // a new ticket linked to the old
	}
	for _, st := range steps {
		inv.set(st.subjects...)
		res := runOnce(t, m, at(st.at))
		if got := alertKeys(res.Pending); !slices.Equal(got, nonNilStrings(st.pending)) {
			t.Fatalf("t+%ds pending %v want %v", st.at, got, st.pending)
		}
		if got := alertKeys(res.Firing); !slices.Equal(got, nonNilStrings(st.firing)) {
			t.Fatalf("t+%ds firing %v want %v", st.at, got, st.firing)
		}
		if len(res.Opened) != st.opened || len(res.Resolved) != st.resolved {
			t.Fatalf("t+%ds opened %d resolved %d, want %d %d", st.at, len(res.Opened), len(res.Resolved), st.opened, st.resolved)
		}
		open := sink.open()
		tk, ok := open["store_slow/store:1"]
		if st.occurrences == 0 && ok {
			t.Fatalf("t+%ds: ticket still open: %+v", st.at, tk)
		}
		if st.occurrences > 0 && (!ok || tk.Occurrences != st.occurrences) {
			t.Fatalf("t+%ds: open ticket %+v, want occurrences %d", st.at, tk, st.occurrences)
		}
		wantPending, wantFiring := float64(len(st.pending)), float64(len(st.firing))
		if g := testutil.ToFloat64(m.metrics.violations.WithLabelValues("store_slow", "pending")); g != wantPending {
			t.Errorf("t+%ds pending gauge %v", st.at, g)
		}
		if g := testutil.ToFloat64(m.metrics.violations.WithLabelValues("store_slow", "firing")); g != wantFiring {
			t.Errorf("t+%ds firing gauge %v", st.at, g)
		}
	}
	all := sink.all()
	if len(all) != 2 || all[0].Status != ticket.Resolved || all[1].PreviousID == nil || *all[1].PreviousID != all[0].ID {
		t.Fatalf("tickets %+v", all)
	}
	if first := all[0]; !first.FirstSeen.Equal(at(30)) || !first.LastSeen.Equal(at(60)) {
		t.Errorf("first ticket seen %s..%s", first.FirstSeen, first.LastSeen)
	}
	if n := testutil.ToFloat64(m.metrics.cycles); n != float64(len(steps)) {
		t.Errorf("cycles %v", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TestFailingInvariantsDoNotStopOthers: an invariant that errors and one
// that panics record their health; the others are evaluated, and the
// tickets of the failing ones are neither resolved nor touched.
func TestFailingInvariantsDoNotStopOthers(t *testing.T) {
	flaky := &fakeInv{name: "flaky"}
	panicky := &fakeInv{name: "panicky"}
	good := &fakeInv{name: "good"}
	sink := &memSink{}
	col := &fakeCollect{}
	m := New(Options{Invariants: []invariant.Invariant{flaky, panicky, good}, Collect: col.collect, Sink: sink})

	flaky.set("store:1")
	res := runOnce(t, m, at(0))
	if len(res.Opened) != 1 || res.Opened[0].Key != "flaky/store:1" {
		t.Fatalf("opened %+v", res.Opened)
	}

	flaky.fail(&invariant.SourceError{Invariant: "flaky", Source: "stores", Err: errBoom})
	panicky.panicMsg = "index out of range"
	good.set("store:2")
	res = runOnce(t, m, at(10))
	if len(res.Opened) != 1 || res.Opened[0].Key != "good/store:2" {
		t.Fatalf("good did not run: %+v", res.Opened)
	}
	if !slices.Equal(res.Evaluated, []string{invariant.NamePDUnreachable, "good"}) {
		t.Errorf("evaluated %v", res.Evaluated)
	}
	if got := sink.sweeps[len(sink.sweeps)-1]; slices.Contains(got, "flaky") || slices.Contains(got, "panicky") {
		t.Errorf("sweep got failing invariants: %v", got)
	}
	st := map[string]InvariantStatus{}
	for _, s := range res.Invariants {
		st[s.Name] = s
	}
	if st["flaky"].Health != HealthBad || !strings.Contains(st["flaky"].Err, "boom") {
		t.Errorf("flaky status %+v", st["flaky"])
	}
	if st["panicky"].Health != HealthBad || !strings.Contains(st["panicky"].Err, "panicked: index out of range") {
		t.Errorf("panicky status %+v", st["panicky"])
	}
	if st["good"].Health != HealthGood || st["good"].Violations != 1 {
		t.Errorf("good status %+v", st["good"])
	}
	// flaky's ticket stays open and is not counted as seen again.
	if tk := sink.open()["flaky/store:1"]; tk.Occurrences != 1 || !tk.LastSeen.Equal(at(0)) {
		t.Errorf("flaky ticket touched while failing: %+v", tk)
	}
	if got := testutil.ToFloat64(m.metrics.invariantErrors.WithLabelValues("flaky")); got != 1 {
		t.Errorf("flaky errors %v", got)
	}
	if got := testutil.ToFloat64(m.metrics.invariantErrors.WithLabelValues("panicky")); got != 1 {
		t.Errorf("panicky errors %v", got)
	}
	if got := testutil.ToFloat64(m.metrics.invariantErrors.WithLabelValues("good")); got != 0 {
		t.Errorf("good errors %v", got)
	}
	// Once flaky evaluates again and holds, its ticket resolves (quiet 0).
	flaky.set()
	res = runOnce(t, m, at(20))
	if len(res.Resolved) != 1 || res.Resolved[0].Key != "flaky/store:1" {
		t.Fatalf("resolved %+v", res.Resolved)
	}
}

// TestPDUnreachable: a failing Collect raises one pd_unreachable ticket,
// evaluates no invariant and resolves nothing; the first successful
// collect resolves it.
func TestPDUnreachable(t *testing.T) {
	inv := &fakeInv{name: "store_down"}
	sink := &memSink{}
	col := &fakeCollect{}
	m := New(Options{Invariants: []invariant.Invariant{inv}, Collect: col.collect, Sink: sink, UnreachableFor: 15 * time.Second})

	inv.set("store:4")
	runOnce(t, m, at(0))
	if _, ok := sink.open()["store_down/store:4"]; !ok {
		t.Fatal("store_down not opened")
	}
	col.setErr(errors.New("dial tcp 127.0.0.1:2379: connection refused"))
	calls := inv.callCount()
	for _, s := range []int{10, 20, 25, 40} {
		res := runOnce(t, m, at(s))
		if res.CollectErr == nil || len(res.Evaluated) != 0 {
			t.Fatalf("t+%d: collect err %v evaluated %v", s, res.CollectErr, res.Evaluated)
		}
	}
	if inv.callCount() != calls {
		t.Errorf("invariants evaluated while PD unreachable")
	}
	open := sink.open()
	pdt, ok := open["pd_unreachable/cluster"]
	if !ok || pdt.Severity != ticket.Critical || !pdt.FirstSeen.Equal(at(25)) || pdt.Occurrences != 2 {
		t.Fatalf("pd_unreachable ticket %+v (open %v)", pdt, open)
	}
	if !strings.Contains(pdt.Summary, "connection refused") || !strings.Contains(string(pdt.Evidence), "connection refused") {
		t.Errorf("summary %q evidence %s", pdt.Summary, pdt.Evidence)
	}
	if tk := open["store_down/store:4"]; tk.Occurrences != 1 {
		t.Errorf("store_down touched while PD unreachable: %+v", tk)
	}
	if len(sink.sweeps) != 1 {
		t.Errorf("sweeps while unreachable: %v", sink.sweeps)
	}
	if got := testutil.ToFloat64(m.metrics.collectErrors); got != 4 {
		t.Errorf("collect errors %v", got)
	}

	col.setErr(nil)
	inv.set()
	res := runOnce(t, m, at(50))
	if len(res.Resolved) != 2 {
		t.Fatalf("resolved %+v", res.Resolved)
	}
	if len(sink.open()) != 0 {
		t.Errorf("open %v", sink.open())
	}
}

// TestCollectPanicAndNil: a panicking or nil-returning Collect is a
// pd_unreachable observation, never a crash.
func TestCollectPanicAndNil(t *testing.T) {
	sink := &memSink{}
	m := New(Options{Collect: func(context.Context) (*tikvSnapshot, error) { panic("nil map") }, Sink: sink})
	res := runOnce(t, m, at(0))
	if res.CollectErr == nil || len(res.Opened) != 1 || res.Opened[0].Invariant != invariant.NamePDUnreachable {
		t.Fatalf("%+v", res)
	}
	m = New(Options{Collect: func(context.Context) (*tikvSnapshot, error) { return nil, nil }, Sink: sink})
	if res := runOnce(t, m, at(1)); res.CollectErr == nil {
		t.Fatal("nil snapshot accepted")
	}
}

func TestSinkErrorsAreReturned(t *testing.T) {
	inv := &fakeInv{name: "a"}
	inv.set("cluster")
	sink := &memSink{failNext: errBoom}
	m := New(Options{Invariants: []invariant.Invariant{inv}, Collect: (&fakeCollect{}).collect, Sink: sink})
	_, err := m.RunOnce(context.Background(), at(0))
	if !errors.Is(err, errBoom) {
		t.Fatalf("err %v", err)
	}
	if got := testutil.ToFloat64(m.metrics.sinkErrors); got != 1 {
		t.Errorf("sink errors %v", got)
	}
	if res := runOnce(t, m, at(10)); len(res.Opened) != 1 {
		t.Errorf("next cycle %+v", res)
	}
}

func TestInvalidOptions(t *testing.T) {
	a := &fakeInv{name: "x"}
	m := New(Options{Invariants: []invariant.Invariant{a, a}})
	if _, err := m.RunOnce(context.Background(), t0); !errors.Is(err, ErrInvalidOptions) ||
		!strings.Contains(err.Error(), "Collect") || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("RunOnce: %v", err)
	}
	if err := m.Run(context.Background()); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Run: %v", err)
	}
	m = New(Options{Invariants: []invariant.Invariant{&fakeInv{name: invariant.NamePDUnreachable}}, Collect: (&fakeCollect{}).collect, Sink: &memSink{}})
	if _, err := m.RunOnce(context.Background(), t0); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("reserved name: %v", err)
	}
}

// TestDedupAcrossRestarts: a new Monitor (fresh pending state) over the same
// Sink keeps updating the open ticket instead of opening another, and does
// not resolve it while the violation is pending again.
func TestDedupAcrossRestarts(t *testing.T) {
	sink := &memSink{}
	col := &fakeCollect{}
	for run := range 3 {
		inv := &fakeInv{name: "store_down", pending: 20 * time.Second}
		inv.set("store:4")
		m := New(Options{Invariants: []invariant.Invariant{inv}, Collect: col.collect, Sink: sink})
		base := run * 100
		for _, s := range []int{0, 10, 20, 30} {
			runOnce(t, m, at(base+s))
		}
	}
	all := sink.all()
	if len(all) != 1 || all[0].Status != ticket.Open || all[0].Occurrences != 6 {
		t.Fatalf("tickets %+v", all)
	}
}

func TestMetricsPDObserver(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(Options{Collect: (&fakeCollect{}).collect, Sink: &memSink{}, Registerer: reg})
	obs := m.PDObserver()
	obs("GET", "/pd/api/v1/stores", 200, 3*time.Millisecond, 1500)
	obs("GET", "/pd/api/v1/stores", 200, 5*time.Millisecond, 500)
	obs("GET", "/pd/api/v1/regions/check/{name}", 0, time.Second, 0)
	if got := testutil.ToFloat64(m.metrics.pdBytes.WithLabelValues("GET", "/pd/api/v1/stores")); got != 2000 {
		t.Errorf("bytes %v", got)
	}
	if n := testutil.CollectAndCount(m.metrics.pdDuration, MetricPDDuration); n != 2 {
		t.Errorf("latency series %d", n)
	}
	want := `
# HELP operator_pd_response_bytes_total Bytes of PD HTTP response bodies read, by method and route template.
# TYPE operator_pd_response_bytes_total counter
operator_pd_response_bytes_total{method="GET",path="/pd/api/v1/regions/check/{name}"} 0
operator_pd_response_bytes_total{method="GET",path="/pd/api/v1/stores"} 2000
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), MetricPDBytes); err != nil {
		t.Error(err)
	}
	// A second monitor on the same registry shares the collectors.
	m2 := New(Options{Collect: (&fakeCollect{}).collect, Sink: &memSink{}, Registerer: reg})
	m2.ObservePDRequest("GET", "/pd/api/v1/stores", 200, time.Millisecond, 1)
	if got := testutil.ToFloat64(m.metrics.pdBytes.WithLabelValues("GET", "/pd/api/v1/stores")); got != 2001 {
		t.Errorf("shared bytes %v", got)
	}
	runOnce(t, m, at(0))
	if n := testutil.CollectAndCount(m.metrics.cycleDuration, MetricCycleDuration); n != 1 {
		t.Errorf("cycle histogram %d", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestRunLoop runs the real loop on synctest's fake clock: cycles every
// Interval, missed iterations counted when a cycle overruns, clean stop on
// cancel with no goroutine left (synctest fails the test otherwise).
func TestRunLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		col := &fakeCollect{}
		inv := &fakeInv{name: "a"}
		inv.set("cluster")
		sink := &memSink{}
		m := New(Options{Interval: 10 * time.Second, CollectTimeout: time.Minute, Invariants: []invariant.Invariant{inv},
			Collect: col.collect, Sink: sink})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()

		synctest.Wait()
		if col.callCount() != 1 {
			t.Fatalf("first cycle not immediate: %d", col.callCount())
		}
		time.Sleep(35 * time.Second)
		synctest.Wait()
		if col.callCount() != 4 {
			t.Fatalf("after 35s: %d cycles", col.callCount())
		}
		if got := testutil.ToFloat64(m.metrics.missed); got != 0 {
			t.Errorf("missed %v", got)
		}
		// Collect now takes 25s (within CollectTimeout): with a 10s
		// interval, ticks are dropped.
		col.mu.Lock()
		col.delay = 25 * time.Second
		col.mu.Unlock()
		time.Sleep(100 * time.Second)
		synctest.Wait()
		if got := testutil.ToFloat64(m.metrics.missed); got < 2 {
			t.Errorf("missed iterations %v", got)
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		default:
			t.Fatal("Run did not return after cancel")
		}
		if len(sink.open()) != 1 {
			t.Errorf("tickets %v", sink.open())
		}
	})
}

// TestRunStopsWithoutLeaks uses the real clock: Run returns after cancel
// and leaves no goroutine behind.
func TestRunStopsWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	col := &fakeCollect{}
	m := New(Options{Interval: 5 * time.Millisecond, Collect: col.collect, Sink: &memSink{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for col.callCount() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("loop did not cycle")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d > %d:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCanceledCycleRaisesNothing: cancelling during Collect is a shutdown,
// not PD being unreachable.
func TestCanceledCycleRaisesNothing(t *testing.T) {
	sink := &memSink{}
	ctx, cancel := context.WithCancel(context.Background())
	m := New(Options{Collect: func(ctx context.Context) (*tikvSnapshot, error) { cancel(); <-ctx.Done(); return nil, ctx.Err() }, Sink: sink})
	if _, err := m.RunOnce(ctx, t0); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if len(sink.all()) != 0 {
		t.Errorf("tickets %+v", sink.all())
	}
}
