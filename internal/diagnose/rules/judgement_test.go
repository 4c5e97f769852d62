package rules_test

// Table tests for issue 11's classes of wrong answers: each case is a
// context the rules once answered wrongly or unsafely.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/rules"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

func text(d *diagnose.Diagnosis) string {
	s := d.Summary + "\n" + d.RootCause + "\n" + strings.Join(d.Evidence, "\n") + "\n" + d.NoActionReason
	if d.ProposedAction != nil {
		s += "\n" + d.ProposedAction.Rationale
	}
	return s
}

func busy(s *pd.StoreInfo) { s.Status.IsBusy = true }

func uptime(d time.Duration) func(*pd.StoreInfo) {
	return func(s *pd.StoreInfo) { s.Status.Uptime = pd.Duration(d) }
}

func scores(leader, weight float64) func(*pd.StoreInfo) {
	return func(s *pd.StoreInfo) { s.Status.LeaderScore, s.Status.LeaderWeight = leader, weight }
}

func downFor(r pd.Region, store uint64, secs uint64) pd.Region {
	p, _ := r.PeerOn(store)
	r.DownPeers = append(r.DownPeers, pd.DownPeer{Peer: p, DownSeconds: secs})
	return r
}

func runningOp(region uint64, desc string) pd.Operator {
	return pd.Operator{RegionID: region, Desc: desc, Status: 1, Epoch: pd.Epoch{ConfVer: 5, Version: 5}}
}

// Down peers for 40,000 s on a store that is Up, no operator: PD is not
// repairing; transfer_peer to a fit store, quorum stated consistently.
func TestDownPeerOnUpStore(t *testing.T) {
	ev := map[string]any{"region_count": 1, "sample_region_ids": []uint64{50}, "peers_by_store": map[string]int{"3": 1}, "top_store_id": 3}
	stores := func() []pd.StoreInfo {
		return []pd.StoreInfo{st(1, 30, 100), st(2, 30, 100), st(3, 30, 100), st(4, 30, 90, busy), st(5, 30, 95)}
	}
	r := downFor(rg(50, 1, 1, 2, 3), 3, 40000)

	t.Run("no operator: PD is not repairing", func(t *testing.T) {
		c := cx(invariant.NameRegionDownPeer, "cluster", ev, stores(), r)
		d := run(t, c)
		p := params(t, d, tikv.ActionTransferPeer)
		if p["region_id"] != 50 || p["from_store_id"] != 3 || p["to_store_id"] != 5 {
			t.Fatalf("params %v: want region 50 from store 3 to store 5 (store 4 is busy)", p)
		}
		txt := text(d)
		for _, want := range []string{"PD is not repairing", "2 healthy of 3 voters (needs 2)", "after the move: 3 healthy of 3 voters (needs 2)", "store 4 reports is_busy"} {
			if !strings.Contains(txt, want) {
				t.Errorf("diagnosis lacks %q:\n%s", want, txt)
			}
		}
		if strings.Contains(txt, "PD re-creates") || strings.Contains(txt, "3 healthy of 3 voters (needs 2). ") {
			t.Errorf("diagnosis assumes PD repairs or counts the down voter:\n%s", txt)
		}
	})
	t.Run("PD runs an operator: it repairs, no proposal", func(t *testing.T) {
		c := cx(invariant.NameRegionDownPeer, "cluster", ev, stores(), r)
		c.Operators = []pd.Operator{runningOp(50, "replace-rule-down-peer {mv peer: store [3] to [5]} (kind:replica,region)")}
		d := run(t, c)
		if d.ProposedAction != nil || !strings.Contains(text(d), "PD runs operator") {
			t.Fatalf("want no proposal citing PD's operator:\n%s", d.Markdown())
		}
	})
	t.Run("unrepaired family, both sample lists", func(t *testing.T) {
		ev := map[string]any{"region_count": 1, "up_store_region_count": 1, "no_operator_region_count": 0,
			"sample_up_store_region_ids": []uint64{50}, "sample_no_operator_region_ids": []uint64{}, "unrepaired_peers_by_store": map[string]int{"3": 1}, "threshold_seconds": 600}
		d := run(t, cx(invariant.NameRegionDownPeerUnrepaired, "cluster", ev, stores(), r))
		params(t, d, tikv.ActionTransferPeer)
	})
	t.Run("quorum lost: page", func(t *testing.T) {
		r2 := downFor(downFor(rg(50, 1, 1, 2, 3), 3, 40000), 2, 40000)
		d := run(t, cx(invariant.NameRegionDownPeer, "cluster", ev, stores(), r2))
		noAction(t, d, "lost their quorum")
	})
}

