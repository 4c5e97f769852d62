package tikv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
)

func newClient(t *testing.T, url string, opts ...pd.Option) *pd.Client {
	t.Helper()
	c, err := pd.New([]string{url}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitUntil polls cond every 200 ms until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v (last: %s)", what, d, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestCollectRealCluster(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 12})
	c := newClient(t, tc.PDURL)
	ctx := context.Background()

	s, err := Collect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Errors) != 0 {
		t.Fatalf("errors on a healthy cluster: %v", s.Errors)
	}
	if len(s.Stores) != 3 || len(s.TiKVStores()) != 3 {
		t.Fatalf("stores = %d", len(s.Stores))
	}
	regions := 0
	for _, st := range s.Stores {
		if st.Store.StateName != pd.StateUp || st.Status.Capacity == 0 {
			t.Errorf("store %d: %s capacity %d", st.Store.ID, st.Store.StateName, st.Status.Capacity)
		}
		regions += st.Status.RegionCount
	}
	if regions != 3*tc.Regions {
		t.Errorf("sum of region counts = %d, want 3 x %d", regions, tc.Regions)
	}
	if d := time.Since(s.Time); d < -2*time.Second || d > 30*time.Second {
		t.Errorf("snapshot time %v is %v away from now", s.Time, d)
	}
	if s.Schedule.LeaderScheduleLimit != 4 || s.Schedule.LowSpaceRatio != 0.8 || s.Replication.MaxReplicas != 3 {
		t.Errorf("config: %+v %+v", s.Schedule, s.Replication)
	}
	for _, name := range CollectChecks {
		if _, ok := s.Checks[name]; !ok {
			t.Errorf("check %s missing", name)
		}
		if n := len(s.Checks[name]); n != 0 {
			t.Errorf("check %s flags %d regions on a healthy cluster", name, n)
		}
	}
	if !slices.Contains(s.Schedulers, "balance-leader-scheduler") || len(s.PausedSchedulers) != 0 || len(s.EvictLeaderStores) != 0 {
		t.Errorf("schedulers %v paused %v evict %v", s.Schedulers, s.PausedSchedulers, s.EvictLeaderStores)
	}
	if len(s.Health) != 1 || !s.Health[0].Health || s.Members.Leader == nil || len(s.Tombstones) != 0 {
		t.Errorf("health %+v leader %+v tombstones %d", s.Health, s.Members.Leader, len(s.Tombstones))
	}

	// Make problems and watch them appear in the next snapshot.
	ids := tc.Sim.RegionIDs()
	target := ids[len(ids)/2]
	r, err := c.Region(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	var follower uint64
	for _, p := range r.Peers {
		if p.StoreID != r.Leader.StoreID {
			follower = p.StoreID
			break
		}
	}
	if err := tc.Sim.SetPeerPending(target, follower, true); err != nil {
		t.Fatal(err)
	}
	evicted := s.Stores[0].Store.ID
	if err := c.AddScheduler(ctx, map[string]any{"name": pd.EvictLeaderScheduler, "store_id": evicted}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Sim.Region(target); err != nil {
		t.Fatal(err)
	}
	pauseBody := map[string]any{"delay": 300}
	if err := postJSON(ctx, tc.PDURL+"/pd/api/v1/schedulers/balance-region-scheduler", pauseBody); err != nil {
		t.Fatal(err)
	}
	hot := ids[0]
	if err := tc.Sim.SetWriteFlow(hot, 32<<20, 100000); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "pending peer, evict-leader, paused scheduler and hot region in the snapshot", func() (bool, string) {
		s, err = Collect(ctx, c)
		if err != nil {
			return false, err.Error()
		}
		pending := s.Checks[CheckPendingPeer]
		hotSeen := false
		for _, st := range s.HotWrite.AsLeader {
			for _, h := range st.Stats {
				hotSeen = hotSeen || (h.RegionID == hot && h.ByteRate > 0)
			}
		}
		ok := len(pending) == 1 && pending[0].ID == target &&
			slices.Equal(s.EvictLeaderStores, []uint64{evicted}) &&
			slices.Contains(s.PausedSchedulers, "balance-region-scheduler") && hotSeen && len(s.Errors) == 0
		return ok, fmt.Sprintf("pending %s evict %v paused %v hot %v errors %v", regionIDs(pending), s.EvictLeaderStores, s.PausedSchedulers, hotSeen, s.Errors)
	})
	// Per-store rates come from store heartbeats; the simulator reports
	// none, so only the shape is checked.
	if len(s.HotStores.BytesWriteRate) != 3 {
		t.Errorf("hot stores = %+v, want an entry per store", s.HotStores)
	}
}

// TestCollectUnreachable checks that a PD nobody listens on is an error
// wrapping pd.ErrUnreachable, not a half-filled snapshot.
func TestCollectUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newClient(t, addr, pd.WithTimeout(time.Second))
	s, err := Collect(context.Background(), c)
	if !errors.Is(err, pd.ErrUnreachable) || s != nil {
		t.Fatalf("Collect = %v, %v; want ErrUnreachable", s, err)
	}
}
