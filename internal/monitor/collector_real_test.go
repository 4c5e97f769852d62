package monitor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikv"
)

// stoppedStoreRegions is the cluster size of TestStoppedStoreNotBlind:
// 20,000 regions, or $OPERATOR_TEST_STOPPED_REGIONS (e.g. 100000: the
// simulator then needs several minutes to start on 2 shared cores).
func stoppedStoreRegions(t *testing.T) int {
	v := os.Getenv("OPERATOR_TEST_STOPPED_REGIONS")
	if v == "" {
		return 20000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1000 {
		t.Fatalf("OPERATOR_TEST_STOPPED_REGIONS=%q: want a region count >= 1000", v)
	}
	return n
}

// TestStoppedStoreNotBlind stops one of 5 stores on a 20,000-region
// cluster (stoppedStoreRegions; BenchmarkCycleBig covers 100,000) and
// watches it two ways, on one cluster:
//
//   - plain tikv.Collect (every check list streamed every cycle): the
//     region_down_peer ticket carries the count of every region PD lists
//     with a down peer, and the per-store breakdown names the stopped
//     store with as many down peers (within 2): the streamed lists do not
//     go blind or truncate the count;
//   - tikv.Collector, as the daemon does: once the down-peer and
//     pending-peer lists are heavy the cycles reuse them and take the
//     counts from PD's /metrics. No invariant may fail to evaluate during
//     the incident, and the ticket updated by a reusing cycle carries the
//     count PD lists and the stopped store on top (its breakdown is the
//     last list read's: at most a minute old).
func TestStoppedStoreNotBlind(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 20,000-region cluster")
	}
	regions := stoppedStoreRegions(t)
	c := testcluster.Start(t, testcluster.Options{Stores: 5, Regions: regions, StartTimeout: 20 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	client, err := pd.New([]string{c.PDURL})
	if err != nil {
		t.Fatal(err)
	}
	stopped := c.Sim.StoreIDs()[0]
	if err := c.Sim.StopStore(stopped); err != nil {
		t.Fatal(err)
	}
	watch := func(t *testing.T, collect CollectFunc, reusedOnly bool) *store.Store {
		t.Helper()
		db, err := store.Open(ctx, filepath.Join(t.TempDir(), "operator.db"), store.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		cfg := invariant.DefaultConfig()
		cfg.DefaultFor = 0
		m := New(Options{Invariants: invariant.Default(cfg), Collect: collect, Sink: db, Quiet: time.Minute})
		var last int
		var blind []string
		err = c.WaitFor(ctx, func() (bool, error) {
			res, err := m.RunOnce(ctx, time.Now())
			if err != nil || res.Snapshot == nil {
				return false, err
			}
			blind = blind[:0]
			for _, st := range res.Invariants {
				if st.Err != "" {
					blind = append(blind, st.Name+": "+st.Err)
				}
			}
			if len(blind) > 0 {
				return false, nil
			}
			n := res.Snapshot.CheckCount(tikv.CheckDownPeer)
			_, reused := res.Snapshot.ReusedChecks[tikv.CheckDownPeer]
			stable := n > 0 && n == last
			last = n
			return (reused || !reusedOnly) && stable && n >= regions*3/5*9/10, nil
		})
		if err != nil {
			t.Fatalf("down peers not reported (%d; reused lists required: %v), invariants not evaluated %v: %v", last, reusedOnly, blind, err)
		}
		return db
	}
	// check compares the ticket with what PD lists, read whole; the
	// breakdown may be lower by up to half when it came from a reused list.
	check := func(t *testing.T, db *store.Store, reused bool) {
		t.Helper()
		onStopped, listed := 0, 0
		if _, err := client.StreamCheckRegions(ctx, tikv.CheckDownPeer, func(r *pd.Region) error {
			listed++
			for _, d := range r.DownPeers {
				if d.Peer.StoreID == stopped {
					onStopped++
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		tk, err := db.OpenTicket(ctx, invariant.NameRegionDownPeer+"/"+invariant.SubjectCluster)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			RegionCount  int            `json:"region_count"`
			PeersByStore map[string]int `json:"peers_by_store"`
			TopStoreID   uint64         `json:"top_store_id"`
		}
		if err := json.Unmarshal(tk.Evidence, &ev); err != nil {
			t.Fatal(err)
		}
		got := ev.PeersByStore[strconv.FormatUint(stopped, 10)]
		t.Logf("%d regions: ticket counts %d down-peer regions (PD lists %d), %d down peers on store %d (PD lists %d)",
			regions, ev.RegionCount, listed, got, stopped, onStopped)
		// PD's list can move by a region or two between the reads.
		if d := ev.RegionCount - listed; d < -2 || d > 2 {
			t.Errorf("ticket counts %d down-peer regions, PD lists %d", ev.RegionCount, listed)
		}
		if ev.TopStoreID != stopped {
			t.Errorf("top store %d, want the stopped store %d", ev.TopStoreID, stopped)
		}
		low := onStopped - 2
		if reused {
			low = onStopped / 2
		}
		if got < low || got > onStopped+2 {
			t.Errorf("ticket counts %d down peers on store %d, PD lists %d", got, stopped, onStopped)
		}
	}
	t.Run("collect", func(t *testing.T) {
		check(t, watch(t, func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, client) }, false), false)
	})
	t.Run("collector", func(t *testing.T) {
		check(t, watch(t, tikv.NewCollector(client).Collect, true), true)
	})
}
