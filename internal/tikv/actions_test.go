package tikv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
)

// mutationRecorder is a reverse proxy in front of PD that records every
// non-GET request exactly as it reached the wire.
type mutationRecorder struct {
	mu   sync.Mutex
	reqs []action.Request
}

func (m *mutationRecorder) take() []action.Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.reqs
	m.reqs = nil
	return out
}

func startRecorder(t *testing.T, pdURL string) (string, *mutationRecorder) {
	t.Helper()
	target, err := url.Parse(pdURL)
	if err != nil {
		t.Fatal(err)
	}
	rec := &mutationRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			req := action.Request{Method: r.Method, Path: r.URL.RequestURI()}
			if len(body) > 0 {
				req.Body = body
			}
			rec.mu.Lock()
			rec.reqs = append(rec.reqs, req)
			rec.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, rec
}

func sameRequests(a, b []action.Request) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}

func params(kv ...any) json.RawMessage {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

// actionEnv is a 4-store cluster with PD's balance schedulers off and its
// replica, rule and merge checkers paused, so that only the actions under
// test change the layout.
type actionEnv struct {
	t   *testing.T
	tc  *testcluster.Cluster
	c   *pd.Client // direct, for assertions
	cat *action.Catalog
	rec *mutationRecorder
}

func newActionEnv(t *testing.T) *actionEnv {
	tc := testcluster.Start(t, testcluster.Options{
		Stores: 4, Regions: 8,
		DisableSchedulers: []string{"balance-region", "balance-leader", "hot-region"},
	})
	proxyURL, rec := startRecorder(t, tc.PDURL)
	direct := newClient(t, tc.PDURL)
	ctx := context.Background()
	for _, name := range []string{"rule", "replica", "merge"} {
		if err := direct.PauseChecker(ctx, name, 30*time.Minute); err != nil {
			t.Fatalf("pause checker %s: %v", name, err)
		}
	}
	viaProxy := newClient(t, proxyURL)
	cat := NewCatalog(viaProxy, WithVerifyTimeout(30*time.Second), WithPollInterval(100*time.Millisecond))
	return &actionEnv{t: t, tc: tc, c: direct, cat: cat, rec: rec}
}

func (e *actionEnv) action(name string) action.Action {
	e.t.Helper()
	a, err := e.cat.Lookup(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// dryRun runs a dry run and checks that it sent nothing.
func (e *actionEnv) dryRun(name string, p json.RawMessage) action.DryRunResult {
	e.t.Helper()
	res, err := e.action(name).DryRun(context.Background(), p)
	if err != nil {
		e.t.Fatalf("%s dry run: %v", name, err)
	}
	if sent := e.rec.take(); len(sent) != 0 {
		e.t.Fatalf("%s dry run sent %v", name, sent)
	}
	return res
}

// refused asserts a refused dry run and a refused execution that sends
// nothing, with messages containing want.
func (e *actionEnv) refused(name string, p json.RawMessage, want string) {
	e.t.Helper()
	res := e.dryRun(name, p)
	if res.Valid || !strings.Contains(res.Message, want) {
		e.t.Errorf("%s %s dry run: valid=%v message %q, want refusal mentioning %q", name, p, res.Valid, res.Message, want)
	}
	out, err := e.action(name).Execute(context.Background(), p)
	if err != nil || out.Success || !strings.Contains(out.Message, want) || len(out.Requests) != 0 {
		e.t.Errorf("%s %s execute: %+v, %v; want refusal mentioning %q with no request", name, p, out, err, want)
	}
	if sent := e.rec.take(); len(sent) != 0 {
		e.t.Errorf("%s refused execution sent %v", name, sent)
	}
}

// execute runs a valid action: dry run, execution, and checks that the
// requests sent are exactly those the dry run announced.
func (e *actionEnv) execute(name string, p json.RawMessage) action.Outcome {
	e.t.Helper()
	res := e.dryRun(name, p)
	if !res.Valid {
		e.t.Fatalf("%s %s dry run refused: %s (%+v)", name, p, res.Message, res.Preconditions)
	}
	out, err := e.action(name).Execute(context.Background(), p)
	if err != nil {
		e.t.Fatalf("%s execute: %v", name, err)
	}
	sent := e.rec.take()
	if !sameRequests(sent, res.Requests) || !sameRequests(out.Requests, res.Requests) {
		e.t.Errorf("%s: dry run announced %v, outcome lists %v, PD received %v", name, res.Requests, out.Requests, sent)
	}
	if !out.Success {
		e.t.Fatalf("%s %s not successful: %s", name, p, out.Message)
	}
	return out
}

func (e *actionEnv) region(id uint64) *pd.Region {
	e.t.Helper()
	r, err := e.c.Region(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *actionEnv) store(id uint64) *pd.StoreInfo {
	e.t.Helper()
	s, err := e.c.Store(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// pickRegion returns a region with a leader and three voters, and a store
// holding no peer of it.
func (e *actionEnv) pickRegion(skip ...uint64) (*pd.Region, uint64) {
	e.t.Helper()
	stores := e.tc.Sim.StoreIDs()
	for _, id := range e.tc.Sim.RegionIDs() {
		if slices.Contains(skip, id) {
			continue
		}
		r := e.region(id)
		if !r.HasLeader() || len(r.Peers) != 3 || r.ApproximateSize == 0 {
			continue
		}
		for _, s := range stores {
			if _, ok := r.PeerOn(s); !ok {
				return r, s
			}
		}
	}
	e.t.Fatal("no region with 3 voters on a 4-store cluster")
	return nil, 0
}

func follower(r *pd.Region) uint64 {
	for _, p := range r.Peers {
		if p.StoreID != r.Leader.StoreID && p.IsVoter() {
			return p.StoreID
		}
	}
	return 0
}

func TestActionsRealCluster(t *testing.T) {
	e := newActionEnv(t)
	ctx := context.Background()

	t.Run("transfer_leader", func(t *testing.T) {
		e.t = t
		r, outsider := e.pickRegion()
		to := follower(r)
		e.refused(ActionTransferLeader, params("region_id", 999999, "to_store_id", to), "region 999999 not found")
		e.refused(ActionTransferLeader, params("region_id", r.ID, "to_store_id", outsider), fmt.Sprintf("store %d holds no peer", outsider))
		e.refused(ActionTransferLeader, params("region_id", r.ID, "to_store_id", r.Leader.StoreID), "leader of region")
		if now := e.region(r.ID); now.Leader.StoreID != r.Leader.StoreID {
			t.Fatalf("refusals moved the leader to %d", now.Leader.StoreID)
		}
		res := e.dryRun(ActionTransferLeader, params("region_id", r.ID, "to_store_id", to))
		want := fmt.Sprintf(`POST /pd/api/v1/operators {"name":"transfer-leader","region_id":%d,"to_store_id":%d}`, r.ID, to)
		if len(res.Requests) != 1 || res.Requests[0].String() != want {
			t.Errorf("requests %v, want %s", res.Requests, want)
		}
		out := e.execute(ActionTransferLeader, params("region_id", r.ID, "to_store_id", to))
		if now := e.region(r.ID); now.Leader.StoreID != to {
			t.Errorf("leader on store %d after %q, want %d", now.Leader.StoreID, out.Message, to)
		}
		if out.Previous["leader_store_id"] != r.Leader.StoreID {
			t.Errorf("previous = %v", out.Previous)
		}
		// The effect (leader on the target) is what verifies the action;
		// the operator may be SUCCESS, still RUNNING, or already gone from
		// PD's list when the transfer finished before the first poll.
		switch st := out.Observed["operator_status"]; st {
		case string(pd.OperatorSuccess), string(pd.OperatorRunning), "not listed":
		default:
			t.Errorf("observed operator status %v", st)
		}
	})

	t.Run("split_region", func(t *testing.T) {
		e.t = t
		r, _ := e.pickRegion()
		e.refused(ActionSplitRegion, params("region_id", 999999), "region 999999 not found")
		e.refused(ActionSplitRegion, params("region_id", r.ID, "policy", "usekey"), "usekey needs at least one key")
		e.refused(ActionSplitRegion, params("region_id", r.ID, "policy", "usekey", "keys", []string{"zz"}), "not hex")
		outside := "00"
		if r.StartKey == "" {
			outside = r.EndKey + "00"
		}
		e.refused(ActionSplitRegion, params("region_id", r.ID, "policy", "usekey", "keys", []string{outside}), "not strictly inside")
		e.refused(ActionSplitRegion, params("region_id", r.ID, "policy", "scan", "keys", []string{"7480"}), "only used with policy usekey")
		before, err := e.c.ScanRegions(ctx, r.StartKey, r.EndKey, 16)
		if err != nil || len(before) != 1 {
			t.Fatalf("before split: %d regions in the range, %v", len(before), err)
		}
		out := e.execute(ActionSplitRegion, params("region_id", r.ID, "policy", "approximate"))
		after, err := e.c.ScanRegions(ctx, r.StartKey, r.EndKey, 16)
		if err != nil || len(after) != 2 {
			t.Fatalf("after split (%s): %d regions in [%q,%q), %v", out.Message, len(after), r.StartKey, r.EndKey, err)
		}
		if after[0].StartKey != r.StartKey || after[1].EndKey != r.EndKey || after[0].EndKey != after[1].StartKey {
			t.Errorf("split halves do not tile the old range: %+v %+v", after[0], after[1])
		}
		// usekey at an explicit key inside the surviving region.
		right := e.region(r.ID)
		key := right.StartKey + "80"
		if right.EndKey != "" && !(key < right.EndKey) {
			t.Skipf("no room for a usekey split in [%q,%q)", right.StartKey, right.EndKey)
		}
		e.execute(ActionSplitRegion, params("region_id", r.ID, "policy", "usekey", "keys", []string{strings.ToLower(key)}))
		parts, err := e.c.ScanRegions(ctx, right.StartKey, right.EndKey, 16)
		if err != nil || len(parts) != 2 || parts[1].StartKey != key {
			t.Errorf("usekey split at %s: %s, %v", key, regionIDs(parts), err)
		}
	})

	t.Run("add_remove_transfer_peer", func(t *testing.T) {
		e.t = t
		r, outsider := e.pickRegion()
		e.refused(ActionAddPeer, params("region_id", r.ID, "store_id", r.Leader.StoreID), "holds a voter")
		e.refused(ActionRemovePeer, params("region_id", r.ID, "store_id", outsider), fmt.Sprintf("store %d holds no peer", outsider))
		e.refused(ActionAddPeer, params("region_id", 999999, "store_id", outsider), "region 999999 not found")

		e.execute(ActionAddPeer, params("region_id", r.ID, "store_id", outsider))
		added := e.region(r.ID)
		if p, ok := added.PeerOn(outsider); !ok || !p.IsVoter() || len(added.Peers) != 4 {
			t.Fatalf("after add_peer: peers %+v", added.Peers)
		}
		e.execute(ActionRemovePeer, params("region_id", r.ID, "store_id", outsider))
		removed := e.region(r.ID)
		if _, ok := removed.PeerOn(outsider); ok || len(removed.Peers) != 3 {
			t.Fatalf("after remove_peer: peers %+v", removed.Peers)
		}

		// transfer_peer: move a follower's peer to the outsider store.
		from := follower(removed)
		e.refused(ActionTransferPeer, params("region_id", r.ID, "from_store_id", from, "to_store_id", from), "from_store_id")
		e.refused(ActionTransferPeer, params("region_id", r.ID, "from_store_id", from, "to_store_id", removed.Leader.StoreID), "holds a voter")
		e.execute(ActionTransferPeer, params("region_id", r.ID, "from_store_id", from, "to_store_id", outsider))
		moved := e.region(r.ID)
		if _, ok := moved.PeerOn(from); ok {
			t.Errorf("peer still on store %d: %+v", from, moved.Peers)
		}
		if p, ok := moved.PeerOn(outsider); !ok || !p.IsVoter() || len(moved.Peers) != 3 {
			t.Errorf("after transfer_peer: %+v", moved.Peers)
		}
	})

	t.Run("remove_peer_keeps_majority", func(t *testing.T) {
		e.t = t
		r, _ := e.pickRegion()
		lagging := follower(r)
		if err := e.tc.Sim.SetPeerPending(r.ID, lagging, true); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.tc.Sim.SetPeerPending(r.ID, lagging, false) })
		waitUntil(t, 20*time.Second, "pending peer visible in PD", func() (bool, string) {
			now := e.region(r.ID)
			return len(now.PendingPeers) == 1, fmt.Sprintf("pending %+v", now.PendingPeers)
		})
		// Removing the leader's healthy peer would leave 1 healthy of 2.
		e.refused(ActionRemovePeer, params("region_id", r.ID, "store_id", r.Leader.StoreID), "1 healthy of 2 voters (needs 2)")
		var healthy uint64
		for _, p := range r.Peers {
			if p.StoreID != r.Leader.StoreID && p.StoreID != lagging {
				healthy = p.StoreID
			}
		}
		e.refused(ActionRemovePeer, params("region_id", r.ID, "store_id", healthy), "needs 2")
		if now := e.region(r.ID); len(now.Peers) != 3 {
			t.Errorf("refusals changed the peers: %+v", now.Peers)
		}
		// Removing the lagging peer itself keeps 2 healthy of 2: allowed.
		res := e.dryRun(ActionRemovePeer, params("region_id", r.ID, "store_id", lagging))
		if !res.Valid {
			t.Errorf("removing the pending peer refused: %s", res.Message)
		}
	})

	t.Run("schedule_limits", func(t *testing.T) {
		e.t = t
		for _, tc := range []struct {
			action, key string
			value       uint64
		}{
			{ActionSetLeaderScheduleLimit, "leader-schedule-limit", 9},
			{ActionSetRegionScheduleLimit, "region-schedule-limit", 1000},
			{ActionSetReplicaScheduleLimit, "replica-schedule-limit", 5},
		} {
			before, err := e.c.ScheduleConfig(ctx)
			if err != nil {
				t.Fatal(err)
			}
			old := scheduleLimitValue(before, tc.key)
			res := e.dryRun(tc.action, params("limit", tc.value))
			want := fmt.Sprintf(`POST /pd/api/v1/config {"%s":%d}`, tc.key, tc.value)
			if len(res.Requests) != 1 || res.Requests[0].String() != want {
				t.Errorf("%s requests %v, want %s", tc.action, res.Requests, want)
			}
			out := e.execute(tc.action, params("limit", tc.value))
			now, _ := e.c.ScheduleConfig(ctx)
			if got := scheduleLimitValue(now, tc.key); got != tc.value {
				t.Errorf("%s = %d after %s, want %d", tc.key, got, tc.action, tc.value)
			}
			prev, ok := out.Previous[tc.key].(uint64)
			if !ok || prev != old {
				t.Fatalf("previous = %#v, want %d", out.Previous, old)
			}
			// Roll back with the recorded value.
			e.execute(tc.action, params("limit", prev))
			now, _ = e.c.ScheduleConfig(ctx)
			if got := scheduleLimitValue(now, tc.key); got != old {
				t.Errorf("%s = %d after rollback, want %d", tc.key, got, old)
			}
		}
		e.refused(ActionSetLeaderScheduleLimit, json.RawMessage(`{"limit":-1}`), "below the minimum 0")
		// 0 would stop PD re-replicating after a store loss.
		e.refused(ActionSetReplicaScheduleLimit, json.RawMessage(`{"limit":0}`), "below the minimum 1")
		e.refused(ActionSetLeaderScheduleLimit, json.RawMessage(`{"limit":2.5}`), "want an integer")
	})

	t.Run("low_space_threshold", func(t *testing.T) {
		e.t = t
		e.refused(ActionSetLowSpaceThreshold, params("percent", 60), "must be larger than high-space-ratio 0.7")
		e.refused(ActionSetLowSpaceThreshold, params("percent", 70), "must be larger than high-space-ratio 0.7")
		e.refused(ActionSetLowSpaceThreshold, params("percent", 101), "above the maximum 100")
		if sc, _ := e.c.ScheduleConfig(ctx); sc.LowSpaceRatio != 0.8 {
			t.Fatalf("refusals changed low-space-ratio to %v", sc.LowSpaceRatio)
		}
		out := e.execute(ActionSetLowSpaceThreshold, params("percent", 85))
		if sc, _ := e.c.ScheduleConfig(ctx); sc.LowSpaceRatio != 0.85 {
			t.Errorf("low-space-ratio = %v, want 0.85", sc.LowSpaceRatio)
		}
		prev := out.Previous["low-space-ratio"].(float64)
		e.execute(ActionSetLowSpaceThreshold, params("percent", prev*100))
		if sc, _ := e.c.ScheduleConfig(ctx); sc.LowSpaceRatio != 0.8 {
			t.Errorf("low-space-ratio = %v after rollback, want 0.8", sc.LowSpaceRatio)
		}
	})

	t.Run("drain_and_cancel", func(t *testing.T) {
		e.t = t
		stores := e.tc.Sim.StoreIDs()
		victim, other := stores[len(stores)-1], stores[0]
		e.refused(ActionDrainStore, params("store_id", 999), "store 999 not found")
		e.refused(ActionCancelDrain, params("store_id", victim), "must be Offline")
		res := e.dryRun(ActionDrainStore, params("store_id", victim))
		if len(res.Requests) != 1 || res.Requests[0].String() != fmt.Sprintf("DELETE /pd/api/v1/store/%d", victim) {
			t.Errorf("drain requests %v", res.Requests)
		}
		if !strings.Contains(strings.Join(res.Warnings, " "), "irreversible once Tombstone") {
			t.Errorf("dry run warnings %q do not say it becomes irreversible", res.Warnings)
		}
		e.execute(ActionDrainStore, params("store_id", victim))
		if s := e.store(victim); s.Store.StateName != pd.StateOffline || s.Store.NodeState != pd.NodeRemoving || s.Store.PhysicallyDestroyed {
			t.Fatalf("store %d after drain: %s node_state %d destroyed %v", victim, s.Store.StateName, s.Store.NodeState, s.Store.PhysicallyDestroyed)
		}
		// Three Up stores left with max-replicas 3: draining one more would
		// leave 2.
		e.refused(ActionDrainStore, params("store_id", other), "Up TiKV stores left after the drain: 2")
		e.refused(ActionDrainStore, params("store_id", victim), "already Offline")
		if s := e.store(other); s.Store.StateName != pd.StateUp {
			t.Fatalf("refused drain changed store %d to %s", other, s.Store.StateName)
		}
		e.execute(ActionCancelDrain, params("store_id", victim))
		if s := e.store(victim); s.Store.StateName != pd.StateUp || s.Store.PhysicallyDestroyed {
			t.Errorf("store %d after cancel_drain: %s", victim, s.Store.StateName)
		}
	})

	t.Run("evict_leader", func(t *testing.T) {
		e.t = t
		var target uint64
		for _, id := range e.tc.Sim.StoreIDs() {
			if e.store(id).Status.LeaderCount > 0 {
				target = id
				break
			}
		}
		e.refused(ActionRemoveEvictLeader, params("store_id", target), "under evict-leader-scheduler: false")
		res := e.dryRun(ActionEvictLeader, params("store_id", target))
		want := fmt.Sprintf(`POST /pd/api/v1/schedulers {"name":"evict-leader-scheduler","store_id":%d}`, target)
		if len(res.Requests) != 1 || res.Requests[0].String() != want {
			t.Errorf("requests %v, want %s", res.Requests, want)
		}
		e.execute(ActionEvictLeader, params("store_id", target))
		ids, err := e.c.EvictLeaderStores(ctx)
		if err != nil || !slices.Contains(ids, target) {
			t.Fatalf("evict-leader list %v, %v", ids, err)
		}
		names, _ := e.c.Schedulers(ctx)
		if !slices.Contains(names, pd.EvictLeaderScheduler) {
			t.Errorf("schedulers %v lack evict-leader-scheduler", names)
		}
		waitUntil(t, 30*time.Second, "leaders leave the evicted store", func() (bool, string) {
			n := e.store(target).Status.LeaderCount
			return n == 0, fmt.Sprintf("%d leaders", n)
		})
		e.refused(ActionEvictLeader, params("store_id", target), "under evict-leader already: true")
		// Issue 15: 4 stores, max-replicas 3. With target and a second store
		// evicted, a third eviction still leaves one store for leaders
		// (leaders_placeable) but regions whose three voters sit on the
		// evicted stores would keep no leader home: refused.
		var others []uint64
		for _, id := range e.tc.Sim.StoreIDs() {
			if id != target {
				others = append(others, id)
			}
		}
		e.execute(ActionEvictLeader, params("store_id", others[0]))
		e.refused(ActionEvictLeader, params("store_id", others[1]), "TiKV stores unable to hold leaders after this eviction: 3")
		e.execute(ActionRemoveEvictLeader, params("store_id", others[0]))
		// PD would take a leader transfer to the evicting store and its
		// scheduler move it away again: refused.
		for _, id := range e.tc.Sim.RegionIDs() {
			r := e.region(id)
			if p, ok := r.PeerOn(target); ok && p.IsVoter() && r.Leader.StoreID != target {
				e.refused(ActionTransferLeader, params("region_id", id, "to_store_id", target), fmt.Sprintf("store %d under evict-leader-scheduler: true", target))
				break
			}
		}
		e.execute(ActionRemoveEvictLeader, params("store_id", target))
		ids, err = e.c.EvictLeaderStores(ctx)
		if err != nil || slices.Contains(ids, target) {
			t.Errorf("evict-leader list after removal %v, %v", ids, err)
		}
	})

	t.Run("operator_cancel_is_failure", func(t *testing.T) {
		e.t = t
		r, to := e.pickRegion()
		// A store that just stopped still shows Up, so PD accepts an
		// add-peer there, but the new peer never catches up: the operator
		// keeps running until we cancel it.
		if err := e.tc.Sim.StopStore(to); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.tc.Sim.StartStore(to) })
		type result struct {
			out action.Outcome
			err error
		}
		done := make(chan result, 1)
		p := params("region_id", r.ID, "store_id", to)
		go func() {
			out, err := e.action(ActionAddPeer).Execute(ctx, p)
			done <- result{out, err}
		}()
		waitUntil(t, 10*time.Second, "our operator running", func() (bool, string) {
			select {
			case res := <-done:
				t.Fatalf("execution ended before the cancel: %+v, %v", res.out, res.err)
			default:
			}
			op, err := e.c.RegionOperator(ctx, r.ID)
			if err != nil {
				return false, err.Error()
			}
			return op.Status == pd.OperatorRunning && strings.HasPrefix(op.Desc, "admin-add-peer"), string(op.Status) + " " + op.Desc
		})
		if err := e.c.DeleteOperator(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		res := <-done
		e.rec.take()
		if res.err != nil || res.out.Success || !strings.HasPrefix(res.out.Message, "failed: operator CANCEL") {
			t.Errorf("outcome after cancel = %+v, %v", res.out, res.err)
		}
		if res.out.Observed["operator_status"] != string(pd.OperatorCancel) {
			t.Errorf("observed %v", res.out.Observed)
		}
		if now := e.region(r.ID); slices.ContainsFunc(now.Peers, func(p pd.Peer) bool { return p.StoreID == to && p.IsVoter() }) {
			t.Errorf("voter added on store %d despite the cancel: %+v", to, now.Peers)
		}

		// A leader transfer to the stopped store is refused before anything
		// is sent: the leader reports its peer there down (PD would refuse
		// it too), although PD still shows the store Up.
		tried := false
		for _, id := range e.tc.Sim.RegionIDs() {
			r2 := e.region(id)
			if p, ok := r2.PeerOn(to); !ok || !p.IsVoter() || r2.Leader.StoreID == to {
				continue
			}
			tried = true
			out, err := e.action(ActionTransferLeader).Execute(ctx, params("region_id", id, "to_store_id", to))
			sent := e.rec.take()
			if err != nil || out.Success || !strings.Contains(out.Message, "reported down by the leader") || len(out.Requests) != 0 || len(sent) != 0 {
				t.Errorf("transfer to a stopped store: %+v, %v (sent %v)", out, err, sent)
			}
			if now := e.region(id); now.Leader.StoreID != r2.Leader.StoreID {
				t.Errorf("leader moved after the refusal")
			}
			break
		}
		if !tried {
			t.Errorf("no region has a voter on store %d", to)
		}

		// FollowOperator on its own sees the same CANCEL record.
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		fr, err := FollowOperator(fctx, e.c, Follow{RegionID: r.ID, Desc: "admin-add-peer", Interval: 50 * time.Millisecond,
			Effect: func(_ context.Context, now *pd.Region) (bool, string) {
				p, ok := now.PeerOn(to)
				return ok && p.IsVoter(), ""
			}})
		if err != nil || !fr.Failed || fr.Status != pd.OperatorCancel || fr.Region == nil {
			t.Errorf("FollowOperator = %+v, %v", fr, err)
		}
	})

	t.Run("capture_state", func(t *testing.T) {
		e.t = t
		r, _ := e.pickRegion()
		raw, err := CaptureState(ctx, e.c, params("region_id", r.ID, "to_store_id", 1))
		if err != nil {
			t.Fatal(err)
		}
		var st State
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		leaders := 0
		for _, s := range st.Stores {
			leaders += s.LeaderCount
			if s.Address == "" || s.StateName == "" {
				t.Errorf("store %+v incomplete", s)
			}
		}
		if len(st.Stores) != 4 || leaders == 0 || st.Region == nil || st.Region.ID != r.ID || st.Region.LeaderStoreID != r.Leader.StoreID {
			t.Errorf("state = %s", raw)
		}
		if len(st.StoreLimits) != 4 || st.Schedulers == nil {
			t.Errorf("state lacks store limits or schedulers: %s", raw)
		}
		if st.MaxReplicas != 3 || st.Schedule["leader-schedule-limit"] == nil || st.Time.IsZero() || len(st.Errors) != 0 {
			t.Errorf("state = %s", raw)
		}
		raw, err = CaptureState(ctx, e.c, params("region_id", 999999))
		if err != nil || !strings.Contains(string(raw), "region not found") {
			t.Errorf("capture with unknown region = %s, %v", raw, err)
		}
		if raw, err = CaptureState(ctx, e.c, json.RawMessage(`not json`)); err != nil || !strings.Contains(string(raw), `"params"`) {
			t.Errorf("capture with bad params = %s, %v", raw, err)
		}
	})
}

// TestParamsValidation feeds every action bad JSON params: each dry run is
// Valid=false naming the problem, each execution Success=false, and
// nothing reaches PD (the client points at a closed port).
func TestParamsValidation(t *testing.T) {
	c := newClient(t, "127.0.0.1:1", pd.WithTimeout(time.Second))
	cat := NewCatalog(c)
	ctx := context.Background()
	bad := []struct {
		raw, want string
	}{
		{`{"bogus":1}`, "unknown param(s) bogus"},
		{`[1]`, "must be a JSON object"},
		{`{"region_id":`, "malformed JSON"},
		{`"x"`, "must be a JSON object"},
	}
	// Valid params, unreachable PD: the dry run cannot check and says so;
	// the execution sends nothing.
	a, _ := cat.Lookup(ActionDrainStore)
	if _, err := a.DryRun(ctx, params("store_id", 4)); !errors.Is(err, pd.ErrUnreachable) {
		t.Errorf("dry run against a dead PD = %v, want ErrUnreachable", err)
	}
	if out, err := a.Execute(ctx, params("store_id", 4)); err != nil || out.Success || len(out.Requests) != 0 || !strings.Contains(out.Message, "nothing sent") {
		t.Errorf("execute against a dead PD = %+v, %v", out, err)
	}
	for _, spec := range cat.Specs() {
		a, _ := cat.Lookup(spec.Name)
		cases := append([]struct{ raw, want string }{}, bad...)
		for _, p := range spec.Params {
			switch p.Type {
			case action.ParamInteger:
				cases = append(cases,
					struct{ raw, want string }{fmt.Sprintf(`{%q:"7"}`, p.Name), "want an integer"},
					struct{ raw, want string }{fmt.Sprintf(`{%q:-4}`, p.Name), "below the minimum"},
					struct{ raw, want string }{fmt.Sprintf(`{%q:1.5}`, p.Name), "want an integer"})
			case action.ParamNumber:
				cases = append(cases, struct{ raw, want string }{fmt.Sprintf(`{%q:true}`, p.Name), "want a number"})
			}
			if p.Required {
				cases = append(cases, struct{ raw, want string }{`{}`, "missing required param"})
			}
		}
		for _, tc := range cases {
			res, err := a.DryRun(ctx, json.RawMessage(tc.raw))
			if err != nil || res.Valid || !strings.Contains(res.Message, tc.want) || len(res.Requests) != 0 {
				t.Errorf("%s dry run %s: %+v, %v; want refusal mentioning %q", spec.Name, tc.raw, res, err, tc.want)
			}
			out, err := a.Execute(ctx, json.RawMessage(tc.raw))
			if err != nil || out.Success || !strings.Contains(out.Message, tc.want) || len(out.Requests) != 0 {
				t.Errorf("%s execute %s: %+v, %v", spec.Name, tc.raw, out, err)
			}
		}
	}
}

func TestCatalogSpecs(t *testing.T) {
	c := newClient(t, "127.0.0.1:1")
	specs := NewCatalog(c).Specs()
	want := []string{
		ActionAddPeer, ActionAddScheduler, ActionCancelDrain, ActionDrainStore, ActionEvictLeader, ActionMergeRegion,
		ActionPauseScheduler, ActionRemoveEvictLeader, ActionRemovePeer, ActionRemoveScheduler, ActionRemoveTombstones,
		ActionResumeScheduler, ActionSetAllStoresLimit, ActionSetHotRegionConfig,
		ActionSetLeaderScheduleLimit, ActionSetLowSpaceThreshold, ActionSetRegionScheduleLimit, ActionSetReplicaScheduleLimit,
		ActionSetStoreLimit, ActionSplitRegion, ActionTransferLeader, ActionTransferPeer,
	}
	capacity := map[string]bool{
		ActionDrainStore: true, ActionEvictLeader: true, ActionRemovePeer: true, ActionSetReplicaScheduleLimit: true,
		ActionSetStoreLimit: true, ActionSetAllStoresLimit: true,
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
		if s.Description == "" || s.Risk == "" || s.Rollback == "" {
			t.Errorf("%s: incomplete spec %+v", s.Name, s)
		}
		if s.Capacity != capacity[s.Name] {
			t.Errorf("%s: Capacity = %v, want %v", s.Name, s.Capacity, capacity[s.Name])
		}
		for _, target := range s.Targets {
			if !slices.ContainsFunc(s.Params, func(p action.Param) bool { return p.Name == target }) {
				t.Errorf("%s: target %q is not a param", s.Name, target)
			}
		}
		schema := action.ParamsSchema(s)
		if _, err := json.Marshal(schema); err != nil {
			t.Errorf("%s schema: %v", s.Name, err)
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("catalog = %v, want %v", names, want)
	}
}

func TestRegionQuorum(t *testing.T) {
	stores := []pd.StoreInfo{
		{Store: pd.StoreMeta{ID: 1, StateName: pd.StateUp}},
		{Store: pd.StoreMeta{ID: 2, StateName: pd.StateUp}},
		{Store: pd.StoreMeta{ID: 3, StateName: pd.StateDown}},
		{Store: pd.StoreMeta{ID: 4, StateName: pd.StateUp}},
		{Store: pd.StoreMeta{ID: 5, StateName: pd.StateUp}},
	}
	r := &pd.Region{ID: 9, Peers: []pd.Peer{
		{ID: 11, StoreID: 1}, {ID: 12, StoreID: 2}, {ID: 13, StoreID: 3},
		{ID: 14, StoreID: 4, RoleName: "Voter"}, {ID: 15, StoreID: 5, Role: 1, RoleName: "Learner", IsLearner: true},
	}, PendingPeers: []pd.Peer{{ID: 12, StoreID: 2}}}
	q := RegionQuorum(r, stores)
	if q.Voters != 4 || q.Healthy != 2 || q.Majority() != 3 || q.HasMajority() {
		t.Errorf("quorum = %+v", q)
	}
	if q.Unhealthy[3] != "store is Down" || q.Unhealthy[2] != "peer pending (log behind)" {
		t.Errorf("unhealthy = %v", q.Unhealthy)
	}
	r.DownPeers = []pd.DownPeer{{Peer: pd.Peer{ID: 11, StoreID: 1}, DownSeconds: 700}}
	if q := RegionQuorum(r, stores[:2]); q.Healthy != 0 || q.Unhealthy[4] != "store unknown to PD" {
		t.Errorf("quorum with down peer and unknown store = %+v", q)
	}
}

// TestUpTiKVStores checks the replica arithmetic of drain_store: only Up
// TiKV stores count (not TiFlash, Offline, Disconnected or Down).
func TestUpTiKVStores(t *testing.T) {
	mk := func(id uint64, state string, labels ...pd.Label) pd.StoreInfo {
		return pd.StoreInfo{Store: pd.StoreMeta{ID: id, StateName: state, Labels: labels}}
	}
	stores := []pd.StoreInfo{
		mk(1, pd.StateUp), mk(2, pd.StateUp), mk(3, pd.StateOffline), mk(4, pd.StateDisconnected),
		mk(5, pd.StateDown), mk(6, pd.StateUp, pd.Label{Key: "engine", Value: "tiflash"}), mk(7, pd.StateUp),
	}
	if got := upTiKVStores(stores); !slices.Equal(got, []uint64{1, 2, 7}) {
		t.Errorf("up TiKV stores = %v, want [1 2 7]", got)
	}
	if got := upTiKVStores(stores, 2); !slices.Equal(got, []uint64{1, 7}) {
		t.Errorf("up TiKV stores except 2 = %v, want [1 7]", got)
	}
	if got := evictLeaderNames([]string{"evict-leader-scheduler-4", "evict-leader-scheduler", "balance-leader-scheduler", "evict-leader-scheduler-x"}); !slices.Equal(got, []uint64{4}) {
		t.Errorf("legacy evict-leader names = %v, want [4]", got)
	}
}
