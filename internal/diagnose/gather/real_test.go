package gather_test

// Tests on the real parts: a real pd-server with three simulated TiKV
// stores, every leader on the first one and PD's balance-leader scheduler
// off (shared by this file's tests, in order; the last one stops PD), and
// an httptest server speaking the Prometheus HTTP API.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/gather"
	"github.com/tikvops/operator/internal/diagnose/rules"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

var shared struct {
	once sync.Once
	c    *testcluster.Cluster
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		if err := shared.c.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close test cluster:", err)
		}
	}
	os.Exit(code)
}

func cluster(t *testing.T) (*testcluster.Cluster, *pd.Client) {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.c, shared.err = testcluster.New(ctx, testcluster.Options{
			Stores: 3, Regions: 8, SkewLeaders: true, DisableSchedulers: []string{"balance-leader", "hot-region"},
		})
	})
	if shared.err != nil {
		t.Fatalf("start test cluster: %v", shared.err)
	}
	c, err := pd.New([]string{shared.c.PDURL}, pd.WithTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return shared.c, c
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// leaderTicket is the leader_imbalance ticket the monitor opens on the
// skewed cluster.
func leaderTicket(t *testing.T, ctx context.Context, c *pd.Client) ticket.Ticket {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, err := tikv.Collect(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range invariant.Default(invariant.DefaultConfig()) {
			if inv.Name() != invariant.NameLeaderImbalance {
				continue
			}
			vs, err := inv.Eval(ctx, snap, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) == 1 {
				obs, err := vs[0].Observation(invariant.NameLeaderImbalance)
				if err != nil {
					t.Fatal(err)
				}
				return ticket.Ticket{ID: 1, Key: obs.Key(), Invariant: obs.Invariant, Subject: obs.Subject, Severity: obs.Severity,
					Status: ticket.Open, Summary: obs.Summary, Evidence: obs.Evidence, FirstEvidence: obs.Evidence}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader imbalance on the skewed cluster")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestRealLeaderImbalanceContext: the context of a leader_imbalance ticket
// holds every store, PD's configuration and schedulers as PD reports them,
// the catalog, and candidate regions led by the loaded store with a voter
// on the least loaded one, bounded by MaxStoreRegions.
func TestRealLeaderImbalanceContext(t *testing.T) {
	tc, c := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tk := leaderTicket(t, ctx, c)
	cat := tikv.NewCatalog(c)
	g := gather.New(c, gather.Options{Catalog: cat, MaxStoreRegions: 3, Logger: quiet()})
	got, err := g.Gather(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	stores, err := c.Stores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Stores) != len(stores) || len(got.Stores) != 3 {
		t.Errorf("context has %d stores, PD lists %d", len(got.Stores), len(stores))
	}
	if got.Ticket.Key != tk.Key || got.Snapshot == nil || got.Time.IsZero() || got.SourceErrors != nil {
		t.Errorf("ticket %q, snapshot %v, time %v, source errors %v", got.Ticket.Key, got.Snapshot != nil, got.Time, got.SourceErrors)
	}
	if got.Replication.MaxReplicas != 3 || got.Schedule.LeaderScheduleLimit == 0 {
		t.Errorf("config: replication %+v, leader-schedule-limit %d", got.Replication, got.Schedule.LeaderScheduleLimit)
	}
	scheds, _ := c.Schedulers(ctx)
	slices.Sort(scheds)
	if !slices.Equal(got.Schedulers, scheds) || slices.Contains(got.Schedulers, "balance-leader-scheduler") {
		t.Errorf("schedulers %v, PD lists %v", got.Schedulers, scheds)
	}
	if len(got.Actions) != len(cat.Specs()) || got.Operators == nil || got.EvictLeaderStores == nil {
		t.Errorf("%d actions, operators %v, evict %v", len(got.Actions), got.Operators, got.EvictLeaderStores)
	}
	skewed := tc.Sim.StoreIDs()[0]
	var ev struct {
		Min uint64 `json:"min_store_id"`
	}
	if err := json.Unmarshal(tk.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if len(got.Regions) != 3 {
		t.Fatalf("%d regions, want MaxStoreRegions 3", len(got.Regions))
	}
	for i, r := range got.Regions {
		now, err := c.Region(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := now.PeerOn(ev.Min)
		if now.Leader.StoreID != skewed || !ok || !p.IsVoter() {
			t.Errorf("region %d: leader on %d, peer on store %d %+v; want led by %d with a voter on %d", r.ID, now.Leader.StoreID, ev.Min, p, skewed, ev.Min)
		}
		if i > 0 && got.Regions[i-1].ID >= r.ID {
			t.Errorf("regions not in id order: %d before %d", got.Regions[i-1].ID, r.ID)
		}
	}
}

// TestRealRegionIDsFromTicket: the subject's region and the evidence's
// region ids are fetched by id; an id PD does not know is skipped.
func TestRealRegionIDsFromTicket(t *testing.T) {
	tc, c := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := tc.Sim.RegionIDs()
	ev, _ := json.Marshal(map[string]any{"sample_region_ids": []uint64{ids[1], 999999, ids[2]}})
	tk := ticket.Ticket{ID: 2, Invariant: invariant.NameRegionPendingPeer, Subject: invariant.RegionSubject(ids[0]), Evidence: ev}
	got, err := gather.New(c, gather.Options{Logger: quiet()}).Gather(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	var have []uint64
	for _, r := range got.Regions {
		have = append(have, r.ID)
	}
	if want := []uint64{ids[0], ids[1], ids[2]}; !slices.Equal(have, want) {
		t.Errorf("regions %v, want %v", have, want)
	}
	if got.Actions != nil {
		t.Errorf("actions without a catalog: %v", got.Actions)
	}
}

// promServer speaks the Prometheus HTTP API: instant queries of
// tikv_raftstore_region_count answer a vector, anything else an
// execution error (422).
func promServer(t *testing.T, skewed uint64) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q := r.Form.Get("query")
		mu.Lock()
		queries = append(queries, q)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !strings.Contains(q, "tikv_raftstore_region_count") {
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprint(w, `{"status":"error","errorType":"execution","error":"no such metric here"}`)
			return
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[`+
			`{"metric":{"instance":"127.0.0.1:20181"},"value":[1700000000,"0"]},`+
			`{"metric":{"instance":"127.0.0.1:20180","store":"%d"},"value":[1700000000,"12"]}]}}`, skewed)
	}))
	t.Cleanup(srv.Close)
	return srv, &queries
}

// TestRealPrometheus: with a Prometheus configured, the invariant's
// queries run and their series land in Context.Prometheus, sorted; a
// failing query is noted there and in SourceErrors without failing Gather.
func TestRealPrometheus(t *testing.T) {
	tc, c := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, queries := promServer(t, tc.Sim.StoreIDs()[0])
	prom, err := tikv.NewProm(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	tk := leaderTicket(t, ctx, c)
	got, err := gather.New(c, gather.Options{Prom: prom, Logger: quiet()}).Gather(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("# %s\n{instance=\"127.0.0.1:20180\", store=\"%d\"} 12\n{instance=\"127.0.0.1:20181\"} 0\n",
		`sum(tikv_raftstore_region_count{type="leader"}) by (instance)`, tc.Sim.StoreIDs()[0])
	if !strings.Contains(got.Prometheus, want) {
		t.Errorf("prometheus text:\n%s\nwant it to contain:\n%s", got.Prometheus, want)
	}
	if !strings.Contains(got.Prometheus, "# error:") || !strings.Contains(got.SourceErrors["prometheus"], "no such metric here") {
		t.Errorf("failed queries not reported: %q, %v", got.Prometheus, got.SourceErrors)
	}
	wantQueries := append(append([]string(nil), gather.DefaultQueries[""]...), gather.DefaultQueries[invariant.NameLeaderImbalance]...)
	if !slices.Equal(*queries, wantQueries) {
		t.Errorf("queries %q, want %q", *queries, wantQueries)
	}
}

// TestRealPDDown (last: it stops PD): tickets about the cluster fail with
// diagnose.ErrUnavailable so the runner retries them; a pd_unreachable
// ticket still gets a context (and the rules backend pages).
func TestRealPDDown(t *testing.T) {
	tc, c := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tk := leaderTicket(t, ctx, c)
	if err := tc.StopPD(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tc.StartPD(context.Background()); err != nil {
			t.Errorf("restart PD: %v", err)
		}
	})
	g := gather.New(c, gather.Options{Logger: quiet()})
	_, err := g.Gather(ctx, tk)
	if !errors.Is(err, diagnose.ErrUnavailable) || !errors.Is(err, pd.ErrUnreachable) {
		t.Fatalf("gather with PD down: %v; want ErrUnavailable wrapping pd.ErrUnreachable", err)
	}
	unreachable := ticket.Ticket{ID: 3, Key: "pd_unreachable/cluster", Invariant: invariant.NamePDUnreachable, Subject: "cluster",
		Severity: ticket.Critical, Summary: "PD unreachable", Evidence: json.RawMessage(`{}`)}
	pc, err := g.Gather(ctx, unreachable)
	if err != nil {
		t.Fatalf("gather pd_unreachable: %v", err)
	}
	if pc.SourceErrors["stores"] == "" || len(pc.Stores) != 0 {
		t.Errorf("source errors %v, stores %d", pc.SourceErrors, len(pc.Stores))
	}
	d, err := rules.New(rules.Options{}).Diagnose(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	if d.ProposedAction != nil || !strings.HasPrefix(d.NoActionReason, rules.NoActionPrefix) ||
		!strings.Contains(strings.Join(d.Evidence, "\n"), "could not read stores") {
		t.Errorf("diagnosis of pd_unreachable with PD down: %+v", d)
	}
}
