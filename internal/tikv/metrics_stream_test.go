package tikv

import (
	"bytes"
	"compress/gzip"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// TestRegionStatusCountsGzipReusesConnection serves a /metrics body laid
// out like PD v8.1's (pd_regions_status two thirds in, ~400 KB of other
// families around it) gzip-compressed, as PD's embedded etcd does: the
// counts are read, the observer sees the compressed size, and two reads
// share one connection although the scan stops early.
func TestRegionStatusCountsGzipReusesConnection(t *testing.T) {
	var text bytes.Buffer
	for i := 0; text.Len() < 260<<10; i++ {
		text.WriteString("# HELP etcd_x_" + strings.Repeat("a", i%50) + " x\netcd_x 1\n")
	}
	text.WriteString("# TYPE pd_regions_status gauge\npd_regions_status{type=\"down-peer-region-count\"} 60004\n" +
		"pd_regions_status{type=\"pending-peer-region-count\"} 60003\n")
	for text.Len() < 400<<10 {
		text.WriteString("# HELP pd_scheduler_y y\npd_scheduler_y{store=\"1\"} 2\n")
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(text.Bytes())
	zw.Close()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || r.Header.Get("Accept-Encoding") != "gzip" {
			http.Error(w, "want GET /metrics with gzip", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz.Bytes())
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	var observed atomic.Int64
	c := newClient(t, srv.URL, pd.WithObserver(func(_, _ string, _ int, _ time.Duration, n int64) { observed.Store(n) }))
	for range 2 {
		got, err := RegionStatusCounts(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if got[CheckDownPeer] != 60004 || got[CheckPendingPeer] != 60003 {
			t.Errorf("counts %v", got)
		}
		if observed.Load() != int64(gz.Len()) {
			t.Errorf("observer saw %d bytes, the compressed body is %d (text %d)", observed.Load(), gz.Len(), text.Len())
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for two reads, want 1 (the rest of the body drained)", n)
	}
}
