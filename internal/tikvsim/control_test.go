package tikvsim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikvsim"
)

func call(t *testing.T, method, url, body string) (int, map[string]any, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, raw
}

// The control API changes what PD reports, and answers bad input with a
// 4xx JSON error.
func TestControlAPI(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 6, StoreHeartbeat: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stores := c.Sim.StoreIDs()
	regions := c.Sim.RegionIDs()
	u := c.ControlURL

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			method, path, body string
			status             int
			errSub             string
		}{
			{"POST", "/v1/stores/999/stop", "", 404, "store not found"},
			{"POST", "/v1/stores/abc/stop", "", 400, "positive integer"},
			{"POST", fmt.Sprintf("/v1/stores/%d/available", stores[0]), "{not json", 400, "malformed JSON"},
			{"POST", fmt.Sprintf("/v1/stores/%d/available", stores[0]), `{"available": "lots"}`, 400, "size like"},
			{"POST", fmt.Sprintf("/v1/stores/%d/available", stores[0]), `{}`, 400, "missing"},
			{"POST", fmt.Sprintf("/v1/stores/%d/slow-score", stores[0]), `{"score": 101}`, 400, "0..100"},
			{"POST", fmt.Sprintf("/v1/stores/%d/slow-score", stores[0]), `{"score": 5, "x": 1}`, 400, "unknown field"},
			{"POST", "/v1/regions/424242/write-flow", `{"bytes_per_sec": 1}`, 404, "region not found"},
			{"POST", fmt.Sprintf("/v1/regions/%d/peers/999/pending", regions[0]), `{"pending": true}`, 404, "peer not found"},
			{"GET", "/v1/nothing", "", 404, "no route"},
			{"GET", "/v1/dump?regions=maybe", "", 400, "true or false"},
			{"POST", fmt.Sprintf("/v1/regions/%d/silent", regions[0]), `{}`, 400, "missing"},
			{"POST", "/v1/regions/424242/silent", `{"silent": true}`, 404, "region not found"},
			{"POST", fmt.Sprintf("/v1/stores/%d/ignore-commands", stores[0]), `{"ignore": 1}`, 400, "malformed JSON"},
			{"POST", "/v1/stores/999/ignore-commands", `{"ignore": true}`, 404, "store not found"},
			{"POST", "/v1/stores", `{"address": "bad\u0001addr"}`, 400, "address"},
		} {
			status, m, raw := call(t, tc.method, u+tc.path, tc.body)
			msg, _ := m["error"].(string)
			if status != tc.status || !strings.Contains(msg, tc.errSub) {
				t.Errorf("%s %s %s = %d %s, want %d with error containing %q", tc.method, tc.path, tc.body, status, raw, tc.status, tc.errSub)
			}
		}
	})

	t.Run("available shows in PD", func(t *testing.T) {
		id := stores[1]
		status, m, raw := call(t, "POST", fmt.Sprintf("%s/v1/stores/%d/available", u, id), `{"available": "3GiB"}`)
		if status != 200 || m["available"] != float64(3<<30) {
			t.Fatalf("set available: %d %s", status, raw)
		}
		err := c.WaitFor(ctx, func() (bool, error) {
			var s pd.StoreInfo
			err := c.GetJSON(ctx, fmt.Sprintf("/store/%d", id), &s)
			return err == nil && s.Status.Available == 3<<30, err
		})
		if err != nil {
			t.Fatalf("PD never showed 3GiB available on store %d: %v", id, err)
		}
		if status, _, raw := call(t, "POST", fmt.Sprintf("%s/v1/stores/%d/available", u, id), `{"available": null}`); status != 200 {
			t.Fatalf("reset available: %d %s", status, raw)
		}
	})

	t.Run("take-leaders and dump", func(t *testing.T) {
		id := stores[2]
		status, m, raw := call(t, "POST", fmt.Sprintf("%s/v1/stores/%d/take-leaders", u, id), "")
		if status != 200 || m["moved"] == nil {
			t.Fatalf("take-leaders: %d %s", status, raw)
		}
		err := c.WaitFor(ctx, func() (bool, error) {
			var s pd.StoreInfo
			err := c.GetJSON(ctx, fmt.Sprintf("/store/%d", id), &s)
			return err == nil && s.Status.LeaderCount == c.Regions, err
		})
		if err != nil {
			t.Fatalf("PD never showed all %d leaders on store %d: %v", c.Regions, id, err)
		}
		status, _, raw = call(t, "GET", u+"/v1/dump", "")
		var d tikvsim.Dump
		if err := json.Unmarshal(raw, &d); status != 200 || err != nil {
			t.Fatalf("dump: %d %v", status, err)
		}
		if d.ClusterID == 0 || len(d.Stores) != 3 || len(d.Regions) != c.Regions || d.RegionCount != c.Regions {
			t.Fatalf("dump: cluster %d, %d stores, %d regions (count %d), want 3 and %d", d.ClusterID, len(d.Stores), len(d.Regions), d.RegionCount, c.Regions)
		}
		if d.Regions[0].StartKey != "" || d.Regions[len(d.Regions)-1].EndKey != "" {
			t.Fatalf("dump regions not in key order: first %+v", d.Regions[0])
		}
	})

	t.Run("stop and start", func(t *testing.T) {
		id := stores[0]
		if status, m, raw := call(t, "POST", fmt.Sprintf("%s/v1/stores/%d/stop", u, id), ""); status != 200 || m["stopped"] != true {
			t.Fatalf("stop: %d %s", status, raw)
		}
		if status, m, raw := call(t, "POST", fmt.Sprintf("%s/v1/stores/%d/start", u, id), ""); status != 200 || m["stopped"] != false {
			t.Fatalf("start: %d %s", status, raw)
		}
	})
	t.Run("add store: PD refuses a live address, takes a new one", func(t *testing.T) {
		first, err := c.Sim.Store(stores[0])
		if err != nil {
			t.Fatal(err)
		}
		status, m, raw := call(t, "POST", u+"/v1/stores", fmt.Sprintf(`{"address": %q}`, first.Address))
		if msg, _ := m["error"].(string); status != 409 || !strings.Contains(msg, "duplicated store address") {
			t.Fatalf("duplicate address: %d %s", status, raw)
		}
		status, m, raw = call(t, "POST", u+"/v1/stores", `{"labels": {"host": "h9"}}`)
		id, _ := m["id"].(float64)
		if status != 200 || id == 0 {
			t.Fatalf("add store: %d %s", status, raw)
		}
		err = c.WaitFor(ctx, func() (bool, error) {
			var s pd.StoreInfo
			err := c.GetJSON(ctx, fmt.Sprintf("/store/%d", uint64(id)), &s)
			return err == nil && s.Store.StateName == pd.StateUp && s.Label("host") == "h9", err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// The simulator survives PD going away and re-registers its state when PD
// comes back (same data dir): stores Up, all regions known.
func TestReconnectAfterPDRestart(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 10, StoreHeartbeat: time.Second, RegionHeartbeat: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.StopPD(); err != nil {
		t.Fatal(err)
	}
	// The simulator notices.
	err := c.WaitFor(ctx, func() (bool, error) { return c.Sim.Dump(false).PDError != "", nil })
	if err != nil {
		t.Fatalf("simulator did not notice PD going away: %v", err)
	}
	if err := c.StartPD(ctx); err != nil {
		t.Fatal(err)
	}
	err = c.WaitFor(ctx, func() (bool, error) {
		var stores pd.StoresInfo
		if err := c.GetJSON(ctx, "/stores", &stores); err != nil {
			return false, nil
		}
		for _, s := range stores.Stores {
			if s.Store.StateName != "Up" || time.Since(s.Status.LastHeartbeatTS) > 5*time.Second {
				return false, nil
			}
		}
		var count struct{ Count int }
		if err := c.GetJSON(ctx, "/regions/count", &count); err != nil {
			return false, nil
		}
		return stores.Count == 3 && count.Count == c.Regions && c.Sim.Dump(false).PDError == "", nil
	})
	if err != nil {
		t.Fatalf("cluster did not recover after PD restart: %v (sim: %+v)", err, c.Sim.Dump(false))
	}
	// And PD's operators work again.
	id := c.Sim.RegionIDs()[1]
	v, _ := c.Sim.Region(id)
	to := v.Peers[0].StoreID
	if to == v.LeaderStoreID {
		to = v.Peers[1].StoreID
	}
	err = c.WaitFor(ctx, func() (bool, error) {
		err := c.PostJSON(ctx, "/operators", map[string]any{"name": "transfer-leader", "region_id": id, "to_store_id": to}, nil)
		return err == nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = c.WaitFor(ctx, func() (bool, error) {
		var r pd.Region
		err := c.GetJSON(ctx, fmt.Sprintf("/region/id/%d", id), &r)
		return err == nil && r.Leader.StoreID == to, nil
	})
	if err != nil {
		t.Fatalf("transfer-leader after PD restart: %v", err)
	}
}
