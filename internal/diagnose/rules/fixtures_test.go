package rules_test

// The rules backend over real PD outputs: the store lists and snapshots
// of package invariant's testdata (verbatim PD answers from
// /work/shared/fixtures, PD 2.x to 8.5, and snapshots derived from the
// text captures). Every violation the invariants report is turned into a
// ticket and a context the way the monitor and the gatherer would, and
// diagnosed.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

const invariantTestdata = "../../invariant/testdata"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(invariantTestdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storesFixture decodes a GET /pd/api/v1/stores body into a snapshot
// taken 2 s after its latest heartbeat.
func storesFixture(t *testing.T, name string) *tikv.Snapshot {
	t.Helper()
	var si pd.StoresInfo
	if err := json.Unmarshal(readFixture(t, name), &si); err != nil {
		t.Fatal(err)
	}
	s := &tikv.Snapshot{Stores: si.Stores}
	var latest time.Time
	for _, st := range s.Stores {
		hb := st.Status.LastHeartbeatTS
		if st.Store.LastHeartbeat > 0 {
			hb = time.Unix(0, st.Store.LastHeartbeat)
		}
		if hb.After(latest) {
			latest = hb
		}
	}
	if latest.IsZero() {
		latest = time.Date(2017, 11, 1, 0, 0, 0, 0, time.UTC)
	}
	s.Time = latest.Add(2 * time.Second)
	return s
}

func snapshotFixture(t *testing.T, name string) *tikv.Snapshot {
	t.Helper()
	var s tikv.Snapshot
	if err := json.Unmarshal(readFixture(t, name), &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// fixtureContext builds what the gatherer would: every store, the
// configuration and schedulers (PD's defaults when the capture has none),
// and the regions PD's checks flag.
func fixtureContext(s *tikv.Snapshot) *diagnose.Context {
	c := &diagnose.Context{
		Time: s.Time, Stores: s.Stores, Schedule: s.Schedule, Replication: s.Replication,
		Schedulers: s.Schedulers, PausedSchedulers: s.PausedSchedulers, EvictLeaderStores: s.EvictLeaderStores,
		Operators: []pd.Operator{}, Snapshot: s,
	}
	if c.Schedulers == nil {
		c.Schedulers = []string{"balance-hot-region-scheduler", "balance-leader-scheduler", "balance-region-scheduler", "evict-slow-store-scheduler"}
	}
	if c.Schedule.LeaderScheduleLimit == 0 {
		c.Schedule.LeaderScheduleLimit, c.Schedule.RegionScheduleLimit, c.Schedule.ReplicaScheduleLimit = 4, 2048, 64
	}
	seen := map[uint64]bool{}
	names := make([]string, 0, len(s.Checks))
	for n := range s.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, r := range s.Checks[n] {
			if !seen[r.ID] {
				seen[r.ID] = true
				c.Regions = append(c.Regions, r)
			}
		}
	}
	return c
}

func TestFixtures(t *testing.T) {
	a5 := func(t *testing.T) *tikv.Snapshot {
		s := storesFixture(t, "A5-stores-v8.5.0-5tikv-healthy.json")
		var r2 pd.Region
		if err := json.Unmarshal(readFixture(t, "R2-region-v3.x-example-pd1721.json"), &r2); err != nil {
			t.Fatal(err)
		}
		giant := pd.Region{ID: 4803248, Peers: []pd.Peer{{ID: 11, StoreID: 1}, {ID: 12, StoreID: 5}, {ID: 13, StoreID: 7}},
			Leader: pd.Peer{ID: 11, StoreID: 1}, ApproximateSize: 4925, ApproximateKeys: 40_000_000}
		s.Checks = map[string][]pd.Region{tikv.CheckOversizedRegion: {r2, giant}}
		return s
	}
	// want maps a ticket key to "action param=value" or "" (no action).
	tests := []struct {
		name string
		snap func(t *testing.T) *tikv.Snapshot
		want map[string]string
	}{
		{"A1 v3.0.1 store 1 low on space", func(t *testing.T) *tikv.Snapshot {
			s := storesFixture(t, "A1-stores-v3.0.1-before-scalein-lowspace-store1.json")
			s.Schedule.LowSpaceRatio = 0.8
			return s
		}, map[string]string{
			"leader_imbalance/cluster": "", "region_imbalance/cluster": "", "store_low_space/store:1": "",
		}},
		{"A2 v3.0.1 store 2001 Offline, cannot finish", func(t *testing.T) *tikv.Snapshot {
			s := storesFixture(t, "A2-stores-v3.0.1-after-delete-offline.json")
			s.Replication.MaxReplicas = 3
			return s
		}, map[string]string{
			"leader_imbalance/cluster": "", "region_imbalance/cluster": "", "store_low_space/store:1": "",
			"store_offline_stuck/store:2001": "cancel_drain store_id=2001",
		}},
		{"01a 2017 one Down one Offline", func(t *testing.T) *tikv.Snapshot {
			return storesFixture(t, "01a-stores-2node-offline-stuck-2017.json")
		}, map[string]string{
			// Store 4 never reported a heartbeat: its data may be gone, so
			// cancel_drain is refused (fail closed on the missing input).
			"store_down/store:1": "", "up_stores_below_max_replicas/cluster": "", "store_offline_blocked/store:4": "",
		}},
		{"A5 v8.5.0 one giant region", a5, map[string]string{
			"region_oversized/region:2": "split_region region_id=2", "region_oversized/region:4803248": "split_region region_id=4803248",
		}},
		{"19 capacity 0B and 12 KiB", func(t *testing.T) *tikv.Snapshot { return snapshotFixture(t, "19-capacity-lies.snapshot.json") },
			map[string]string{
				"leader_imbalance/cluster": "", "region_imbalance/cluster": "", "store_capacity_suspect/store:3844": "",
				"store_capacity_suspect/store:4": "", "store_low_space/store:3844": "",
			}},
		{"07 v3.0 leftover evict-leader schedulers", func(t *testing.T) *tikv.Snapshot {
			return snapshotFixture(t, "07-no-leaders-evict-leader.snapshot.json")
		}, map[string]string{
			"store_no_leaders/store:1": "remove_evict_leader store_id=1",
			"store_no_leaders/store:4": "remove_evict_leader store_id=4",
			"store_no_leaders/store:5": "remove_evict_leader store_id=5",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.snap(t)
			var keys []string
			for _, inv := range invariant.Default(invariant.DefaultConfig()) {
				vs, err := inv.Eval(context.Background(), s, s.Time)
				if err != nil {
					t.Fatalf("%s: %v", inv.Name(), err)
				}
				for _, v := range vs {
					c := fixtureContext(s)
					c.Ticket = ticketOf(t, inv.Name(), v)
					keys = append(keys, c.Ticket.Key)
					want, ok := tt.want[c.Ticket.Key]
					if !ok {
						t.Errorf("unexpected ticket %s", c.Ticket.Key)
						continue
					}
					d := run(t, c)
					if got := proposalText(d); got != want {
						t.Errorf("%s: proposal %q, want %q (no action: %s)", c.Ticket.Key, got, want, d.NoActionReason)
					}
				}
			}
			sort.Strings(keys)
			var wantKeys []string
			for k := range tt.want {
				wantKeys = append(wantKeys, k)
			}
			sort.Strings(wantKeys)
			if !slices.Equal(keys, wantKeys) {
				t.Errorf("tickets %v, want %v", keys, wantKeys)
			}
		})
	}
}

// proposalText renders a proposal as "action k=v ..." with sorted keys,
// "" for none.
func proposalText(d *diagnose.Diagnosis) string {
	if d.ProposedAction == nil {
		return ""
	}
	var p map[string]any
	_ = json.Unmarshal(d.ProposedAction.Params, &p)
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := d.ProposedAction.ActionType
	for _, k := range keys {
		if k == "policy" {
			continue
		}
		b, _ := json.Marshal(p[k])
		out += " " + k + "=" + string(b)
	}
	return out
}
