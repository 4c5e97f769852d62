package pd_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
)

// TestClientRealPD runs every read method and the error mapping against a
// real pd-server with simulated stores: the sentinels must match what PD
// really answers (200 with id 0, 404, 500 "operator not found").
func TestClientRealPD(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 6})
	var mu sync.Mutex
	routes := map[string]int{}
	var bytesRead int64
	c, err := pd.New([]string{tc.PDURL}, pd.WithObserver(func(method, path string, status int, d time.Duration, n int64) {
		mu.Lock()
		defer mu.Unlock()
		routes[method+" "+path] = status
		bytesRead += n
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	stores, err := c.Stores(ctx)
	if err != nil || len(stores) != 3 {
		t.Fatalf("Stores = %d, %v", len(stores), err)
	}
	up, err := c.Stores(ctx, "up")
	if err != nil || len(up) != 3 {
		t.Errorf("Stores(up) = %d, %v", len(up), err)
	}
	if tomb, err := c.Stores(ctx, pd.StateTombstone, pd.StateOffline); err != nil || len(tomb) != 0 {
		t.Errorf("Stores(Tombstone, Offline) = %d, %v", len(tomb), err)
	}
	id := stores[0].Store.ID
	s, err := c.Store(ctx, id)
	if err != nil || s.Store.ID != id || s.Store.NodeState > pd.NodeServing || s.Status.Capacity == 0 || s.Status.LastHeartbeatTS.IsZero() {
		t.Errorf("Store(%d) = %+v, %v", id, s, err)
	}
	if _, err := c.Store(ctx, 987654); !errors.Is(err, pd.ErrStoreNotFound) {
		t.Errorf("Store(unknown) = %v, want ErrStoreNotFound", err)
	}
	if err := c.DeleteStore(ctx, 987654); !errors.Is(err, pd.ErrStoreNotFound) {
		t.Errorf("DeleteStore(unknown) = %v, want ErrStoreNotFound", err)
	}
	if _, err := c.StoreProgress(ctx, id); !errors.Is(err, pd.ErrProgressNotFound) {
		t.Errorf("StoreProgress(Up store) = %v, want ErrProgressNotFound", err)
	}

	ids := tc.Sim.RegionIDs()
	r, err := c.Region(ctx, ids[0])
	if err != nil || r.ID != ids[0] || !r.HasLeader() || len(r.Peers) != 3 {
		t.Fatalf("Region(%d) = %+v, %v", ids[0], r, err)
	}
	if _, err := c.Region(ctx, 987654); !errors.Is(err, pd.ErrRegionNotFound) {
		t.Errorf("Region(unknown) = %v, want ErrRegionNotFound (PD answers 200 with id 0)", err)
	}
	byStore, err := c.RegionsByStore(ctx, id)
	if err != nil || len(byStore) != tc.Regions {
		t.Errorf("RegionsByStore = %d, %v; want %d", len(byStore), err, tc.Regions)
	}
	for _, name := range pd.RegionChecks {
		if regions, err := c.CheckRegions(ctx, name); err != nil {
			t.Errorf("CheckRegions(%s): %v", name, err)
		} else if name != "empty-region" && name != "undersized-region" && name != "learner-peer" && len(regions) != 0 {
			t.Errorf("CheckRegions(%s) = %d regions on a healthy cluster", name, len(regions))
		}
	}
	for _, by := range []string{"writeflow", "readflow", "size", "keys", "confver", "version", "cpu"} {
		top, err := c.TopRegions(ctx, by, 2)
		if err != nil || len(top) != 2 {
			t.Errorf("TopRegions(%s) = %d, %v", by, len(top), err)
		}
	}
	all, err := c.ScanRegions(ctx, "", "", 1000)
	if err != nil || len(all) != tc.Regions {
		t.Errorf("ScanRegions(all) = %d, %v; want %d", len(all), err, tc.Regions)
	}
	if _, err := c.HotWrite(ctx); err != nil {
		t.Errorf("HotWrite: %v", err)
	}
	if _, err := c.HotRead(ctx); err != nil {
		t.Errorf("HotRead: %v", err)
	}
	if hs, err := c.HotStores(ctx); err != nil || len(hs.BytesWriteRate) != 3 {
		t.Errorf("HotStores = %+v, %v", hs, err)
	}
	if cs, err := c.ClusterStatus(ctx); err != nil || !cs.IsInitialized || cs.RaftBootstrapTime.IsZero() {
		t.Errorf("ClusterStatus = %+v, %v", cs, err)
	}
	if h, err := c.Health(ctx); err != nil || len(h) != 1 || !h[0].Health {
		t.Errorf("Health = %+v, %v", h, err)
	}
	m, err := c.Members(ctx)
	if err != nil || m.Leader == nil || len(m.Members) != 1 {
		t.Errorf("Members = %+v, %v", m, err)
	}
	if l, err := c.Leader(ctx); err != nil || m == nil || m.Leader == nil || l.Name != m.Leader.Name {
		t.Errorf("Leader = %+v, %v", l, err)
	}
	if v, err := c.Version(ctx); err != nil || v == "" {
		t.Errorf("Version = %q, %v", v, err)
	}
	if d, err := c.Date(ctx); err != nil || time.Since(d).Abs() > 5*time.Second {
		t.Errorf("Date = %v, %v", d, err)
	}
	_, d2, err := c.StoresWithTime(ctx)
	if err != nil || d2.IsZero() {
		t.Errorf("StoresWithTime date = %v, %v", d2, err)
	}
	cfg, err := c.Config(ctx)
	if err != nil || cfg["schedule"] == nil || cfg["replication"] == nil {
		t.Errorf("Config keys missing: %v", err)
	}
	sc, err := c.ScheduleConfig(ctx)
	if err != nil || sc.LeaderScheduleLimit != 4 || sc.HighSpaceRatio != 0.7 || sc.MaxStoreDownTime == 0 {
		t.Errorf("ScheduleConfig = %+v, %v", sc, err)
	}
	if rc, err := c.ReplicationConfig(ctx); err != nil || rc.MaxReplicas != 3 {
		t.Errorf("ReplicationConfig = %+v, %v", rc, err)
	}

	// Config round trip; an unknown key is PD's 400.
	if err := c.SetConfig(ctx, map[string]any{"leader-schedule-limit": 6}); err != nil {
		t.Fatal(err)
	}
	if sc, _ := c.ScheduleConfig(ctx); sc.LeaderScheduleLimit != 6 {
		t.Errorf("leader-schedule-limit = %d after SetConfig", sc.LeaderScheduleLimit)
	}
	var apiErr *pd.APIError
	if err := c.SetConfig(ctx, map[string]any{"leader-schedule-limitt": 6}); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("SetConfig(typo) = %v, want 400", err)
	}

	// Operators: none, then one, then cancel and not found.
	if _, err := c.RegionOperator(ctx, r.ID); !errors.Is(err, pd.ErrOperatorNotFound) {
		t.Errorf("RegionOperator(no op) = %v, want ErrOperatorNotFound", err)
	}
	if err := c.DeleteOperator(ctx, r.ID); !errors.Is(err, pd.ErrOperatorNotFound) {
		t.Errorf("DeleteOperator(no op) = %v, want ErrOperatorNotFound", err)
	}
	if ops, err := c.Operators(ctx); err != nil || len(ops) != 0 {
		t.Errorf("Operators = %+v, %v", ops, err)
	}
	var to uint64
	for _, p := range r.Peers {
		if p.StoreID != r.Leader.StoreID {
			to = p.StoreID
		}
	}
	if err := c.CreateOperator(ctx, map[string]any{"name": "transfer-leader", "region_id": r.ID, "to_store_id": to}); err != nil {
		t.Fatal(err)
	}
	var op *pd.RegionOperator
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if op, err = c.RegionOperator(ctx, r.ID); err == nil && op.Status == pd.OperatorSuccess {
			break
		}
	}
	if op == nil || op.Status != pd.OperatorSuccess || !slices.Contains([]string{"admin-transfer-leader"}, firstWord(op.Desc)) {
		t.Errorf("RegionOperator after transfer = %+v, %v", op, err)
	}
	if err := c.CreateOperator(ctx, map[string]any{"name": "transfer-leader", "region_id": r.ID, "to_store_id": 987654}); !errors.As(err, &apiErr) {
		t.Errorf("CreateOperator(bad store) = %v, want *APIError", err)
	}

	// Schedulers and checkers.
	names, err := c.Schedulers(ctx)
	if err != nil || !slices.Contains(names, "balance-region-scheduler") {
		t.Errorf("Schedulers = %v, %v", names, err)
	}
	if p, err := c.PausedSchedulers(ctx); err != nil || len(p) != 0 {
		t.Errorf("PausedSchedulers = %v, %v", p, err)
	}
	if ids, err := c.EvictLeaderStores(ctx); err != nil || len(ids) != 0 {
		t.Errorf("EvictLeaderStores(none) = %v, %v", ids, err)
	}
	if err := c.AddScheduler(ctx, map[string]any{"name": pd.EvictLeaderScheduler, "store_id": id}); err != nil {
		t.Fatal(err)
	}
	if ids, err := c.EvictLeaderStores(ctx); err != nil || !slices.Equal(ids, []uint64{id}) {
		t.Errorf("EvictLeaderStores = %v, %v", ids, err)
	}
	if err := c.RemoveScheduler(ctx, pd.EvictLeaderScheduler+"-"+itoa(id)); err != nil {
		t.Fatal(err)
	}
	if ids, err := c.EvictLeaderStores(ctx); err != nil || len(ids) != 0 {
		t.Errorf("EvictLeaderStores after removal = %v, %v", ids, err)
	}
	if err := c.PauseChecker(ctx, "merge", time.Minute); err != nil {
		t.Errorf("PauseChecker: %v", err)
	}

	// Drain below max-replicas: PD itself refuses (400) and nothing changes.
	if err := c.DeleteStore(ctx, id); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("DeleteStore(3 stores, max-replicas 3) = %v, want PD's 400", err)
	}
	if s, _ := c.Store(ctx, id); s.Store.StateName != pd.StateUp {
		t.Errorf("store %d is %s after a refused delete", id, s.Store.StateName)
	}
	if err := c.SetStoreState(ctx, id, "Up"); err != nil {
		t.Errorf("SetStoreState(Up store, Up) = %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"GET /pd/api/v1/region/id/{id}", "GET /pd/api/v1/stores", "POST /pd/api/v1/operators", "DELETE /pd/api/v1/store/{id}"} {
		if _, ok := routes[want]; !ok {
			t.Errorf("observer never saw %q (saw %v)", want, routes)
		}
	}
	if routes["GET /pd/api/v1/store/{id}"] != 200 || bytesRead < 10000 {
		t.Errorf("observer: store route %d, %d bytes read", routes["GET /pd/api/v1/store/{id}"], bytesRead)
	}
}

func firstWord(s string) string {
	for i, r := range s {
		if r == ' ' {
			return s[:i]
		}
	}
	return s
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