// A leaderless region is never "leader on store 0" and never gets an
// operator: the page names ids, key range and size.
func TestLeaderlessRegion(t *testing.T) {
	r := downFor(rg(60, 1, 1, 2, 3), 2, 900)
	r.Leader = pd.Peer{}
	stores := []pd.StoreInfo{st(1, 30, 100, state(pd.StateDown), heartbeatAgo(time.Hour)), st(2, 30, 100), st(3, 30, 100, state(pd.StateDown), heartbeatAgo(time.Hour)), st(4, 30, 100)}
	for _, inv := range []string{invariant.NameRegionDownPeer, invariant.NameRegionNoLeader} {
		t.Run(inv, func(t *testing.T) {
			d := run(t, cx(inv, "cluster", map[string]any{"region_count": 1, "sample_region_ids": []uint64{60}, "peers_by_store": map[string]int{"2": 1}, "top_store_id": 2}, stores, r))
			noAction(t, d, "region 60 [74800060, 74800061) 96 MiB")
			if strings.Contains(text(d), "store 0") {
				t.Errorf("leaderless region shown on store 0:\n%s", text(d))
			}
			if !strings.Contains(text(d), "NO LEADER") {
				t.Errorf("evidence does not say the region has no leader:\n%s", text(d))
			}
		})
	}
}

// The learner that replaces a down voter is never removed; an older
// orphan learner may be.
func TestReplacementLearnerKept(t *testing.T) {
	stores := []pd.StoreInfo{st(1, 30, 100), st(2, 30, 100), st(3, 30, 100), st(4, 30, 100), st(5, 30, 100)}
	ev := map[string]any{"region_count": 1, "sample_region_ids": []uint64{70}}
	// Voter on store 3 down; learner on store 5 (newest) is its replacement.
	only := downFor(learner(rg(70, 1, 1, 2, 3), 5), 3, 900)
	d := run(t, cx(invariant.NameRegionExtraPeer, "cluster", ev, stores, only))
	noAction(t, d, "replacement copy")
	// An older orphan learner on store 4 too: remove that one, never 5.
	both := downFor(learner(learner(rg(70, 1, 1, 2, 3), 4), 5), 3, 900)
	d = run(t, cx(invariant.NameRegionExtraPeer, "cluster", ev, stores, both))
	if p := params(t, d, tikv.ActionRemovePeer); p["store_id"] != 4 {
		t.Fatalf("removes the learner on store %d, want 4 (store 5 is the replacement)", p["store_id"])
	}
	if !strings.Contains(d.ProposedAction.Rationale, "2 healthy of 3 voters (needs 2)") {
		t.Errorf("rationale does not state the quorum with the down voter unhealthy: %s", d.ProposedAction.Rationale)
	}
}

// cancel_drain is never proposed for a store that stopped heartbeating.
func TestNoCancelDrainWithoutHeartbeat(t *testing.T) {
	stores := []pd.StoreInfo{st(1, 30, 100), st(2, 30, 100), st(3, 0, 40, state(pd.StateOffline), heartbeatAgo(2*time.Hour))}
	for _, inv := range []string{invariant.NameStoreOfflineStuck, invariant.NameStoreOfflineBlocked} {
		d := run(t, cx(inv, "store:3", map[string]any{"store_id": 3}, stores))
		noAction(t, d, "cancelling it would not help")
	}
	d := run(t, cx(invariant.NameUpStoresBelowReplicas, "cluster", map[string]any{}, stores))
	noAction(t, d, "cancel_drain needs a store that heartbeats")
	// The same store heartbeating: cancel_drain.
	stores[2] = st(3, 0, 40, state(pd.StateOffline))
	params(t, run(t, cx(invariant.NameStoreOfflineStuck, "store:3", map[string]any{"store_id": 3}, stores)), tikv.ActionCancelDrain)
}

