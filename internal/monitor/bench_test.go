package monitor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	benchCycle(b, []benchCase{{1000, false, false}, {10000, false, false}, {10000, true, false}, {10000, true, true}})
}

// BenchmarkCycleBig is BenchmarkCycle at 100,000 regions, healthy and with
// one of 5 stores stopped (about 60,000 down-peer regions): the simulator
// needs a few minutes to start it on 2 cores. Also reported: the
// process's resident set after the loop (rss-MB) and its peak (hwm-MB,
// /proc/self/status; Linux only).
//
//	go test -run '^$' -bench BenchmarkCycleBig -benchtime 10x -timeout 30m ./internal/monitor/
func BenchmarkCycleBig(b *testing.B) {
	benchCycle(b, []benchCase{{100000, false, false}, {100000, true, false}, {100000, true, true}})
}

// benchCase is one cluster: its regions, whether a store is stopped, and
// whether the cycle collects with tikv.Collector (heavy check lists reused
// while PD's pd_regions_status count is unchanged; "/collector") instead
// of tikv.Collect.
type benchCase struct {
	regions   int
	stopStore bool
	collector bool
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
		b.Run(name, func(b *testing.B) {
			c := testcluster.Start(b, testcluster.Options{Stores: 5, Regions: regions, StartTimeout: 15 * time.Minute})
			ctx := context.Background()
			db, err := store.Open(ctx, filepath.Join(b.TempDir(), "operator.db"), store.Options{Create: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			var bytesRead, requests atomic.Int64
			var m *Monitor
			client, err := pd.New([]string{c.PDURL}, pd.WithObserver(func(method, path string, status int, d time.Duration, n int64) {
				bytesRead.Add(n)
				requests.Add(1)
				m.ObservePDRequest(method, path, status, d, n)
			}))
			if err != nil {
				b.Fatal(err)
			}
			collect := func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, client) }
			if bc.collector {
				collect = tikv.NewCollector(client).Collect
			}
			m = New(Options{
				Invariants: invariant.Default(invariant.DefaultConfig()),
				Collect:    collect,
				Sink:       db,
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
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := m.RunOnce(ctx, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(bytesRead.Load())/float64(b.N), "pd-bytes/op")
			b.ReportMetric(float64(requests.Load())/float64(b.N), "pd-requests/op")
			b.ReportMetric(float64(problems), "down-peer-regions")
			b.ReportMetric(procStatusMB("VmRSS"), "rss-MB")
			b.ReportMetric(procStatusMB("VmHWM"), "hwm-MB")
		})
	}
}
