package tikv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// fakePD answers GETs from fixed PD-shaped JSON bodies (path with query ->
// body) and records every other request; any mutation fails the test's
// assertion, not the fake. Unknown paths answer 404 like PD's router.
type fakePD struct {
	mu        sync.Mutex
	bodies    map[string]string
	mutations []string
}

func (f *fakePD) set(path, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies[path] = body
}

func (f *fakePD) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.mutations...)
}

func (f *fakePD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodGet {
		f.mutations = append(f.mutations, r.Method+" "+r.URL.RequestURI())
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`"ok"`))
		return
	}
	body, ok := f.bodies[r.URL.RequestURI()]
	if !ok {
		body, ok = f.bodies[r.URL.Path]
	}
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`"not found"`))
		return
	}
	if strings.HasPrefix(body, "500:") {
		w.WriteHeader(http.StatusInternalServerError)
		body = body[4:]
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(body))
}

// storeJSON renders one GET /stores entry as PD v8.1 does (state omitted
// for Up, sizes as strings, last_heartbeat in unix nanoseconds).
func storeJSON(id uint64, state string, hb time.Time, labels string) string {
	return fmt.Sprintf(`{"store":{"id":%d,"address":"tikv-%d:20160","labels":[%s],"version":"8.1.0","last_heartbeat":%d,"node_state":1,"state_name":%q},
"status":{"capacity":"2TiB","available":"1.5TiB","used_size":"100GiB","leader_count":3,"region_count":6,"region_size":576,
"start_ts":"2026-01-01T00:00:00Z","last_heartbeat_ts":%q,"uptime":"1h"}}`,
		id, id, labels, hb.UnixNano(), state, hb.UTC().Format(time.RFC3339Nano))
}

const schedOK = `{"leader-schedule-limit":4,"region-schedule-limit":2048,"replica-schedule-limit":64,"low-space-ratio":0.8,"high-space-ratio":0.7,"max-merge-region-size":20}`

