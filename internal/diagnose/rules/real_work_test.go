package rules_test

// Real-parts tests for issue 11's judgement classes, on the shared
// cluster of real_test.go (this file runs after it). Each test undoes
// what it injects.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/diagnose/rules"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// followerRegion returns a region with three voters, its leader's store
// and one follower's store.
func (e *env) followerRegion() (*pd.Region, uint64) {
	e.t.Helper()
	for _, rid := range e.tc.Sim.RegionIDs() {
		r := e.region(rid)
		if len(r.Peers) != 3 || !r.HasLeader() || len(r.DownPeers) > 0 {
			continue
		}
		for _, p := range r.Peers {
			if p.StoreID != r.Leader.StoreID && p.IsVoter() {
				return r, p.StoreID
			}
		}
	}
	e.t.Fatal("no region with a follower")
	return nil, 0
}

// TestRealDownPeerOnUpStore: the leader reports a follower down while its
// store keeps heartbeating (Up): PD never repairs that, and runs no
// operator on the region. The rules say so and propose transfer_peer of
// the down peer, with the quorum counting the down voter as unhealthy;
// the dry run against PD agrees, and executing it moves the peer off the
// store in PD.
func TestRealDownPeerOnUpStore(t *testing.T) {
	e := newEnv(t)
	r, from := e.followerRegion()
	if err := e.tc.Sim.SetPeerDown(r.ID, from, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.tc.Sim.SetPeerDown(r.ID, from, false) })
	if s := e.store(from); s.Store.StateName != pd.StateUp {
		t.Fatalf("store %d is %s, want Up", from, s.Store.StateName)
	}
	tk := e.waitViolation(invariant.NameRegionDownPeer, invariant.SubjectCluster, 30*time.Second)
	c, d := e.diagnose(tk)
	if _, running := func() (pd.Operator, bool) {
		for _, op := range c.Operators {
			if op.RegionID == r.ID {
				return op, true
			}
		}
		return pd.Operator{}, false
	}(); running {
		t.Skip("PD runs an operator on the region; nothing to judge")
	}
	p := proposed(t, d, tikv.ActionTransferPeer)
	if id(p, "region_id") != r.ID || id(p, "from_store_id") != from {
		t.Fatalf("proposal %v, want region %d's down peer on store %d moved", p, r.ID, from)
	}
	to := id(p, "to_store_id")
	rat := d.ProposedAction.Rationale
	if !strings.Contains(rat, "PD is not repairing") || !strings.Contains(rat, "Quorum now: 2 healthy of 3 voters (needs 2)") {
		t.Errorf("rationale: %s", rat)
	}
	dry := ""
	for _, ck := range d.DryRun.Preconditions {
		dry += ck.Detail + "\n"
	}
	if !strings.Contains(dry, "2 healthy of 3 voters") {
		t.Errorf("dry run quorum disagrees with the rationale:\n%s", dry)
	}
	e.execute(d)
	after := e.region(r.ID)
	if _, on := after.PeerOn(from); on {
		t.Errorf("region %d still has a peer on store %d: %+v", r.ID, from, after.Peers)
	}
	if pr, on := after.PeerOn(to); !on || !pr.IsVoter() {
		t.Errorf("region %d has no voter on store %d: %+v", r.ID, to, after.Peers)
	}
}

// TestRealBusyTargetAndPausedBalancer: leaders skewed onto one store.
// With the emptiest store busy (is_busy, as TiKV reports it), no transfer
// targets it. With balance-leader-scheduler paused, the proposal is
// resume_scheduler, and executing it resumes the scheduler in PD.
func TestRealBusyTargetAndPausedBalancer(t *testing.T) {
	e := newEnv(t)
	if _, err := e.tc.Sim.MoveLeaders(e.tc.Sim.StoreIDs()[0]); err != nil {
		t.Fatal(err)
	}
	tk := e.waitViolation(invariant.NameLeaderImbalance, invariant.SubjectCluster, 30*time.Second)
	_, d := e.diagnose(tk)
	first := proposed(t, d, tikv.ActionTransferLeader)
	busyID := id(first, "to_store_id")
	if err := e.tc.Sim.SetBusy(busyID, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.tc.Sim.SetBusy(busyID, false) })
	if err := e.tc.WaitFor(e.ctx, func() (bool, error) { return e.store(busyID).Status.IsBusy, nil }); err != nil {
		t.Fatalf("PD never showed store %d busy: %v", busyID, err)
	}
	_, d = e.diagnose(tk)
	if d.ProposedAction != nil && id(proposed(t, d, tikv.ActionTransferLeader), "to_store_id") == busyID {
		t.Fatalf("transfer onto busy store %d", busyID)
	}
	if !strings.Contains(strings.Join(d.Evidence, "\n"), "reports is_busy") {
		t.Errorf("evidence does not say why store %d was skipped: %v", busyID, d.Evidence)
	}

	if _, err := e.cat.Lookup("resume_scheduler"); err != nil {
		t.Skip("resume_scheduler not in the catalog yet")
	}
	if err := e.tc.PostJSON(e.ctx, "/schedulers", map[string]any{"name": "balance-leader-scheduler"}, nil); err != nil && !strings.Contains(err.Error(), "exist") {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.tc.Delete(context.Background(), "/schedulers/balance-leader-scheduler") })
	if err := e.tc.PauseScheduler(e.ctx, "balance-leader-scheduler", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	_, d = e.diagnose(tk)
	p := proposed(t, d, "resume_scheduler")
	if p["name"] != "balance-leader-scheduler" {
		t.Fatalf("params %v", p)
	}
	e.execute(d)
	paused, err := e.pd.PausedSchedulers(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range paused {
		if n == "balance-leader-scheduler" {
			t.Errorf("balance-leader-scheduler still paused after resume_scheduler")
		}
	}
	if a, _ := rules.Allowed(invariant.NameLeaderImbalance); !strings.Contains(strings.Join(a, ","), "resume_scheduler") {
		t.Errorf("leader_imbalance family does not allow resume_scheduler: %v", a)
	}
}