// Balance is judged on PD's scores; targets that are busy, restarted,
// evicted or against PD's operators are skipped; a paused balancer is
// resumed.
func TestLeaderBalanceOnScores(t *testing.T) {
	ev := map[string]any{"threshold": 6}
	regions := []pd.Region{rg(10, 1, 1, 2, 3), rg(11, 1, 1, 2, 3), rg(12, 1, 1, 2, 3)}
	t.Run("uneven counts, even scores", func(t *testing.T) {
		stores := []pd.StoreInfo{st(1, 40, 60, scores(20, 2)), st(2, 20, 60, scores(20, 1)), st(3, 21, 60, scores(21, 1))}
		noAction(t, run(t, cx(invariant.NameLeaderImbalance, "cluster", ev, stores, regions...)), "scores are even")
	})
	uneven := func(mods ...func(*pd.StoreInfo)) []pd.StoreInfo {
		return []pd.StoreInfo{st(1, 40, 60, scores(40, 1)), st(2, 10, 60, append([]func(*pd.StoreInfo){scores(10, 1)}, mods...)...), st(3, 30, 60, scores(30, 1))}
	}
	t.Run("uneven scores: transfer", func(t *testing.T) {
		p := params(t, run(t, cx(invariant.NameLeaderImbalance, "cluster", ev, uneven(), regions...)), tikv.ActionTransferLeader)
		if p["to_store_id"] != 2 {
			t.Fatalf("to store %d, want 2", p["to_store_id"])
		}
	})
	for name, mod := range map[string]func(*pd.StoreInfo){"busy": busy, "restarted": uptime(2 * time.Minute)} {
		t.Run("target "+name, func(t *testing.T) {
			d := run(t, cx(invariant.NameLeaderImbalance, "cluster", ev, uneven(mod), regions...))
			if d.ProposedAction != nil && d.ProposedAction.ActionType == tikv.ActionTransferLeader && strings.Contains(string(d.ProposedAction.Params), `"to_store_id":2`) {
				t.Fatalf("proposed a transfer onto a %s store: %s", name, d.ProposedAction.Params)
			}
		})
	}
	t.Run("target evicted", func(t *testing.T) {
		c := cx(invariant.NameLeaderImbalance, "cluster", ev, uneven(), regions...)
		c.EvictLeaderStores = []uint64{2}
		d := run(t, c)
		if d.ProposedAction != nil && strings.Contains(string(d.ProposedAction.Params), `"to_store_id":2`) {
			t.Fatalf("proposed a transfer onto an evicted store: %s", d.ProposedAction.Params)
		}
	})
	t.Run("against PD's running operator", func(t *testing.T) {
		c := cx(invariant.NameLeaderImbalance, "cluster", ev, uneven(), regions...)
		c.Operators = []pd.Operator{runningOp(99, "balance-leader {transfer leader: store 2 to 1} (kind:leader)")}
		d := run(t, c)
		if d.ProposedAction != nil && strings.Contains(string(d.ProposedAction.Params), `"to_store_id":2`) {
			t.Fatalf("proposal fights PD's operator moving leaders off store 2: %s", d.ProposedAction.Params)
		}
	})
	t.Run("paused balancer: resume_scheduler", func(t *testing.T) {
		c := cx(invariant.NameLeaderImbalance, "cluster", ev, uneven(), regions...)
		c.PausedSchedulers = []string{"balance-leader-scheduler"}
		c.Actions = []action.Spec{{Name: tikv.ActionTransferLeader}, {Name: "resume_scheduler"}}
		d := run(t, c)
		if d.ProposedAction == nil || d.ProposedAction.ActionType != "resume_scheduler" || string(d.ProposedAction.Params) != `{"name":"balance-leader-scheduler"}` {
			t.Fatalf("want resume_scheduler balance-leader-scheduler:\n%s", d.Markdown())
		}
		c.Actions = c.Actions[:1]
		d = run(t, c)
		params(t, d, tikv.ActionTransferLeader)
		if !strings.Contains(d.ProposedAction.Rationale, "resume balance-leader-scheduler") {
			t.Errorf("degraded transfer does not name the fix: %s", d.ProposedAction.Rationale)
		}
	})
}

// A failed PD read a proposal depends on withdraws the proposal and says
// what was not read; the diagnosis is still made.
func TestSourceErrorsFailClosed(t *testing.T) {
	ev := map[string]any{"threshold": 6}
	stores := []pd.StoreInfo{st(1, 40, 60), st(2, 10, 60), st(3, 30, 60)}
	c := cx(invariant.NameLeaderImbalance, "cluster", ev, stores, rg(10, 1, 1, 2, 3))
	c.SourceErrors = map[string]string{tikv.SourceOperators: "500 Internal Server Error", "hotspot/write": "timeout"}
	d := run(t, c)
	noAction(t, d, "could not be read for operators")
	if !strings.Contains(strings.Join(d.Evidence, "\n"), "could not read hotspot/write: timeout") {
		t.Errorf("evidence does not list the failed reads: %v", d.Evidence)
	}
}