// newFakePD is a healthy 4-store cluster: stores 1-4 Up with fresh
// heartbeats, region 10 with voters on stores 1, 2, 3 (leader on 1),
// max-replicas 3, placement rules off, no evict-leader scheduler.
func newFakePD(t *testing.T) (*fakePD, func(string) action.Action) {
	t.Helper()
	f := &fakePD{bodies: map[string]string{}}
	now := time.Now()
	var stores []string
	for id := uint64(1); id <= 4; id++ {
		s := storeJSON(id, "Up", now, "")
		stores = append(stores, s)
		f.set(fmt.Sprintf("/pd/api/v1/store/%d", id), s)
	}
	f.set("/pd/api/v1/stores", `{"count":4,"stores":[`+strings.Join(stores, ",")+`]}`)
	f.set("/pd/api/v1/config/replicate", `{"max-replicas":3,"location-labels":"","isolation-level":"","enable-placement-rules":"false"}`)
	f.set("/pd/api/v1/config/schedule", schedOK)
	f.set("/pd/api/v1/region/id/10", regionJSON(`{"id":101,"store_id":1},{"id":102,"store_id":2},{"id":103,"store_id":3}`))
	f.set("/pd/api/v1/operators/10", `500:"operator not found"`)
	f.set("/pd/api/v1/schedulers", `["balance-leader-scheduler","balance-region-scheduler"]`)
	f.set("/pd/api/v1/config/label-property", `{}`)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cat := NewCatalog(newClient(t, srv.URL))
	lookup := func(name string) action.Action {
		a, err := cat.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	return f, lookup
}

func regionJSON(peers string) string {
	return `{"id":10,"start_key":"7480","end_key":"7490","epoch":{"conf_ver":5,"version":3},"peers":[` + peers +
		`],"leader":{"id":101,"store_id":1},"approximate_size":96,"approximate_keys":960000}`
}

// refusedNothingSent asserts a refused dry run and execution mentioning
// want, with no mutating request reaching the fake PD.
func refusedNothingSent(t *testing.T, f *fakePD, a action.Action, p json.RawMessage, want string) {
	t.Helper()
	ctx := context.Background()
	res, err := a.DryRun(ctx, p)
	if err != nil || res.Valid || !strings.Contains(res.Message, want) {
		t.Errorf("%s %s dry run = %+v, %v; want refusal mentioning %q", a.Spec().Name, p, res, err, want)
	}
	out, err := a.Execute(ctx, p)
	if err != nil || out.Success || !strings.Contains(out.Message, want) || len(out.Requests) != 0 {
		t.Errorf("%s %s execute = %+v, %v; want refusal mentioning %q", a.Spec().Name, p, out, err, want)
	}
	if sent := f.sent(); len(sent) != 0 {
		t.Fatalf("%s sent %v", a.Spec().Name, sent)
	}
}

// TestFailClosed: every safety check refuses, naming the input, when PD
// answers {} or null for the config it needs, or an unknown store state.
func TestFailClosed(t *testing.T) {
	for _, body := range []string{`{}`, `null`, `{"max-replicas":null}`} {
		f, lookup := newFakePD(t)
		f.set("/pd/api/v1/config/replicate", body)
		refusedNothingSent(t, f, lookup(ActionDrainStore), params("store_id", 4), "max-replicas missing from GET /pd/api/v1/config/replicate")
		refusedNothingSent(t, f, lookup(ActionRemovePeer), params("region_id", 10, "store_id", 3), "max-replicas missing from GET /pd/api/v1/config/replicate")
	}
	f, lookup := newFakePD(t)
	f.set("/pd/api/v1/config/replicate", `{"max-replicas":0}`)
	refusedNothingSent(t, f, lookup(ActionDrainStore), params("store_id", 4), "max-replicas is 0")
	f.set("/pd/api/v1/config/replicate", `{"max-replicas":"three"}`)
	refusedNothingSent(t, f, lookup(ActionDrainStore), params("store_id", 4), "max-replicas in GET /pd/api/v1/config/replicate is not a non-negative integer")

	// Empty schedule config: no threshold defaults to a passing value.
	for _, body := range []string{`{}`, `null`} {
		f, lookup := newFakePD(t)
		f.set("/pd/api/v1/config/schedule", body)
		refusedNothingSent(t, f, lookup(ActionSetLowSpaceThreshold), params("percent", 5), "high-space-ratio missing from GET /pd/api/v1/config/schedule")
		refusedNothingSent(t, f, lookup(ActionSetLowSpaceThreshold), params("percent", 85), "low-space-ratio missing")
		refusedNothingSent(t, f, lookup(ActionDrainStore), params("store_id", 4), "low-space-ratio missing from GET /pd/api/v1/config/schedule")
		refusedNothingSent(t, f, lookup(ActionSetLeaderScheduleLimit), params("limit", 8), "leader-schedule-limit missing from GET /pd/api/v1/config/schedule")
	}

	// Unknown store state.
	f, lookup = newFakePD(t)
	f.set("/pd/api/v1/store/4", storeJSON(4, "Serving?", time.Now(), ""))
	refusedNothingSent(t, f, lookup(ActionDrainStore), params("store_id", 4), `state_name "Serving?"`)

	// The healthy fake passes, so the refusals above are the inputs'.
	f, lookup = newFakePD(t)
	if res, err := lookup(ActionDrainStore).DryRun(context.Background(), params("store_id", 4)); err != nil || !res.Valid {
		t.Fatalf("healthy fake: drain dry run %+v, %v", res, err)
	}
	if res, err := lookup(ActionTransferLeader).DryRun(context.Background(), params("region_id", 10, "to_store_id", 2)); err != nil || !res.Valid {
		t.Fatalf("healthy fake: transfer dry run %+v, %v", res, err)
	}
}

// TestTransferLeaderRefusals uses PD v8.1-shaped region, rule and label
// JSON for what the simulator cannot produce: witnesses, joint consensus,
// reject-leader label properties and placement-rule leader constraints.
func TestTransferLeaderRefusals(t *testing.T) {
	cases := []struct {
		name, path, body, want string
	}{
		{"learner", "/pd/api/v1/region/id/10", regionJSON(`{"id":101,"store_id":1},{"id":102,"store_id":2,"role":1,"role_name":"Learner","is_learner":true},{"id":103,"store_id":3}`), "holds only a learner"},
		{"witness", "/pd/api/v1/region/id/10", regionJSON(`{"id":101,"store_id":1},{"id":102,"store_id":2,"is_witness":true},{"id":103,"store_id":3}`), "is_witness=true"},
		{"incoming", "/pd/api/v1/region/id/10", regionJSON(`{"id":101,"store_id":1},{"id":102,"store_id":2,"role":2,"role_name":"IncomingVoter"},{"id":103,"store_id":3,"role":3,"role_name":"DemotingVoter"}`), "is IncomingVoter"},
		{"demoting", "/pd/api/v1/region/id/10", regionJSON(`{"id":101,"store_id":1},{"id":102,"store_id":2,"role":3,"role_name":"DemotingVoter"},{"id":103,"store_id":3,"role":2,"role_name":"IncomingVoter"}`), "is DemotingVoter"},
		{"down", "/pd/api/v1/region/id/10", `{"id":10,"start_key":"7480","end_key":"7490","epoch":{"conf_ver":5,"version":3},"peers":[{"id":101,"store_id":1},{"id":102,"store_id":2},{"id":103,"store_id":3}],"leader":{"id":101,"store_id":1},"down_peers":[{"peer":{"id":102,"store_id":2},"down_seconds":30}],"approximate_size":96}`, "reported down"},
		{"stale_heartbeat", "/pd/api/v1/stores", `{"count":3,"stores":[` + storeJSON(1, "Up", time.Now(), "") + "," + storeJSON(2, "Up", time.Now().Add(-25*time.Second), "") + "," + storeJSON(3, "Up", time.Now(), "") + `]}`, "target_store_heartbeat"},
		{"no_heartbeat", "/pd/api/v1/stores", `{"count":2,"stores":[{"store":{"id":2,"address":"a","state_name":"Up"},"status":{}}]}`, "last_heartbeat missing from GET /pd/api/v1/stores"},
		{"evict_leader", "/pd/api/v1/scheduler-config/evict-leader-scheduler/list", `{"store-id-ranges":{"2":[{"start-key":"","end-key":""}]}}`, "store 2 under evict-leader-scheduler: true"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, lookup := newFakePD(t)
			f.set(tc.path, tc.body)
			a := lookup(ActionTransferLeader)
			res, err := a.DryRun(context.Background(), params("region_id", 10, "to_store_id", 2))
			if err != nil || res.Valid || !strings.Contains(res.Message+fmt.Sprint(res.Preconditions), tc.want) {
				t.Errorf("dry run = %+v, %v; want refusal mentioning %q", res, err, tc.want)
			}
			if sent := f.sent(); len(sent) != 0 {
				t.Errorf("sent %v", sent)
			}
		})
	}

	t.Run("reject_leader_label", func(t *testing.T) {
		f, lookup := newFakePD(t)
		s2 := storeJSON(2, "Up", time.Now(), `{"key":"zone","value":"z2"}`)
		f.set("/pd/api/v1/stores", `{"count":3,"stores":[`+storeJSON(1, "Up", time.Now(), "")+","+s2+","+storeJSON(3, "Up", time.Now(), "")+`]}`)
		f.set("/pd/api/v1/config/label-property", `{"reject-leader":[{"key":"zone","value":"z2"}]}`)
		res, err := lookup(ActionTransferLeader).DryRun(context.Background(), params("region_id", 10, "to_store_id", 2))
		if err != nil || res.Valid || !strings.Contains(res.Message, "reject-leader label property: zone=z2") {
			t.Errorf("dry run = %+v, %v", res, err)
		}
	})

	t.Run("placement_leader_rule", func(t *testing.T) {
		f, lookup := newFakePD(t)
		mk := func(id uint64, zone string) string {
			return storeJSON(id, "Up", time.Now(), `{"key":"zone","value":"`+zone+`"}`)
		}
		f.set("/pd/api/v1/stores", `{"count":3,"stores":[`+mk(1, "z1")+","+mk(2, "z2")+","+mk(3, "z1")+`]}`)
		f.set("/pd/api/v1/config/replicate", `{"max-replicas":3,"location-labels":"zone","isolation-level":"","enable-placement-rules":"true"}`)
		// PD v8.1 GET /config/rules: a leader rule pinning leaders to z1
		// over the whole key space, plus two followers.
		f.set("/pd/api/v1/config/rules", `[{"group_id":"pd","id":"leader","start_key":"","end_key":"","role":"leader","is_witness":false,"count":1,
"label_constraints":[{"key":"zone","op":"in","values":["z1"]}],"location_labels":["zone"],"create_timestamp":1},
{"group_id":"pd","id":"followers","start_key":"","end_key":"","role":"follower","is_witness":false,"count":2,"location_labels":["zone"],"create_timestamp":1}]`)
		a := lookup(ActionTransferLeader)
		res, err := a.DryRun(context.Background(), params("region_id", 10, "to_store_id", 2))
		if err != nil || res.Valid || !strings.Contains(res.Message, "placement rule pd/leader (role leader) requires zone in [z1]") {
			t.Errorf("dry run to z2 = %+v, %v", res, err)
		}
		res, err = a.DryRun(context.Background(), params("region_id", 10, "to_store_id", 3))
		if err != nil || !res.Valid {
			t.Errorf("dry run to z1 = %+v, %v", res, err)
		}
	})
}

