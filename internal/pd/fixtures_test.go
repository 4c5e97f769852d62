package pd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files")

const fixturesDir = "testdata/fixtures"

// sharedFixtures is ../shared/fixtures seen from this package (the repo sits
// next to shared/ on developer machines and in CI).
const sharedFixtures = "../../../shared/fixtures"

func fixtureFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixturesDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", fixturesDir, err)
	}
	return files
}

func isRegionFixture(name string) bool { return strings.Contains(filepath.Base(name), "region") }

// TestFixturesMatchShared checks that testdata/fixtures holds a verbatim
// copy of every JSON fixture in ../shared/fixtures, so a new fixture there
// cannot be forgotten here.
func TestFixturesMatchShared(t *testing.T) {
	shared, _ := filepath.Glob(filepath.Join(sharedFixtures, "*.json"))
	if len(shared) == 0 {
		t.Skipf("%s not present", sharedFixtures)
	}
	for _, f := range shared {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(fixturesDir, filepath.Base(f)))
		if err != nil {
			t.Errorf("fixture %s not copied to %s: %v", filepath.Base(f), fixturesDir, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("fixture %s differs from the shared copy", filepath.Base(f))
		}
	}
}

// serveBody starts a PD stand-in answering every request with body.
func serveBody(t *testing.T, status int, body []byte) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c, err := New([]string{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// storeSummary is the golden rendering of a parsed store: every field an
// invariant uses, sizes in exact bytes.
type storeSummary struct {
	ID            uint64
	Address       string
	StateName     string
	State         int
	NodeState     int
	TiFlash       bool
	Labels        map[string]string `json:",omitempty"`
	Capacity      uint64
	Available     uint64
	UsedSize      uint64
	LeaderCount   int
	RegionCount   int
	LeaderSize    int64
	RegionSize    int64
	RegionScore   float64
	SlowScore     uint64
	LastHeartbeat string
	StartTS       string
	Uptime        string
}

func summarizeStores(stores []StoreInfo) []storeSummary {
	out := make([]storeSummary, 0, len(stores))
	for _, s := range stores {
		sum := storeSummary{
			ID: s.Store.ID, Address: s.Store.Address, StateName: s.Store.StateName,
			State: s.Store.State, NodeState: s.Store.NodeState, TiFlash: s.IsTiFlash(),
			Capacity: uint64(s.Status.Capacity), Available: uint64(s.Status.Available), UsedSize: uint64(s.Status.UsedSize),
			LeaderCount: s.Status.LeaderCount, RegionCount: s.Status.RegionCount,
			LeaderSize: s.Status.LeaderSize, RegionSize: s.Status.RegionSize, RegionScore: s.Status.RegionScore,
			SlowScore:     s.Status.SlowScore,
			LastHeartbeat: s.Status.LastHeartbeatTS.UTC().Format(time.RFC3339Nano),
			StartTS:       s.Status.StartTS.UTC().Format(time.RFC3339Nano),
			Uptime:        time.Duration(s.Status.Uptime).String(),
		}
		if len(s.Store.Labels) > 0 {
			sum.Labels = map[string]string{}
			for _, l := range s.Store.Labels {
				sum.Labels[l.Key] = l.Value
			}
		}
		out = append(out, sum)
	}
	return out
}

// TestFixturesGolden parses every fixture through the client (served by an
// httptest PD stand-in) and compares a summary with testdata/golden.
func TestFixturesGolden(t *testing.T) {
	ctx := context.Background()
	for _, f := range fixtureFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c := serveBody(t, 200, data)
			var summary any
			if isRegionFixture(f) {
				var probe struct{ ID uint64 }
				if err := json.Unmarshal(data, &probe); err != nil {
					t.Fatal(err)
				}
				r, err := c.Region(ctx, probe.ID)
				if err != nil {
					t.Fatalf("Region: %v", err)
				}
				summary = r
			} else {
				stores, err := c.Stores(ctx)
				if err != nil {
					t.Fatalf("Stores: %v", err)
				}
				summary = summarizeStores(stores)
			}
			got, err := json.MarshalIndent(summary, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", strings.TrimSuffix(filepath.Base(f), ".json")+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestFixturesGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parsed %s differs from %s:\n%s", filepath.Base(f), golden, got)
			}
		})
	}
}

