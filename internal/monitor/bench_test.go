package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikv"
)

// BenchmarkCycle measures one monitor cycle (tikv.Collect over the real PD
// HTTP API, every default invariant, the SQLite ticket store) against a
// real pd-server with 5 simulated stores at 1,000 and 10,000 regions
// (3 replicas). Reported per cycle: time (ns/op), allocations (B/op,
// allocs/op: the whole process, so the in-process simulator's heartbeats
// add a little), PD response bytes (pd-bytes/op) and requests
// (pd-requests/op). The cycle never lists all regions, so bytes read stay
// flat as the cluster grows; they grow with the number of problems, which
// the stopped-store case shows (one store of five stopped: its peers are
// reported down, about 6,000 regions in /regions/check/down-peer and
// pending-peer).
//
//	go test -run '^$' -bench BenchmarkCycle -benchtime 100x ./internal/monitor/
func BenchmarkCycle(b *testing.B) {
	benchCycle(b, []benchCase{{1000, false, false, false}, {10000, false, false, false}, {10000, true, false, false},
		{10000, true, true, false}, {10000, true, true, true}})
}

// BenchmarkCycleBig is BenchmarkCycle at 100,000 regions, healthy and with
// one of 5 stores stopped (about 60,000 down-peer regions): the simulator
// needs a few minutes to start it on 2 cores. Also reported (every case):
// the process's resident set after the loop (rss-MB) and its peak
// (hwm-MB, /proc/self/status; Linux only), the heap the last snapshot's
// kept check lists hold (kept-MB: the operator's retained share; the
// rest of the RSS is mostly the in-process simulator's regions), and, in
// the log (-v), PD bytes per cycle by route. OPERATOR_BENCH_CASES selects
// cases by name.
//
//	go test -run '^$' -bench BenchmarkCycleBig -benchtime 10x -timeout 40m ./internal/monitor/
func BenchmarkCycleBig(b *testing.B) {
	benchCycle(b, []benchCase{{100000, false, false, false}, {100000, true, false, false}, {100000, true, true, false},
		{100000, true, true, true}})
}

// benchCase is one cluster: its regions, whether a store is stopped, and
// whether the cycle collects with tikv.Collector (heavy check lists reused
// while PD's pd_regions_status count is unchanged; "/collector") instead
// of tikv.Collect.
type benchCase struct {
	regions   int
	stopStore bool
	collector bool
	// noState runs the monitor without persisting its memory
	// ("/no-state": a StateStore whose load fails, so the monitor never
	// saves), to tell the cycle's own allocations from those of
	// marshalling invariant.History every cycle.
	noState bool
}

// failingState is the ticket store as a StateStore that cannot load, so
// the monitor never saves (benchCase.noState).
type failingState struct{ *store.Store }

func (failingState) LoadMonitorState(context.Context) (store.MonitorState, error) {
	return store.MonitorState{}, errors.New("benchmark: no state")
}

func (failingState) SaveMonitorState(context.Context, store.MonitorState, time.Time) error {
	return errors.New("benchmark: no state")
}

