package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/pd"
)

// fakePD serves GET /pd/api/v1/stores with n Up TiKV stores (8 per host,
// 3 zones), every ~97th store Disconnected, and answers PD's router 404
// ("404 page not found": the route does not exist on this version) for
// every other read, so that `operator check` evaluates every invariant
// over the stores. Synthetic: only the check's own cost is measured.
func fakePD(tb testing.TB, n int) *httptest.Server {
	tb.Helper()
	now := time.Now()
	stores := make([]pd.StoreInfo, n)
	for i := range stores {
		id := uint64(i + 1)
		state, hb := pd.StateUp, now
		if i%97 == 5 {
			state, hb = pd.StateDisconnected, now.Add(-time.Minute)
		}
		stores[i] = pd.StoreInfo{
			Store: pd.StoreMeta{ID: id, Address: "tikv-" + strconv.Itoa(i) + ":20160", StateName: state, LastHeartbeat: hb.UnixNano(),
				StartTimestamp: now.Add(-time.Hour).Unix(), Version: "8.5.0",
				Labels: []pd.Label{{Key: "zone", Value: "z" + strconv.Itoa(i%3)}, {Key: "host", Value: "h" + strconv.Itoa(i/8)}}},
			Status: pd.StoreStatus{Capacity: 1 << 40, Available: 600 << 30, UsedSize: 400 << 30,
				LeaderCount: 100 + i%7, LeaderWeight: 1, LeaderScore: float64(100 + i%7), RegionCount: 300 + i%5, RegionWeight: 1,
				RegionScore: 300, StartTS: now.Add(-time.Hour), LastHeartbeatTS: hb},
		}
	}
	body, err := json.Marshal(pd.StoresInfo{Count: n, Stores: stores})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
		if r.URL.Path == "/pd/api/v1/stores" {
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Query().Get("state") != "" {
				_, _ = w.Write([]byte(`{"count":0,"stores":[]}`))
				return
			}
			_, _ = w.Write(body)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("404 page not found\n"))
	}))
	tb.Cleanup(srv.Close)
	return srv
}

func runCheck(tb testing.TB, url string) error {
	ios, _, _, _ := iostreams.Test()
	opts := &CheckOptions{IO: ios, Timeout: time.Minute, Now: time.Now, Format: cmdutil.FormatJSON,
		Config: func() (config.Config, error) {
			cfg := config.Default()
			cfg.PD.Endpoints = []string{url}
			return cfg, nil
		},
		PDClient: func(cfg config.Config) (*pd.Client, error) { return pd.New(cfg.PD.Endpoints) },
	}
	err := checkRun(context.Background(), opts)
	if err != nil && !errors.Is(err, cmdutil.ErrViolations) && !errors.Is(err, cmdutil.ErrNotEvaluated) {
		tb.Fatalf("check: %v", err)
	}
	return err
}

// BenchmarkCheckStores times `operator check` (one read of the cluster,
// every invariant) over 1k, 20k and 60k synthetic stores (issue 17: the
// time must grow linearly with the stores; it grew with their square).
//
//	go test -run '^$' -bench BenchmarkCheckStores -benchtime 3x ./internal/cli/check/
func BenchmarkCheckStores(b *testing.B) {
	for _, n := range []int{1000, 20000, 60000} {
		b.Run(fmt.Sprintf("stores=%d", n), func(b *testing.B) {
			srv := fakePD(b, n)
			b.ResetTimer()
			for b.Loop() {
				runCheck(b, srv.URL)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/store")
		})
	}
}
