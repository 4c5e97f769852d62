package tikv

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
)

func TestParseRegionStatus(t *testing.T) {
	body := []byte(`# HELP pd_regions_status Status of the regions.
# TYPE pd_regions_status gauge
pd_regions_status{type="down-peer-region-count"} 604
pd_regions_status{type="oversized-region-count"} 2
pd_regions_status{type="miss_peer_region_count"} 7
pd_regions_status{type="learner-peer-region-count"} 9
pd_regions_status{type="pending-peer-region-count"} NaN
pd_regions_status_other{type="offline-peer-region-count"} 5
`)
	got := parseRegionStatus(body)
	want := map[string]int{CheckDownPeer: 604, CheckOversizedRegion: 2, CheckMissPeer: 7}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all %v)", k, got[k], v, got)
		}
	}
}

// TestCollectorReusesHeavyLists stops one store of three (its peers are
// reported down and pending on ~2/3 of the regions): once PD's
// pd_regions_status counts match the lists, the Collector stops reading
// the two heavy lists (fewer PD check requests, same counts in the
// snapshot); the store restarted, PD's counts fall and the lists are read
// again, empty.
func TestCollectorReusesHeavyLists(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 300, StoreHeartbeat: time.Second})
	var checkReads atomic.Int64
	c := newClient(t, tc.PDURL, pd.WithObserver(func(method, path string, status int, d time.Duration, n int64) {
		if strings.Contains(path, "/regions/check/") {
			checkReads.Add(1)
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	col := NewCollector(c)
	col.HeavyRegions, col.HeavyListInterval = 100, time.Hour
	s, err := col.Collect(ctx)
	if err != nil || len(s.ReusedChecks) != 0 {
		t.Fatalf("healthy: %v reused %v", err, s.ReusedChecks)
	}
	stopped := tc.Sim.StoreIDs()[0]
	if err := tc.Sim.StopStore(stopped); err != nil {
		t.Fatal(err)
	}
	var down int
	waitUntil(t, 2*time.Minute, "the heavy lists reused", func() (bool, string) {
		before := checkReads.Load()
		s, err := col.Collect(ctx)
		if err != nil {
			return false, err.Error()
		}
		reads := checkReads.Load() - before
		down = s.CheckCount(CheckDownPeer)
		_, d := s.ReusedChecks[CheckDownPeer]
		_, p := s.ReusedChecks[CheckPendingPeer]
		return d && p && reads == int64(len(CollectChecks)-2) && down >= 150,
			"reused " + strings.Join(keys(s.ReusedChecks), ",")
	})
	// What PD lists now, against what the reused snapshot says.
	full, err := Collect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if full.CheckCount(CheckDownPeer) != down || full.CheckSummaries[CheckDownPeer].DownPeersByStore[stopped] != down {
		t.Errorf("reused count %d, PD lists %d (%v on store %d)", down, full.CheckCount(CheckDownPeer),
			full.CheckSummaries[CheckDownPeer].DownPeersByStore, stopped)
	}
	if err := tc.Sim.StartStore(stopped); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 2*time.Minute, "the lists read again, empty", func() (bool, string) {
		s, err := col.Collect(ctx)
		if err != nil {
			return false, err.Error()
		}
		return len(s.ReusedChecks) == 0 && s.CheckCount(CheckDownPeer) == 0 && s.CheckCount(CheckPendingPeer) == 0, ""
	})
}

func keys(m map[string]time.Time) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
