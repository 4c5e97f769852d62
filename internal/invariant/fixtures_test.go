package invariant

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// The files in testdata/ named like /work/shared/fixtures/ are verbatim
// copies of real PD outputs; *.snapshot.json files are small snapshots
// derived from the text captures, each saying what was constructed.

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storesSnapshot decodes a GET /pd/api/v1/stores body into a Snapshot
// whose Time is 2s after the latest heartbeat in it.
func storesSnapshot(t *testing.T, name string) *tikv.Snapshot {
	t.Helper()
	var si pd.StoresInfo
	if err := json.Unmarshal(readTestdata(t, name), &si); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	s := &tikv.Snapshot{Stores: si.Stores}
	s.Time = latestHeartbeat(s).Add(2 * time.Second)
	return s
}

func latestHeartbeat(s *tikv.Snapshot) time.Time {
	var latest time.Time
	for i := range s.Stores {
		if hb := lastHeartbeat(&s.Stores[i]); hb.After(latest) {
			latest = hb
		}
	}
	if latest.IsZero() {
		latest = time.Date(2017, 11, 1, 0, 0, 0, 0, time.UTC)
	}
	return latest
}

// snapshotFile decodes a *.snapshot.json (a tikv.Snapshot in JSON).
func snapshotFile(t *testing.T, name string) *tikv.Snapshot {
	t.Helper()
	var s tikv.Snapshot
	if err := json.Unmarshal(readTestdata(t, name), &s); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return &s
}

