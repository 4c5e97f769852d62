package invariant

import (
	"errors"
	"slices"
	"testing"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// cpuSnap is three Up stores with the given write-path CPU (cores) and
// as-leader hot write bytes/s and keys/s per store.
func cpuSnap(cpu, bytes, keys [3]float64) *tikv.Snapshot {
	s := snap(store(1, 10, 30), store(2, 10, 30), store(3, 10, 30))
	s.StoreCPU = map[uint64]float64{}
	s.HotWrite.AsLeader = map[string]pd.HotPeersStat{}
	for i := range 3 {
		id := uint64(i + 1)
		s.StoreCPU[id] = cpu[i]
		s.HotWrite.AsLeader[idKey(id)] = pd.HotPeersStat{TotalBytesRate: bytes[i], TotalKeysRate: keys[i], Count: 2,
			Stats: []pd.HotPeerStat{{StoreID: id, RegionID: 100 + id, ByteRate: bytes[i], KeyRate: keys[i]}}}
	}
	return s
}

func TestHotWriteCPUImbalance(t *testing.T) {
	inv := one(t, DefaultConfig(), NameHotWriteCPUImbalance)
	even := [3]float64{20e6, 20.2e6, 19.9e6}
	evenKeys := [3]float64{64000, 63500, 64100}
	cases := []struct {
		name             string
		cpu, bytes, keys [3]float64
		want             []string
	}{
		// hot-write-cpu-imbalance-v4.0: 6.82 against 2.11 / 2.05 cores.
		{"cpu 3x, flows even", [3]float64{6.82, 2.11, 2.05}, even, evenKeys, []string{"store:1"}},
		{"cpu even", [3]float64{2.1, 2.0, 2.2}, even, evenKeys, []string{}},
		{"just under 2x", [3]float64{3.9, 2.0, 2.0}, even, evenKeys, []string{}},
		{"idle cluster: 2x but below 1 core", [3]float64{0.5, 0.2, 0.2}, even, evenKeys, []string{}},
		// PD sees the bytes: hot_write_store's business, not this one's.
		{"bytes uneven", [3]float64{6, 2, 2}, [3]float64{60e6, 20e6, 20e6}, evenKeys, []string{}},
		{"keys uneven", [3]float64{6, 2, 2}, even, [3]float64{200000, 64000, 64000}, []string{}},
		{"no hot write at all", [3]float64{6, 2, 2}, [3]float64{}, [3]float64{}, []string{"store:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := subjects(eval(t, inv, cpuSnap(c.cpu, c.bytes, c.keys), t0))
			if !slices.Equal(got, c.want) {
				t.Errorf("subjects = %v, want %v", got, c.want)
			}
		})
	}

	vs := eval(t, inv, cpuSnap([3]float64{6.82, 2.11, 2.05}, even, evenKeys), t0)
	ev := vs[0].Evidence
	if ev["store_id"] != uint64(1) || ev["median_other_cpu_cores"] != 2.08 || ev["cpu_query"] != tikv.StoreCPUQuery {
		t.Errorf("evidence = %v", ev)
	}
	if ids := ev["hottest_region_ids"].([]uint64); !slices.Equal(ids, []uint64{101}) {
		t.Errorf("hottest regions = %v", ids)
	}

	// Without Prometheus it holds; a failed Prometheus read is an error,
	// not a silent pass.
	s := cpuSnap([3]float64{6.82, 2.11, 2.05}, even, evenKeys)
	s.StoreCPU = nil
	if got := eval(t, inv, s, t0); len(got) != 0 {
		t.Errorf("without Prometheus: %v", got)
	}
	s.Errors = map[string]error{tikv.SourceStoreCPU: errors.New("connection refused")}
	if _, err := inv.Eval(t.Context(), s, t0); !errors.Is(err, ErrSourceUnavailable) {
		t.Errorf("failed Prometheus read: err = %v", err)
	}

	// A Disconnected store and a store without a sample take no part.
	s = cpuSnap([3]float64{6.82, 2.11, 2.05}, even, evenKeys)
	s.Stores[1].Store.StateName = pd.StateDisconnected
	delete(s.StoreCPU, 3)
	if got := eval(t, inv, s, t0); len(got) != 0 {
		t.Errorf("one comparable store: %v", got)
	}
}
