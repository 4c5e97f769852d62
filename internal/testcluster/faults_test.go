package testcluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// A stopped store goes Disconnected after 20 s and Down after
// max-store-down-time; PD then replaces its peers on the spare store (add
// learner, promote, remove: ChangePeerV2 steps carried out by the
// simulator); restarted, it is Up again.
func TestStoreDisconnectedDownReplacedAndUp(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{Stores: 4, Regions: 12, StoreHeartbeat: time.Second, MaxStoreDownTime: 25 * time.Second})
	ctx := ctxT(t, 3*time.Minute)
	// PD's default store limit (15 peers/min) would make the repair below slow.
	if err := c.SetStoreLimit(ctx, 600); err != nil {
		t.Fatal(err)
	}
	victim := c.Sim.StoreIDs()[1]
	stoppedAt := time.Now()
	if err := c.Sim.StopStore(victim); err != nil {
		t.Fatal(err)
	}
	state := func() string { return storeByID(t, c, ctx, victim).Store.StateName }

	// Leaders leave the stopped store at once and its peers are reported down.
	err := c.WaitFor(ctx, func() (bool, error) {
		s := storeByID(t, c, ctx, victim)
		var down pd.RegionsInfo
		if err := c.GetJSON(ctx, "/regions/check/down-peer", &down); err != nil {
			return false, err
		}
		return s.Status.LeaderCount == 0 && down.Count > 0 && down.Count == s.Status.RegionCount, nil
	})
	if err != nil {
		t.Fatalf("leaders not moved / down peers not reported: %v", err)
	}
	if got := state(); got != "Up" {
		t.Fatalf("store %d is %s right after stopping, want Up (PD waits 20 s)", victim, got)
	}
	if err := c.WaitFor(ctx, func() (bool, error) { return state() == "Disconnected", nil }); err != nil {
		t.Fatalf("store never Disconnected: %v", err)
	}
	if d := time.Since(stoppedAt); d < 15*time.Second {
		t.Fatalf("Disconnected after %s, want about 20 s", d)
	}
	if err := c.WaitFor(ctx, func() (bool, error) { return state() == "Down", nil }); err != nil {
		t.Fatalf("store never Down: %v", err)
	}
	t.Logf("Disconnected and Down after %s", time.Since(stoppedAt).Round(time.Second))

	// PD replaces the down peers on the remaining stores.
	err = c.WaitFor(ctx, func() (bool, error) {
		var regions pd.RegionsInfo
		if err := c.GetJSON(ctx, "/regions", &regions); err != nil {
			return false, err
		}
		for _, r := range regions.Regions {
			if _, on := r.PeerOn(victim); on || len(r.Peers) != 3 {
				return false, nil
			}
			for _, p := range r.Peers {
				if p.RoleName != "Voter" {
					return false, nil
				}
			}
		}
		return storeByID(t, c, ctx, victim).Status.RegionCount == 0, nil
	})
	if err != nil {
		t.Fatalf("PD did not replace the peers of the down store: %v", err)
	}
	t.Logf("peers replaced %s after stopping", time.Since(stoppedAt).Round(time.Second))

	if err := c.Sim.StartStore(victim); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, func() (bool, error) { return state() == "Up", nil }); err != nil {
		t.Fatalf("store not Up after restart: %v", err)
	}
}