// Every family's allow-list names real catalog actions or the ones
// issue 15 adds, and page-only families allow nothing.
func TestFamilies(t *testing.T) {
	for _, name := range invariant.Names() {
		if _, ok := rules.Allowed(name); !ok {
			t.Errorf("invariant %s has no family", name)
		}
	}
	if a, _ := rules.Allowed(invariant.NameRegionNoLeader); len(a) != 0 {
		t.Errorf("region_no_leader allows %v, want page only", a)
	}
	if a, _ := rules.Allowed(invariant.NameStoreOfflineBlocked); len(a) == 0 || a[0] != tikv.ActionCancelDrain {
		t.Errorf("store_offline_blocked allows %v", a)
	}
	if _, ok := rules.Allowed("some_future_invariant"); ok {
		t.Error("unknown invariant has a family")
	}
}

// TestOperatorTimeouts09: the region of tikv/pd#6573 (cases.md 09, PD
// 6.5/7.1 output) with its down voter on an Up store and three learners
// left by replace-rule-down-peer operators that timed out: remove the
// oldest orphan learner, never the newest (the replacement in progress).
func TestOperatorTimeouts09(t *testing.T) {
	var r pd.Region
	if err := json.Unmarshal([]byte(`{"id":353747615,"epoch":{"conf_ver":368,"version":32492},"approximate_size":95,"peers":[
{"id":353747616,"store_id":350571036,"role_name":"Voter"},
{"id":353747617,"store_id":350571030,"role_name":"Voter"},
{"id":353747618,"store_id":350571032,"role_name":"Voter"},
{"id":391098694,"store_id":350571034,"role":1,"role_name":"Learner","is_learner":true},
{"id":433406127,"store_id":350571134,"role":1,"role_name":"Learner","is_learner":true},
{"id":522453028,"store_id":350571031,"role":1,"role_name":"Learner","is_learner":true}]}`), &r); err != nil {
		t.Fatal(err)
	}
	r.Leader = r.Peers[0]
	r.DownPeers = []pd.DownPeer{{Peer: r.Peers[1], DownSeconds: 3600}}
	var stores []pd.StoreInfo
	for _, p := range r.Peers {
		stores = append(stores, st(p.StoreID, 10, 100))
	}
	ev := map[string]any{"region_id": r.ID, "timeouts": 2, "threshold": 2, "window_seconds": 3600,
		"operators": []string{"replace-rule-down-peer {mv peer: store [350571030] to [350571031]}", "replace-rule-down-peer {mv peer: store [350571030] to [350571762]}"}}
	d := run(t, cx(invariant.NameOperatorTimeouts, fmt.Sprintf("region:%d", r.ID), ev, stores, r))
	p := params(t, d, tikv.ActionRemovePeer)
	if p["store_id"] != 350571034 {
		t.Fatalf("removes the learner on store %d, want 350571034 (oldest orphan; 350571031 is the replacement)", p["store_id"])
	}
	if !strings.Contains(text(d), "2 healthy of 3 voters (needs 2)") || !strings.Contains(text(d), "replacement copy") {
		t.Errorf("diagnosis:\n%s", text(d))
	}
}

// PD 8.5 renders running operators as {"desc": "balance-leader", "brief":
// "transfer leader: store 3 to 2"}: PD is already rebalancing, so no
// transfer of ours races it.
func TestPDAlreadyRebalancing(t *testing.T) {
	stores := []pd.StoreInfo{st(1, 30, 60, scores(30, 1)), st(2, 5, 60, scores(5, 1)), st(3, 50, 60, scores(50, 1))}
	c := cx(invariant.NameLeaderImbalance, "cluster", map[string]any{"threshold": 6}, stores, rg(10, 3, 1, 2, 3))
	c.Operators = []pd.Operator{{Desc: "balance-leader", Brief: "transfer leader: store 3 to 2", RegionID: 11, Status: 1}}
	noAction(t, run(t, c), "PD's scheduler is moving leaders already")
}
