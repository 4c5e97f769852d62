package testcluster

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// shared is one cluster for the tests that don't disturb each other
// (they only touch their own region or store attribute).
var shared *Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	c, err := New(ctx, Options{Stores: 3, Regions: 20, StoreHeartbeat: time.Second})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testcluster TestMain:", err)
		os.Exit(1)
	}
	shared = c
	code := m.Run()
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "testcluster close:", err)
		code = 1
	}
	os.Exit(code)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func storeByID(t *testing.T, c *Cluster, ctx context.Context, id uint64) pd.StoreInfo {
	t.Helper()
	var s pd.StoreInfo
	if err := c.GetJSON(ctx, fmt.Sprintf("/store/%d", id), &s); err != nil {
		t.Fatalf("GET /store/%d: %v", id, err)
	}
	return s
}

func regionByID(ctx context.Context, c *Cluster, id uint64) (pd.Region, error) {
	var r pd.Region
	err := c.GetJSON(ctx, fmt.Sprintf("/region/id/%d", id), &r)
	return r, err
}

func TestStoresUpWithRegionsAndLeaders(t *testing.T) {
	c := shared
	ctx := ctxT(t, 30*time.Second)
	if c.Regions != 20+PDKeyspaceSplits {
		t.Fatalf("cluster has %d regions, want 20 + %d keyspace splits", c.Regions, PDKeyspaceSplits)
	}
	// PD and the simulator must agree on every store's region and leader
	// count (leaders may move under balance-leader, so poll until equal).
	var last string
	err := c.WaitFor(ctx, func() (bool, error) {
		var stores pd.StoresInfo
		if err := c.GetJSON(ctx, "/stores", &stores); err != nil {
			return false, err
		}
		if stores.Count != 3 {
			return false, fmt.Errorf("PD lists %d stores, want 3", stores.Count)
		}
		var regions struct{ Count int }
		if err := c.GetJSON(ctx, "/regions/count", &regions); err != nil {
			return false, err
		}
		d := c.Sim.Dump(false)
		leaders := 0
		for _, s := range stores.Stores {
			v, err := c.Sim.Store(s.Store.ID)
			if err != nil {
				return false, fmt.Errorf("PD store %d unknown to the simulator: %w", s.Store.ID, err)
			}
			if s.Store.StateName != "Up" || s.Status.RegionCount != regions.Count ||
				s.Status.LeaderCount != v.LeaderCount || s.Store.Version != "8.1.0" {
				last = fmt.Sprintf("store %d: %s regions %d (want %d) leaders %d (sim %d) version %s",
					s.Store.ID, s.Store.StateName, s.Status.RegionCount, regions.Count, s.Status.LeaderCount, v.LeaderCount, s.Store.Version)
				return false, nil
			}
			leaders += s.Status.LeaderCount
		}
		if leaders != regions.Count || d.RegionCount != regions.Count {
			last = fmt.Sprintf("leaders %d, PD regions %d, sim regions %d", leaders, regions.Count, d.RegionCount)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("%v; last: %s", err, last)
	}
}

func TestTransferLeaderOperator(t *testing.T) {
	c := shared
	ctx := ctxT(t, 30*time.Second)
	id := c.Sim.RegionIDs()[5]
	r, err := regionByID(ctx, c, id)
	if err != nil {
		t.Fatal(err)
	}
	var to uint64
	for _, p := range r.Peers {
		if p.StoreID != r.Leader.StoreID {
			to = p.StoreID
			break
		}
	}
	if to == 0 {
		t.Fatalf("region %d has no follower: %+v", id, r)
	}
	body := map[string]any{"name": "transfer-leader", "region_id": id, "to_store_id": to}
	if err := c.PostJSON(ctx, "/operators", body, nil); err != nil {
		t.Fatalf("POST /operators: %v", err)
	}
	err = c.WaitFor(ctx, func() (bool, error) {
		r, err := regionByID(ctx, c, id)
		return err == nil && r.Leader.StoreID == to, err
	})
	if err != nil {
		t.Fatalf("leader of region %d never moved to store %d: %v", id, to, err)
	}
}

func TestSplitRegionOperator(t *testing.T) {
	c := shared
	ctx := ctxT(t, 30*time.Second)
	id := c.Sim.RegionIDs()[10]
	before, err := regionByID(ctx, c, id)
	if err != nil {
		t.Fatal(err)
	}
	start, _ := hex.DecodeString(before.StartKey)
	key := strings.ToUpper(hex.EncodeToString(append(start, "-split"...)))
	body := map[string]any{"name": "split-region", "region_id": id, "policy": "usekey", "keys": []string{key}}
	if err := c.PostJSON(ctx, "/operators", body, nil); err != nil {
		t.Fatalf("POST /operators: %v", err)
	}
	// Right-derive: region id keeps [key, end); a new region takes [start, key).
	var left pd.Region
	err = c.WaitFor(ctx, func() (bool, error) {
		right, err := regionByID(ctx, c, id)
		if err != nil || right.StartKey != key {
			return false, err
		}
		if err := c.GetJSON(ctx, "/region/key/"+before.StartKey+"?format=hex", &left); err != nil {
			return false, err
		}
		return left.ID != id && left.StartKey == before.StartKey && left.EndKey == key && right.EndKey == before.EndKey &&
			right.Epoch.Version == before.Epoch.Version+1 && left.Epoch.Version == right.Epoch.Version, nil
	})
	if err != nil {
		t.Fatalf("split of region %d at %s not seen in PD: %v (left %+v)", id, key, err, left)
	}
	if len(left.Peers) != 3 || left.Leader.StoreID == 0 {
		t.Fatalf("new region %+v: want 3 peers and a leader", left)
	}

	// Policy approximate: the simulator picks a middle key.
	before2, err := regionByID(ctx, c, id)
	if err != nil {
		t.Fatal(err)
	}
	body = map[string]any{"name": "split-region", "region_id": id, "policy": "approximate"}
	if err := c.PostJSON(ctx, "/operators", body, nil); err != nil {
		t.Fatalf("POST /operators: %v", err)
	}
	err = c.WaitFor(ctx, func() (bool, error) {
		r, err := regionByID(ctx, c, id)
		return err == nil && r.StartKey > before2.StartKey && (before2.EndKey == "" || r.EndKey == before2.EndKey) &&
			r.Epoch.Version == before2.Epoch.Version+1, err
	})
	if err != nil {
		t.Fatalf("approximate split of region %d not seen: %v", id, err)
	}
}

func TestMergeRegionOperator(t *testing.T) {
	c := shared
	ctx := ctxT(t, 30*time.Second)
	ids := c.Sim.RegionIDs()
	src, dst := ids[15], ids[16] // adjacent, same three stores
	rs, err := regionByID(ctx, c, src)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := regionByID(ctx, c, dst)
	if err != nil {
		t.Fatal(err)
	}
	if rs.EndKey != rd.StartKey {
		t.Fatalf("regions %d and %d not adjacent: %s..%s, %s..%s", src, dst, rs.StartKey, rs.EndKey, rd.StartKey, rd.EndKey)
	}
	body := map[string]any{"name": "merge-region", "source_region_id": src, "target_region_id": dst}
	if err := c.PostJSON(ctx, "/operators", body, nil); err != nil {
		t.Fatalf("POST /operators: %v", err)
	}
	err = c.WaitFor(ctx, func() (bool, error) {
		r, err := regionByID(ctx, c, dst)
		if err != nil {
			return false, err
		}
		gone, err := regionByID(ctx, c, src)
		return r.StartKey == rs.StartKey && r.EndKey == rd.EndKey && gone.ID == 0, err
	})
	if err != nil {
		t.Fatalf("merge of %d into %d not seen in PD: %v", src, dst, err)
	}
}

func TestLowSpaceAndSlowScoreShowInStores(t *testing.T) {
	c := shared
	ctx := ctxT(t, 30*time.Second)
	id := c.Sim.StoreIDs()[2]
	const avail = 5 << 30
	if err := c.Sim.SetAvailable(id, avail); err != nil {
		t.Fatal(err)
	}
	if err := c.Sim.SetSlowScore(id, 90); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Sim.ResetAvailable(id)
		_ = c.Sim.SetSlowScore(id, 1)
	})
	err := c.WaitFor(ctx, func() (bool, error) {
		s := storeByID(t, c, ctx, id)
		return uint64(s.Status.Available) == avail && s.Status.SlowScore == 90, nil
	})
	if err != nil {
		t.Fatalf("store %d: available/slow score not reported: %v (%+v)", id, err, storeByID(t, c, ctx, id).Status)
	}
}