// TestRemovePeerJointQuorum: in joint consensus each configuration keeps
// its own majority. Incoming {1,2,4}, outgoing {1,2,3} with store 3 Down:
// counting the four voters as one set, removing store 2's peer leaves 2
// healthy of 3; the outgoing configuration would keep only 1 of 2.
func TestRemovePeerJointQuorum(t *testing.T) {
	f, lookup := newFakePD(t)
	now := time.Now()
	f.set("/pd/api/v1/stores", `{"count":4,"stores":[`+storeJSON(1, "Up", now, "")+","+storeJSON(2, "Up", now, "")+","+
		storeJSON(3, "Down", now.Add(-time.Hour), "")+","+storeJSON(4, "Up", now, "")+`]}`)
	f.set("/pd/api/v1/region/id/10", regionJSON(`{"id":101,"store_id":1},{"id":102,"store_id":2},{"id":103,"store_id":3,"role":3,"role_name":"DemotingVoter"},{"id":104,"store_id":4,"role":2,"role_name":"IncomingVoter"}`))
	a := lookup(ActionRemovePeer)
	res, err := a.DryRun(context.Background(), params("region_id", 10, "store_id", 2))
	if err != nil || res.Valid || !strings.Contains(res.Message, "1 healthy of 2 voters in the outgoing configuration (joint consensus)") {
		t.Errorf("dry run = %+v, %v", res, err)
	}
	if sent := f.sent(); len(sent) != 0 {
		t.Errorf("sent %v", sent)
	}
}