// evalAll evaluates invs and returns the violations by ticket key; an
// evaluation error fails the test.
func evalAll(t *testing.T, invs []Invariant, s *tikv.Snapshot, now time.Time) map[string]Violation {
	t.Helper()
	out := map[string]Violation{}
	for _, inv := range invs {
		vs, err := inv.Eval(context.Background(), s, now)
		if err != nil {
			t.Fatalf("%s: %v", inv.Name(), err)
		}
		for _, v := range vs {
			key := inv.Name() + "/" + v.Subject
			if _, dup := out[key]; dup {
				t.Errorf("%s reported twice", key)
			}
			if v.Summary == "" || v.Severity == "" {
				t.Errorf("%s: empty summary or severity: %+v", key, v)
			}
			if _, err := v.Observation(inv.Name()); err != nil {
				t.Errorf("%s: %v", key, err)
			}
			out[key] = v
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// evidence returns v.Evidence[k] round-tripped through JSON, as a ticket
// reader sees it.
func evidence(t *testing.T, v Violation, k string) any {
	t.Helper()
	raw, err := json.Marshal(v.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	val, ok := m[k]
	if !ok {
		t.Fatalf("evidence of %s has no %q: %s", v.Subject, k, raw)
	}
	return val
}

func TestFixtures(t *testing.T) {
	a5Giant := func(t *testing.T) *tikv.Snapshot {
		// A5: stores 1/5/7 have region_size ~4963 MiB vs 38 on 4/6 with
		// the same region_count: one ~4.9 GiB region on 1/5/7, leader on
		// store 1 (leader_size 4943). The region itself is constructed
		// from those numbers; the R2 region (197 MiB, pd#1721) is verbatim.
		s := storesSnapshot(t, "A5-stores-v8.5.0-5tikv-healthy.json")
		var r2 pd.Region
		if err := json.Unmarshal(readTestdata(t, "R2-region-v3.x-example-pd1721.json"), &r2); err != nil {
			t.Fatal(err)
		}
		giant := pd.Region{ID: 4803248, Peers: []pd.Peer{{ID: 11, StoreID: 1}, {ID: 12, StoreID: 5}, {ID: 13, StoreID: 7}},
			Leader: pd.Peer{ID: 11, StoreID: 1}, ApproximateSize: 4925, ApproximateKeys: 40_000_000}
		s.Checks = map[string][]pd.Region{tikv.CheckOversizedRegion: {r2, giant}}
		return s
	}
	tests := []struct {
		name  string
		snap  func(t *testing.T) *tikv.Snapshot
		want  []string
		check func(t *testing.T, got map[string]Violation)
	}{
		{
			name: "A1 store 1 low on space at low-space-ratio 0.8",
			snap: func(t *testing.T) *tikv.Snapshot {
				s := storesSnapshot(t, "A1-stores-v3.0.1-before-scalein-lowspace-store1.json")
				s.Schedule.LowSpaceRatio = 0.8
				return s
			},
			// Store 1 holds nothing because it is low on space (region_score
			// 1073738348 is PD's low-space penalty): the imbalances are real.
			want: []string{"leader_imbalance/cluster", "region_imbalance/cluster", "store_low_space/store:1"},
			check: func(t *testing.T, got map[string]Violation) {
				v := got["store_low_space/store:1"]
				if r := evidence(t, v, "available_ratio").(float64); r >= 0.2 || r < 0.199 {
					t.Errorf("available_ratio = %v, want just under 0.2", r)
				}
				if evidence(t, v, "low_space_ratio").(float64) != 0.8 || evidence(t, v, "pd_would_exempt").(bool) {
					t.Errorf("evidence %v", v.Evidence)
				}
				if evidence(t, v, "low_space_ratio_source") != "pd schedule.low-space-ratio" {
					t.Errorf("ratio source %v", v.Evidence["low_space_ratio_source"])
				}
				li := got["leader_imbalance/cluster"]
				if evidence(t, li, "max_store_id").(float64) != 5 || evidence(t, li, "min_store_id").(float64) != 1 {
					t.Errorf("leader imbalance evidence %v", li.Evidence)
				}
			},
		},
		{
			name: "A2 store 2001 Offline: the drain cannot finish with store 1 low on space",
			snap: func(t *testing.T) *tikv.Snapshot {
				s := storesSnapshot(t, "A2-stores-v3.0.1-after-delete-offline.json")
				s.Replication.MaxReplicas = 3
				return s
			},
			want: []string{"leader_imbalance/cluster", "region_imbalance/cluster", "store_low_space/store:1", "store_offline_stuck/store:2001"},
			check: func(t *testing.T, got map[string]Violation) {
				v := got["store_offline_stuck/store:2001"]
				if v.Severity != ticket.Critical || !evidence(t, v, "cannot_finish").(bool) {
					t.Errorf("want critical cannot_finish, got %s %v", v.Severity, v.Evidence)
				}
				if evidence(t, v, "region_count").(float64) != 20 || evidence(t, v, "max_replicas").(float64) != 3 ||
					evidence(t, v, "up_tikv_stores").(float64) != 3 || evidence(t, v, "target_tikv_stores").(float64) != 2 {
					t.Errorf("evidence %v", v.Evidence)
				}
			},
		},
		{
			name: "01a two stores, one Down one Offline",
			snap: func(t *testing.T) *tikv.Snapshot {
				return storesSnapshot(t, "01a-stores-2node-offline-stuck-2017.json")
			},
			// Store 4 is Offline and stopped heartbeating in 2017: its drain
			// cannot finish (store_offline_blocked, critical).
			want: []string{"store_down/store:1", "store_offline_blocked/store:4", "up_stores_below_max_replicas/cluster"},
			check: func(t *testing.T, got map[string]Violation) {
				if v := got["store_offline_blocked/store:4"]; v.Severity != ticket.Critical || v.Evidence["heartbeat_stopped"] != true {
					t.Errorf("store_offline_blocked %v", v)
				}
				if v := got["store_down/store:1"]; v.Severity != ticket.Emergency {
					t.Errorf("store_down severity %s", v.Severity)
				}
				v := got["up_stores_below_max_replicas/cluster"]
				if v.Severity != ticket.Critical || evidence(t, v, "replica_holding_tikv_stores").(float64) != 0 ||
					evidence(t, v, "max_replicas").(float64) != 3 {
					t.Errorf("evidence %v", v.Evidence)
				}
			},
		},
		{
			name: "A4 healthy, TiFlash store 20 excluded from balance",
			snap: func(t *testing.T) *tikv.Snapshot { return storesSnapshot(t, "A4-stores-v8.1.0-k8s-healthy.json") },
			want: nil,
		},
		{
			name: "A5 healthy stores but one giant region",
			snap: a5Giant,
			want: []string{"region_oversized/region:2", "region_oversized/region:4803248"},
			check: func(t *testing.T, got map[string]Violation) {
				v := got["region_oversized/region:4803248"]
				if evidence(t, v, "approximate_size_mib").(float64) != 4925 || evidence(t, v, "leader_store_id").(float64) != 1 {
					t.Errorf("evidence %v", v.Evidence)
				}
			},
		},
		{
			name: "19 capacity 0B and 12 KiB",
			snap: func(t *testing.T) *tikv.Snapshot { return snapshotFile(t, "19-capacity-lies.snapshot.json") },
			// Store 3844 has no space at all, so it is also low on space (PD
			// says the same: "no available space") and gets no regions.
			want: []string{"leader_imbalance/cluster", "region_imbalance/cluster",
				"store_capacity_suspect/store:3844", "store_capacity_suspect/store:4", "store_low_space/store:3844"},
			check: func(t *testing.T, got map[string]Violation) {
				if r := evidence(t, got["store_capacity_suspect/store:4"], "reason"); r != "capacity 0 B" {
					t.Errorf("store 4 reason %v", r)
				}
				v := got["store_capacity_suspect/store:3844"]
				if evidence(t, v, "capacity_bytes").(float64) != 12*1024 || evidence(t, v, "reason") != "capacity far below the median" {
					t.Errorf("evidence %v", v.Evidence)
				}
			},
		},
		{
			name: "07 no leaders with leftover evict-leader schedulers",
			snap: func(t *testing.T) *tikv.Snapshot { return snapshotFile(t, "07-no-leaders-evict-leader.snapshot.json") },
			want: []string{"store_no_leaders/store:1", "store_no_leaders/store:4", "store_no_leaders/store:5"},
			check: func(t *testing.T, got map[string]Violation) {
				v := got["store_no_leaders/store:1"]
				if !evidence(t, v, "evict_leader_scheduler").(bool) || evidence(t, v, "region_count").(float64) != 19 {
					t.Errorf("evidence %v", v.Evidence)
				}
				scheds := evidence(t, v, "evict_schedulers").([]any)
				if len(scheds) != 3 {
					t.Errorf("evict schedulers %v", scheds)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.snap(t)
			invs := Default(DefaultConfig())
			got := evalAll(t, invs, s, s.Time)
			if !slices.Equal(keys(got), tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Fatalf("violations = %v, want %v", keys(got), tt.want)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

// TestFixtureA4TiFlashWouldSkew shows that A4 holds only because TiFlash is
// excluded: counting TiFlash store 20 (0 leaders) would break the rule.
func TestFixtureA4TiFlashWouldSkew(t *testing.T) {
	s := storesSnapshot(t, "A4-stores-v8.1.0-k8s-healthy.json")
	inv := &Imbalance{base: base{name: NameLeaderImbalance}, Kind: Leaders, Ratio: DefaultLeaderImbalanceRatio, MinDiff: DefaultLeaderImbalanceMinDiff}
	if vs, err := inv.Eval(context.Background(), s, s.Time); err != nil || len(vs) != 0 {
		t.Fatalf("A4: %v %v", vs, err)
	}
	for i := range s.Stores {
		s.Stores[i].Store.Labels = nil // TiFlash now looks like TiKV
	}
	vs, err := inv.Eval(context.Background(), s, s.Time)
	if err != nil || len(vs) != 1 {
		t.Fatalf("A4 without engine label: %v %v", vs, err)
	}
	if vs[0].Evidence["min_store_id"] != uint64(20) {
		t.Errorf("min store %v", vs[0].Evidence)
	}
}