func TestHotWriteRegion(t *testing.T) {
	c := shared
	ctx := ctxT(t, 60*time.Second)
	id := c.Sim.RegionIDs()[3]
	if err := c.Sim.SetWriteFlow(id, 32<<20, 32_000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Sim.SetWriteFlow(id, 0, 0) })
	var hot pd.HotRegions
	err := c.WaitFor(ctx, func() (bool, error) {
		if err := c.GetJSON(ctx, "/hotspot/regions/write", &hot); err != nil {
			return false, err
		}
		for _, st := range hot.AsLeader {
			for _, p := range st.Stats {
				if p.RegionID == id && p.ByteRate > 16<<20 {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("region %d never hot in /hotspot/regions/write: %v (%+v)", id, err, hot)
	}
}

func TestPendingAndDownPeers(t *testing.T) {
	c := shared
	ctx := ctxT(t, 30*time.Second)
	id := c.Sim.RegionIDs()[7]
	v, err := c.Sim.Region(id)
	if err != nil {
		t.Fatal(err)
	}
	var follower uint64
	for _, p := range v.Peers {
		if p.StoreID != v.LeaderStoreID {
			follower = p.StoreID
		}
	}
	if err := c.Sim.SetPeerPending(id, follower, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Sim.SetPeerDown(id, follower, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Sim.SetPeerPending(id, follower, false)
		_ = c.Sim.SetPeerDown(id, follower, false)
	})
	in := func(path string) (bool, error) {
		var rs pd.RegionsInfo
		if err := c.GetJSON(ctx, path, &rs); err != nil {
			return false, err
		}
		for _, r := range rs.Regions {
			if r.ID == id {
				return true, nil
			}
		}
		return false, nil
	}
	err = c.WaitFor(ctx, func() (bool, error) {
		p, err := in("/regions/check/pending-peer")
		if !p || err != nil {
			return false, err
		}
		return in("/regions/check/down-peer")
	})
	if err != nil {
		t.Fatalf("region %d not listed as pending and down: %v", id, err)
	}
	r, err := regionByID(ctx, c, id)
	if err != nil || len(r.DownPeers) != 1 || r.DownPeers[0].Peer.StoreID != follower {
		t.Fatalf("region %d down peers %+v (err %v), want the peer on store %d", id, r.DownPeers, err, follower)
	}
}