func storesOf(t *testing.T, name string) map[uint64]*StoreInfo {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixturesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	stores, err := DecodeStores(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	m := map[uint64]*StoreInfo{}
	for i := range stores {
		m[stores[i].Store.ID] = &stores[i]
	}
	return m
}

const (
	gib = 1 << 30
	mib = 1 << 20
)

// sized is v units in bytes, truncated as go-units' RAMInBytes does.
func sized(v float64, unit float64) uint64 { return uint64(v * unit) }

func TestFixtureA1LowSpaceStore(t *testing.T) {
	m := storesOf(t, "A1-stores-v3.0.1-before-scalein-lowspace-store1.json")
	if len(m) != 4 {
		t.Fatalf("stores = %d, want 4", len(m))
	}
	s1 := m[1]
	if got := uint64(s1.Status.Capacity); got != 17*gib {
		t.Errorf("store 1 capacity = %d, want 17 GiB", got)
	}
	if got, want := uint64(s1.Status.Available), sized(3.4, gib); got != want {
		t.Errorf("store 1 available = %d, want %d (3.4 GiB)", got, want)
	}
	if s1.Status.LeaderCount != 0 || s1.Status.RegionCount != 0 {
		t.Errorf("store 1 omitted counts = %d/%d, want 0/0", s1.Status.LeaderCount, s1.Status.RegionCount)
	}
	if s1.Status.RegionScore < 1e9 {
		t.Errorf("store 1 region_score = %v, want the low-space penalty > 1e9", s1.Status.RegionScore)
	}
	if s1.Store.StateName != StateUp || s1.Store.State != 0 {
		t.Errorf("store 1 state = %q/%d", s1.Store.StateName, s1.Store.State)
	}
	if m[5].Status.LeaderCount != 10 || m[2001].Status.RegionCount != 20 {
		t.Errorf("counts: store 5 leaders %d, store 2001 regions %d", m[5].Status.LeaderCount, m[2001].Status.RegionCount)
	}
	want := time.Date(2020, 12, 27, 6, 59, 34, 41233812, time.UTC)
	if !s1.Status.LastHeartbeatTS.Equal(want) {
		t.Errorf("store 1 last heartbeat = %v, want %v", s1.Status.LastHeartbeatTS, want)
	}
	if got := time.Duration(s1.Status.Uptime); got != 56*time.Minute+42041233812*time.Nanosecond {
		t.Errorf("store 1 uptime = %v", got)
	}
}

func TestFixtureA2OfflineStore(t *testing.T) {
	m := storesOf(t, "A2-stores-v3.0.1-after-delete-offline.json")
	s := m[2001]
	if s.Store.StateName != StateOffline || s.Store.State != 1 {
		t.Errorf("store 2001 = %q/%d, want Offline/1", s.Store.StateName, s.Store.State)
	}
	if s.Status.RegionCount != 20 {
		t.Errorf("store 2001 region_count = %d, want 20", s.Status.RegionCount)
	}
	up := 0
	for _, st := range m {
		if st.Store.StateName == StateUp {
			up++
		}
	}
	if up != 3 {
		t.Errorf("Up stores = %d, want 3", up)
	}
}

func TestFixture01aDownWithStateZero(t *testing.T) {
	m := storesOf(t, "01a-stores-2node-offline-stuck-2017.json")
	if s := m[1]; s.Store.StateName != StateDown || s.Store.State != 0 {
		t.Errorf("store 1 = %q/%d, want Down/0", s.Store.StateName, s.Store.State)
	}
	if s := m[4]; s.Store.StateName != StateOffline || s.Store.State != 1 {
		t.Errorf("store 4 = %q/%d, want Offline/1", s.Store.StateName, s.Store.State)
	}
	if s := m[1]; s.Status.Capacity != 0 || !s.Status.LastHeartbeatTS.IsZero() || s.Status.LeaderWeight != 1 {
		t.Errorf("store 1 status = %+v, want zero capacity/heartbeat and weight 1", s.Status)
	}
}

func TestFixtureA4TiFlash(t *testing.T) {
	m := storesOf(t, "A4-stores-v8.1.0-k8s-healthy.json")
	tf := m[20]
	if !tf.IsTiFlash() {
		t.Fatalf("store 20 not recognised as TiFlash: labels %v", tf.Store.Labels)
	}
	for _, id := range []uint64{1, 4, 5} {
		if m[id].IsTiFlash() {
			t.Errorf("store %d recognised as TiFlash", id)
		}
		if m[id].Store.NodeState != NodeServing || m[id].Status.RegionCount != 60 {
			t.Errorf("store %d node_state %d regions %d", id, m[id].Store.NodeState, m[id].Status.RegionCount)
		}
	}
	if tf.Status.UsedSize != 1 || tf.Status.RegionCount != 0 {
		t.Errorf("tiflash used %d regions %d, want 1 B and 0", tf.Status.UsedSize, tf.Status.RegionCount)
	}
	if got, want := uint64(m[4].Status.UsedSize), sized(290.7, mib); got != want {
		t.Errorf("store 4 used = %d, want %d", got, want)
	}
	if got, want := uint64(m[4].Status.Capacity), sized(311.7, gib); got != want {
		t.Errorf("store 4 capacity = %d, want %d", got, want)
	}
	if m[4].Status.SlowScore != 1 || m[4].Status.SlowTrend == nil || m[4].Status.SlowTrend.ResultValue != 10 {
		t.Errorf("store 4 slow score/trend = %d/%+v", m[4].Status.SlowScore, m[4].Status.SlowTrend)
	}
	if m[4].Store.LastHeartbeat != 1735098083480549971 || m[4].Store.StartTimestamp != 1735095903 {
		t.Errorf("store 4 heartbeat/start = %d/%d", m[4].Store.LastHeartbeat, m[4].Store.StartTimestamp)
	}
	if leaders := m[1].Status.LeaderCount + m[4].Status.LeaderCount + m[5].Status.LeaderCount; leaders != 60 {
		t.Errorf("leaders = %d, want 60", leaders)
	}
}

func TestFixtureA5GiantRegionStores(t *testing.T) {
	m := storesOf(t, "A5-stores-v8.5.0-5tikv-healthy.json")
	if len(m) != 5 {
		t.Fatalf("stores = %d", len(m))
	}
	if m[1].Status.LeaderSize != 4943 || m[1].Status.RegionSize != 4965 || m[4].Status.RegionSize != 38 {
		t.Errorf("sizes: store 1 leader %d region %d, store 4 region %d", m[1].Status.LeaderSize, m[1].Status.RegionSize, m[4].Status.RegionSize)
	}
	if m[1].Label("host") != "host-5" || m[1].Store.NodeState != NodePreparing {
		t.Errorf("store 1 host %q node_state %d", m[1].Label("host"), m[1].Store.NodeState)
	}
	if got, want := uint64(m[1].Status.UsedSize), sized(11.13, gib); got != want {
		t.Errorf("store 1 used = %d, want %d", got, want)
	}
	if got := uint64(m[1].Status.Capacity); got != 500*gib {
		t.Errorf("store 1 capacity = %d, want 500 GiB", got)
	}
}

func TestFixtureR2Region(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fixturesDir, "R2-region-v3.x-example-pd1721.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRegion(data)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != 2 || r.ApproximateSize != 197 || r.ApproximateKeys != 714305 {
		t.Errorf("region = id %d size %d MiB keys %d", r.ID, r.ApproximateSize, r.ApproximateKeys)
	}
	if !r.HasLeader() || r.Leader.StoreID != 7 {
		t.Errorf("leader = %+v, want store 7", r.Leader)
	}
	if len(r.Peers) != 3 {
		t.Fatalf("peers = %d", len(r.Peers))
	}
	for _, p := range r.Peers {
		if !p.IsVoter() {
			t.Errorf("pre-4.0 peer %+v (no role_name) must count as voter", p)
		}
	}
	if _, ok := r.PeerOn(11); !ok {
		t.Error("no peer on store 11")
	}
	if _, ok := r.PeerOn(2); ok {
		t.Error("peer on store 2")
	}
	if r.Epoch.ConfVer != 4571 || r.Epoch.Version != 8348 || r.EndKey != "" {
		t.Errorf("epoch %+v end %q", r.Epoch, r.EndKey)
	}
}

