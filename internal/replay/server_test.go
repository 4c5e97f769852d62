package replay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// newTestServer serves one step through the real PD client.
func newTestServer(t *testing.T, state map[string]Response, prom map[string]json.RawMessage) (*pdServer, *pd.Client, time.Time) {
	t.Helper()
	s := newPDServer(prom != nil)
	t.Cleanup(s.close)
	now := time.Date(2025, 1, 15, 3, 16, 32, 0, time.UTC)
	if err := s.setStep(state, prom, now); err != nil {
		t.Fatal(err)
	}
	c, err := pd.New([]string{s.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, now
}

const storesBody = `{"count":2,"stores":[
 {"store":{"id":1,"address":"10.0.0.9:20172","version":"8.5.0","last_heartbeat":1736910992696585908,"state_name":"Up"},
  "status":{"capacity":"500GiB","available":"412.4GiB","leader_count":18,"region_count":40,"start_ts":"2025-01-14T13:07:34Z","last_heartbeat_ts":"2025-01-15T03:16:32.696585908Z","uptime":"14h8m58.696585908s"}},
 {"store":{"id":5,"address":"10.0.0.10:20172","version":"8.5.0","state_name":"Offline"},
  "status":{"capacity":"500GiB","available":"351.9GiB","region_count":38,"start_ts":"2025-01-14T13:07:58Z","last_heartbeat_ts":"2025-01-15T03:16:32.900982972Z","uptime":"14h8m34.900982972s"}}]}`

func TestServerAnswersLikePD(t *testing.T) {
	state := map[string]Response{
		"stores":                   {Body: json.RawMessage(storesBody)},
		"schedulers":               {Body: json.RawMessage(`["balance-leader-scheduler","balance-region-scheduler"]`)},
		"schedulers?status=paused": {Body: json.RawMessage(`["balance-leader-scheduler"]`)},
		"regions/check/down-peer":  {Body: json.RawMessage(`{"count":1,"regions":[{"id":42,"peers":[{"id":43,"store_id":1,"role_name":"Voter"}],"leader":{"id":43,"store_id":1,"role_name":"Voter"},"approximate_size":96}]}`)},
		"operators?object":         {Body: json.RawMessage(`[{"desc":"balance-leader","brief":"transfer leader: store 1 to 5","region_id":42,"region_epoch":{"conf_ver":5,"version":9},"kind":17,"timeout":"5m0s","status":1}]`)},
		"operators/records?from=*": {Status: 500, Body: json.RawMessage(`"[PD:operator:ErrOperatorNotFound]operator not found"`)},
		"config/replicate":         {Status: 500, Body: json.RawMessage(`"[PD:etcd:ErrEtcdKVGet]context deadline exceeded"`)},
	}
	s, c, now := newTestServer(t, state, nil)
	ctx := context.Background()

	stores, date, err := c.StoresWithTime(ctx)
	if err != nil || len(stores) != 2 {
		t.Fatalf("stores: %v %v", stores, err)
	}
	if !date.Equal(now) {
		t.Errorf("Date header = %v, want the tape clock %v", date, now)
	}
	// A query-less key does not answer a query, and vice versa.
	if all, err := c.Schedulers(ctx); err != nil || len(all) != 2 {
		t.Errorf("schedulers = %v, %v", all, err)
	}
	if paused, err := c.PausedSchedulers(ctx); err != nil || len(paused) != 1 {
		t.Errorf("paused = %v, %v", paused, err)
	}
	// "*" matches any value.
	if recs, err := c.OperatorRecords(ctx, now.Add(-time.Minute)); err != nil || len(recs) != 0 {
		t.Errorf("records = %v, %v (PD's 500 operator not found is an empty list)", recs, err)
	}
	// Errors keep PD's status and message.
	var apiErr *pd.APIError
	if _, err := c.ReplicationConfig(ctx); !errors.As(err, &apiErr) || apiErr.Status != 500 || apiErr.Message != "[PD:etcd:ErrEtcdKVGet]context deadline exceeded" {
		t.Errorf("replicate err = %v", err)
	}
	// Derived: GET /store/{id} from the store list; unknown id is PD's 404.
	if st, err := c.Store(ctx, 5); err != nil || st.Store.StateName != pd.StateOffline {
		t.Errorf("store 5 = %+v, %v", st, err)
	}
	if _, err := c.Store(ctx, 9); !errors.Is(err, pd.ErrStoreNotFound) {
		t.Errorf("store 9 err = %v, want ErrStoreNotFound", err)
	}
	// Derived: GET /region/id/{id} from any region list of the step.
	if r, err := c.Region(ctx, 42); err != nil || r.Leader.StoreID != 1 {
		t.Errorf("region 42 = %+v, %v", r, err)
	}
	// Derived: GET /operators/{id} from the running operators.
	if op, err := c.RegionOperator(ctx, 42); err != nil || op.Status != pd.OperatorRunning {
		t.Errorf("operator of 42 = %+v, %v", op, err)
	}
	if _, err := c.RegionOperator(ctx, 7); !errors.Is(err, pd.ErrOperatorNotFound) {
		t.Errorf("operator of 7 err = %v, want ErrOperatorNotFound", err)
	}
	// Unknown routes: Go's 404 text, recorded as unserved.
	raw, err := c.GetRaw(ctx, "/pd/api/v1/regions/store/5")
	if err != nil || raw.Status != 404 || string(raw.Body) != pdNotFoundText {
		t.Errorf("unknown route = %+v, %v", raw, err)
	}
	if got := s.Unserved(); len(got) != 1 || got[0] != "GET /pd/api/v1/regions/store/5" {
		t.Errorf("unserved = %v", got)
	}
	// A mutation is refused: a replay never changes the cluster.
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/pd/api/v1/operators", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST status %d", res.StatusCode)
	}
}

func TestServerPrometheus(t *testing.T) {
	q := `sum(rate(process_cpu_seconds_total{job="tikv"}[1m])) by (instance)`
	prom := map[string]json.RawMessage{q: json.RawMessage(`{"resultType":"vector","result":[{"metric":{"instance":"10.0.0.9:20180"},"value":[1736910992,"6.5"]}]}`)}
	s, _, now := newTestServer(t, map[string]Response{"stores": {Body: json.RawMessage(storesBody)}}, prom)
	p, err := tikv.NewProm(s.prom.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.ByInstance(context.Background(), q, now)
	if err != nil || got["10.0.0.9:20180"] != 6.5 {
		t.Errorf("known query = %v, %v", got, err)
	}
	got, err = p.ByInstance(context.Background(), "up", now)
	if err != nil || len(got) != 0 {
		t.Errorf("unknown query = %v, %v (want an empty vector)", got, err)
	}
}