// TestDrainOnlyTiFlashStore: the only TiFlash store holding TiFlash
// replicas is not drained; with a second Up TiFlash store it may be.
func TestDrainOnlyTiFlashStore(t *testing.T) {
	now := time.Now()
	tiflash := `{"key":"engine","value":"tiflash"}`
	f, lookup := newFakePD(t)
	s4 := storeJSON(4, "Up", now, tiflash)
	f.set("/pd/api/v1/store/4", s4)
	f.set("/pd/api/v1/stores", `{"count":4,"stores":[`+storeJSON(1, "Up", now, "")+","+storeJSON(2, "Up", now, "")+","+storeJSON(3, "Up", now, "")+","+s4+`]}`)
	refusedNothingSent(t, f, lookup(ActionDrainStore), params("store_id", 4), "store 4 is a TiFlash store holding 6 TiFlash replicas; other Up TiFlash stores: 0")

	f.set("/pd/api/v1/stores", `{"count":5,"stores":[`+storeJSON(1, "Up", now, "")+","+storeJSON(2, "Up", now, "")+","+storeJSON(3, "Up", now, "")+","+s4+","+storeJSON(5, "Up", now, tiflash)+`]}`)
	if res, err := lookup(ActionDrainStore).DryRun(context.Background(), params("store_id", 4)); err != nil || !res.Valid {
		t.Errorf("drain with a second TiFlash store: %+v, %v", res, err)
	}
}
