package monitor

import (
	"context"
	"encoding/json"
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

// TestStoppedStoreDownPeerCount stops one of 5 stores on a 10,000-region
// cluster (the largest that starts well within a test's budget on 2
// shared cores; BenchmarkCycleBig covers 100,000) and checks that the
// region_down_peer ticket carries the count of every region PD lists with
// a down peer, and that the per-store breakdown names the stopped store
// with as many down peers: the streamed check lists do not go blind or
// truncate the count.
func TestStoppedStoreDownPeerCount(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 10,000-region cluster")
	}
	const regions = 10000
	c := testcluster.Start(t, testcluster.Options{Stores: 5, Regions: regions, StartTimeout: 5 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "operator.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	client, err := pd.New([]string{c.PDURL})
	if err != nil {
		t.Fatal(err)
	}
	cfg := invariant.DefaultConfig()
	cfg.DefaultFor = 0
	m := New(Options{
		Invariants: invariant.Default(cfg),
		Collect:    func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, client) },
		Sink:       db,
		Quiet:      time.Minute,
	})
	stopped := c.Sim.StoreIDs()[0]
	if err := c.Sim.StopStore(stopped); err != nil {
		t.Fatal(err)
	}
	var last int
	err = c.WaitFor(ctx, func() (bool, error) {
		res, err := m.RunOnce(ctx, time.Now())
		if err != nil || res.Snapshot == nil {
			return false, err
		}
		n := res.Snapshot.CheckCount(tikv.CheckDownPeer)
		stable := n > 0 && n == last
		last = n
		return stable && n >= regions*3/5*9/10, nil
	})
	if err != nil {
		t.Fatalf("down peers not reported (%d): %v", last, err)
	}
	// What PD lists, read whole, against what the ticket says.
	list, err := client.CheckRegions(ctx, tikv.CheckDownPeer)
	if err != nil {
		t.Fatal(err)
	}
	onStopped := 0
	for _, r := range list {
		for _, d := range r.DownPeers {
			if d.Peer.StoreID == stopped {
				onStopped++
			}
		}
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
	// PD's list can move by a region or two between the two reads.
	if d := ev.RegionCount - len(list); d < -2 || d > 2 {
		t.Errorf("ticket counts %d down-peer regions, PD lists %d", ev.RegionCount, len(list))
	}
	if ev.TopStoreID != stopped {
		t.Errorf("top store %d, want the stopped store %d", ev.TopStoreID, stopped)
	}
	if got := ev.PeersByStore[strconv.FormatUint(stopped, 10)]; got < onStopped-2 || got > onStopped+2 {
		t.Errorf("ticket counts %d down peers on store %d, PD lists %d", got, stopped, onStopped)
	}
}
