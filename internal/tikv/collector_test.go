package tikv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
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

// TestScanRegionStatusStopsAfterFamily: the scan leaves the body at the
// first line after the pd_regions_status family (a reader failing past it
// is never reached) and skips lines longer than its buffer.
func TestScanRegionStatusStopsAfterFamily(t *testing.T) {
	body := "# HELP a_long x\na_long{l=\"" + strings.Repeat("x", 3*metricsLineBuf) + "\"} 1\n" +
		"# TYPE pd_regions_status gauge\n" +
		"pd_regions_status{type=\"down-peer-region-count\"} 58876\n" +
		"pd_regions_status{type=\"pending-peer-region-count\"} 58875\n" +
		"# HELP pd_schedule_x y\n"
	r := bufio.NewReaderSize(io.MultiReader(strings.NewReader(body), iotest.ErrReader(errors.New("read past the family"))), metricsLineBuf)
	out := map[string]int{}
	if err := scanRegionStatus(r, out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[CheckDownPeer] != 58876 || out[CheckPendingPeer] != 58875 {
		t.Errorf("got %v", out)
	}
	// Without the family: read to the end, nothing found, no error.
	out = map[string]int{}
	if err := scanRegionStatus(bufio.NewReader(strings.NewReader("# HELP a b\na 1")), out); err != nil || len(out) != 0 {
		t.Errorf("got %v, %v", out, err)
	}
}

// TestCollectorReusesHeavyLists stops one store of three (its peers are
// reported down and pending on ~2/3 of the regions): the Collector then
// reads PD's pd_regions_status counts (GET /metrics, streamed gzip) and
// stops reading the two heavy lists (fewer PD check requests), while the
// snapshot's counts are PD's and the per-store breakdown is the last
// read's; once PD's counts settle, they equal what PD lists. The store
// restarted, PD's counts fall below the threshold and the lists are read
// again, empty.
func TestCollectorReusesHeavyLists(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 300, StoreHeartbeat: time.Second})
	var checkReads, metricsReads, metricsBytes atomic.Int64
	c := newClient(t, tc.PDURL, pd.WithObserver(func(method, path string, status int, d time.Duration, n int64) {
		if strings.Contains(path, "/regions/check/") {
			checkReads.Add(1)
		}
		if strings.HasSuffix(path, "{raw}") {
			metricsReads.Add(1)
			metricsBytes.Add(n)
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	col := NewCollector(c)
	col.HeavyRegions, col.HeavyListInterval = 100, time.Hour
	s, err := col.Collect(ctx)
	if err != nil || len(s.ReusedChecks) != 0 || metricsReads.Load() != 0 {
		t.Fatalf("healthy: %v reused %v, /metrics read %d times", err, s.ReusedChecks, metricsReads.Load())
	}
	stopped := tc.Sim.StoreIDs()[0]
	if err := tc.Sim.StopStore(stopped); err != nil {
		t.Fatal(err)
	}
	var down int
	var last *Snapshot
	waitUntil(t, 2*time.Minute, "the heavy lists reused with PD's settled count", func() (bool, string) {
		before := checkReads.Load()
		s, err := col.Collect(ctx)
		if err != nil {
			return false, err.Error()
		}
		reads := checkReads.Load() - before
		down = s.CheckCount(CheckDownPeer)
		_, d := s.ReusedChecks[CheckDownPeer]
		_, p := s.ReusedChecks[CheckPendingPeer]
		if !d || !p || reads != int64(len(CollectChecks)-2) || down < 150 {
			return false, "reused " + strings.Join(keys(s.ReusedChecks), ",")
		}
		// What PD lists now, against what the reused snapshot says.
		full, err := Collect(ctx, c)
		if err != nil {
			return false, err.Error()
		}
		last = s
		return full.CheckCount(CheckDownPeer) == down && full.CheckSummaries[CheckDownPeer].DownPeersByStore[stopped] == down,
			fmt.Sprintf("reused count %d, PD lists %d", down, full.CheckCount(CheckDownPeer))
	})
	if by := last.CheckSummaries[CheckDownPeer].DownPeersByStore; by[stopped] == 0 || len(last.Checks[CheckDownPeer]) == 0 {
		t.Errorf("reused breakdown %v, %d kept regions", by, len(last.Checks[CheckDownPeer]))
	}
	if n := metricsReads.Load(); n == 0 || metricsBytes.Load()/n > 100<<10 {
		t.Errorf("/metrics: %d reads, %d bytes each on the wire (want gzip, < 100 KB)", n, metricsBytes.Load()/max(n, 1))
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