// transfer-region with peer roles moves a region to another store set
// through joint consensus (ChangePeerV2 enter/leave, PD >= 5.0 stores).
func TestTransferRegionJointConsensus(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{Stores: 4, Regions: 8, PauseBalanceLeader: true, DisableSchedulers: []string{"balance-region"}})
	ctx := ctxT(t, time.Minute)
	stores := c.Sim.StoreIDs()
	id := c.Sim.RegionIDs()[2]
	before, err := regionByID(ctx, c, id)
	if err != nil {
		t.Fatal(err)
	}
	// Target: the one store without a peer plus two of the current ones,
	// dropping the current leader's store.
	var target []uint64
	for _, s := range stores {
		if _, on := before.PeerOn(s); !on {
			target = append(target, s)
		}
	}
	for _, p := range before.Peers {
		if p.StoreID != before.Leader.StoreID && len(target) < 3 {
			target = append(target, p.StoreID)
		}
	}
	body := map[string]any{"name": "transfer-region", "region_id": id, "to_store_ids": target,
		"peer_roles": []string{"leader", "voter", "voter"}}
	if err := c.PostJSON(ctx, "/operators", body, nil); err != nil {
		t.Fatalf("POST /operators: %v", err)
	}
	var r pd.Region
	err = c.WaitFor(ctx, func() (bool, error) {
		var err error
		if r, err = regionByID(ctx, c, id); err != nil {
			return false, err
		}
		var got []uint64
		for _, p := range r.Peers {
			if p.RoleName != "Voter" {
				return false, nil
			}
			got = append(got, p.StoreID)
		}
		slices.Sort(got)
		want := slices.Clone(target)
		slices.Sort(want)
		return slices.Equal(got, want) && r.Leader.StoreID == target[0], nil
	})
	if err != nil {
		t.Fatalf("region %d not moved to %v: %v (now %+v)", id, target, err, r)
	}
	if r.Epoch.ConfVer <= before.Epoch.ConfVer {
		t.Fatalf("conf_ver %d did not rise from %d", r.Epoch.ConfVer, before.Epoch.ConfVer)
	}
	var status string
	if err := c.GetJSON(ctx, fmt.Sprintf("/operators/%d", id), &status); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "SUCCESS") {
		t.Fatalf("operator status %q, want SUCCESS", status)
	}
}

// With SkewLeaders and PauseBalanceLeader every leader stays on the first
// store, and PD runs without balance-leader-scheduler.
func TestSkewLeadersPersistWithoutBalanceLeader(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{Stores: 3, Regions: 30, SkewLeaders: true, PauseBalanceLeader: true})
	ctx := ctxT(t, 30*time.Second)
	var scheds []string
	if err := c.GetJSON(ctx, "/schedulers", &scheds); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(scheds, "balance-leader-scheduler") || !slices.Contains(scheds, "balance-region-scheduler") {
		t.Fatalf("schedulers %v: want balance-region but no balance-leader", scheds)
	}
	first := c.Sim.StoreIDs()[0]
	var stores pd.StoresInfo
	if err := c.GetJSON(ctx, "/stores", &stores); err != nil {
		t.Fatal(err)
	}
	for _, s := range stores.Stores {
		want := 0
		if s.Store.ID == first {
			want = c.Regions
		}
		if s.Status.LeaderCount != want {
			t.Errorf("store %d has %d leaders, want %d", s.Store.ID, s.Status.LeaderCount, want)
		}
	}
}

// DELETE /store/{id} makes the store Offline; PD moves its peers away
// (the simulator carries out the conf changes), buries it as Tombstone,
// and the simulator stops it when PD answers STORE_TOMBSTONE.
func TestRemoveStoreBecomesTombstone(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{Stores: 4, Regions: 8, StoreHeartbeat: time.Second})
	ctx := ctxT(t, 2*time.Minute)
	if err := c.SetStoreLimit(ctx, 600); err != nil {
		t.Fatal(err)
	}
	victim := c.Sim.StoreIDs()[3]
	if err := c.Delete(ctx, fmt.Sprintf("/store/%d", victim)); err != nil {
		t.Fatal(err)
	}
	if s := storeByID(t, c, ctx, victim); s.Store.StateName != "Offline" && s.Store.StateName != "Tombstone" {
		t.Fatalf("store %d is %s after DELETE, want Offline", victim, s.Store.StateName)
	}
	err := c.WaitFor(ctx, func() (bool, error) {
		var s pd.StoreInfo
		if err := c.GetJSON(ctx, fmt.Sprintf("/store/%d", victim), &s); err != nil {
			return false, err
		}
		v, err := c.Sim.Store(victim)
		return s.Store.StateName == "Tombstone" && v.Tombstone && v.RegionCount == 0, err
	})
	if err != nil {
		v, _ := c.Sim.Store(victim)
		t.Fatalf("store %d never Tombstone in PD and simulator: %v (sim %+v)", victim, err, v)
	}
	if err := c.Sim.StartStore(victim); err == nil {
		t.Fatal("a tombstone store restarted")
	}
}