// procStatusMB returns a "VmRSS"/"VmHWM" line of /proc/self/status in MB,
// or 0.
func procStatusMB(key string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// keptBytes estimates the heap a snapshot's check lists hold (the
// regions tikv.Collect keeps, at most tikv.CheckKeepRegions per check,
// which a tikv.Collector retains between cycles): the operator's own
// share of the process's RSS, which also holds the simulator's regions.
func keptBytes(s *tikv.Snapshot) int {
	if s == nil {
		return 0
	}
	n := 0
	for _, list := range s.Checks {
		for i := range list {
			r := &list[i]
			n += int(unsafe.Sizeof(*r)) + len(r.StartKey) + len(r.EndKey) +
				cap(r.Peers)*int(unsafe.Sizeof(pd.Peer{})) + cap(r.PendingPeers)*int(unsafe.Sizeof(pd.Peer{})) +
				cap(r.DownPeers)*int(unsafe.Sizeof(pd.DownPeer{}))
			for _, p := range r.Peers {
				n += len(p.RoleName)
			}
		}
	}
	return n
}

func benchCycle(b *testing.B, cases []benchCase) {
	for _, bc := range cases {
		regions := bc.regions
		name := fmt.Sprintf("regions=%d", regions)
		if bc.stopStore {
			name += "/store-stopped"
		}
		if bc.collector {
			name += "/collector"
		}
		if bc.noState {
			name += "/no-state"
		}
		// -bench cannot select a case whose name is a prefix of others':
		// OPERATOR_BENCH_CASES="regions=100000,regions=100000/store-stopped/collector"
		// runs only those (each 100k case starts its own cluster).
		if only := os.Getenv("OPERATOR_BENCH_CASES"); only != "" && !slices.Contains(strings.Split(only, ","), name) {
			continue
		}
		b.Run(name, func(b *testing.B) {
			c := testcluster.Start(b, testcluster.Options{Stores: 5, Regions: regions, StartTimeout: 15 * time.Minute})
			ctx := context.Background()
			db, err := store.Open(ctx, filepath.Join(b.TempDir(), "operator.db"), store.Options{Create: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			var bytesRead, requests atomic.Int64
			var routeMu sync.Mutex
			routeBytes := map[string]int64{}
			var m *Monitor
			client, err := pd.New([]string{c.PDURL}, pd.WithObserver(func(method, path string, status int, d time.Duration, n int64) {
				bytesRead.Add(n)
				requests.Add(1)
				routeMu.Lock()
				routeBytes[method+" "+path] += n
				routeMu.Unlock()
				m.ObservePDRequest(method, path, status, d, n)
			}))
			if err != nil {
				b.Fatal(err)
			}
			collect := func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, client) }
			if bc.collector {
				collect = tikv.NewCollector(client).Collect
			}
			var state StateStore
			if bc.noState {
				state = failingState{db}
			}
			m = New(Options{
				Invariants: invariant.Default(invariant.DefaultConfig()),
				Collect:    collect,
				Sink:       db,
				State:      state,
				Quiet:      30 * time.Second,
			})
			// One warm-up cycle; check that it reads what PD has.
			res, err := m.RunOnce(ctx, time.Now())
			if err != nil || res.CollectErr != nil {
				b.Fatalf("warm-up: %v %v", err, res.CollectErr)
			}
			total := 0
			for _, st := range res.Snapshot.Stores {
				total += st.Status.RegionCount
			}
			if total < regions*3 {
				b.Fatalf("PD reports %d peers, want >= %d", total, regions*3)
			}
			problems := 0
			if bc.stopStore {
				if err := c.Sim.StopStore(c.Sim.StoreIDs()[0]); err != nil {
					b.Fatal(err)
				}
				err := c.WaitFor(ctx, func() (bool, error) {
					res, err := m.RunOnce(ctx, time.Now())
					if err != nil || res.Snapshot == nil {
						return false, err
					}
					problems = res.Snapshot.CheckCount(tikv.CheckDownPeer)
					// With the Collector, measure its steady state: PD's
					// pd_regions_status has caught up with the lists.
					_, reused := res.Snapshot.ReusedChecks[tikv.CheckDownPeer]
					return problems >= regions*3/5*9/10 && (!bc.collector || reused), nil
				})
				if err != nil {
					b.Fatalf("down peers not reported (%d): %v", problems, err)
				}
			}
			bytesRead.Store(0)
			requests.Store(0)
			routeMu.Lock()
			clear(routeBytes)
			routeMu.Unlock()
			b.ReportAllocs()
			b.ResetTimer()
			var lastSnap *tikv.Snapshot
			for b.Loop() {
				res, err := m.RunOnce(ctx, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				lastSnap = res.Snapshot
			}
			b.StopTimer()
			b.ReportMetric(float64(bytesRead.Load())/float64(b.N), "pd-bytes/op")
			b.ReportMetric(float64(requests.Load())/float64(b.N), "pd-requests/op")
			b.ReportMetric(float64(problems), "down-peer-regions")
			b.ReportMetric(procStatusMB("VmRSS"), "rss-MB")
			b.ReportMetric(procStatusMB("VmHWM"), "hwm-MB")
			b.ReportMetric(float64(keptBytes(lastSnap))/(1<<20), "kept-MB")
			routeMu.Lock()
			var routes []string
			for r, n := range routeBytes {
				routes = append(routes, fmt.Sprintf("%s=%d", r, n/int64(b.N)))
			}
			routeMu.Unlock()
			sort.Strings(routes)
			b.Logf("PD bytes per cycle by route: %s", strings.Join(routes, " "))
		})
	}
}