func TestLeaderlessAndLearnerRegion(t *testing.T) {
	// PD v8 renders a region whose leader is unknown with a leader object
	// carrying only role_name; learners carry role 1.
	body := []byte(`{"id":9,"start_key":"","end_key":"74","epoch":{"conf_ver":5,"version":3},
	 "peers":[{"id":10,"store_id":1,"role_name":"Voter"},{"id":11,"store_id":2,"role_name":"Voter"},
	          {"id":12,"store_id":3,"role":1,"role_name":"Learner","is_learner":true}],
	 "leader":{"role_name":"Voter"},"approximate_size":1}`)
	r, err := DecodeRegion(body)
	if err != nil {
		t.Fatal(err)
	}
	if r.HasLeader() {
		t.Errorf("leaderless region reports a leader: %+v", r.Leader)
	}
	if p, _ := r.PeerOn(3); p.IsVoter() {
		t.Error("learner counted as voter")
	}
	noLeader, err := DecodeRegion([]byte(`{"id":4,"peers":[{"id":5,"store_id":1}]}`))
	if err != nil || noLeader.HasLeader() {
		t.Errorf("region without leader key: %v %+v", err, noLeader)
	}
}

// TestTruncatedFixtures cuts every fixture in half and at every other
// length: decoding must fail with an error naming the endpoint, never
// panic and never succeed.
func TestTruncatedFixtures(t *testing.T) {
	ctx := context.Background()
	for _, f := range fixtureFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			half := data[:len(data)/2]
			c := serveBody(t, 200, half)
			var path string
			if isRegionFixture(f) {
				_, err = c.Region(ctx, 2)
				path = "/pd/api/v1/region/id/2"
			} else {
				_, err = c.Stores(ctx)
				path = "/pd/api/v1/stores"
			}
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrDecode) {
				t.Fatalf("half body: err = %v, want a *DecodeError", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			trimmed := bytes.TrimSpace(data)
			for n := 0; n < len(trimmed); n++ {
				if isRegionFixture(f) {
					_, err = DecodeRegion(trimmed[:n])
				} else {
					_, err = DecodeStores(trimmed[:n])
				}
				if err == nil {
					t.Fatalf("prefix of %d bytes decoded without error", n)
				}
			}
		})
	}
}

func TestMalformedBodies(t *testing.T) {
	ctx := context.Background()
	cases := map[string]string{
		"not json":         `<html>proxy error</html>`,
		"wrong type":       `{"count":"x","stores":{}}`,
		"bad size string":  `{"stores":[{"store":{"id":1},"status":{"capacity":"lots"}}]}`,
		"negative size":    `{"stores":[{"store":{"id":1},"status":{"capacity":-5}}]}`,
		"bad time":         `{"stores":[{"store":{"id":1},"status":{"start_ts":"yesterday"}}]}`,
		"bad duration":     `{"stores":[{"store":{"id":1},"status":{"uptime":"long"}}]}`,
		"trailing garbage": `{"stores":[]} {"x":1}`,
		"empty":            ``,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			c := serveBody(t, 200, []byte(body))
			_, err := c.Stores(ctx)
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("err = %v, want ErrDecode", err)
			}
		})
	}
}

func FuzzDecodeStores(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixturesDir, "*.json"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil && !isRegionFixture(p) {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"stores":[{"store":{"id":1,"state_name":"Up"},"status":{"capacity":"1.953TiB"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		stores, err := DecodeStores(data)
		if err != nil {
			return
		}
		for i := range stores {
			_ = stores[i].IsTiFlash()
			_ = stores[i].Status.Capacity.String()
		}
	})
}

func FuzzDecodeRegion(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join(fixturesDir, "R2-region-v3.x-example-pd1721.json")); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"id":9,"leader":{"role_name":"Voter"},"peers":[{"id":1,"store_id":2,"role":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRegion(data)
		if err != nil {
			if r != nil {
				t.Fatal("region returned with error")
			}
			return
		}
		if r.ID == 0 {
			t.Fatal("region id 0 accepted")
		}
		_ = r.HasLeader()
		for _, p := range r.Peers {
			_ = p.IsVoter()
		}
	})
}

func FuzzParseRegionOperator(f *testing.F) {
	f.Add([]byte(`"status: RUNNING, operator: transfer-leader {transfer leader: store 1 to 2} (kind:admin,leader, region:2(5, 3))"`))
	f.Add([]byte(`"status: 5, operator: x"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		op, err := ParseRegionOperator(data)
		if err == nil && op.Status == "" {
			t.Fatal("empty status accepted")
		}
	})
}
