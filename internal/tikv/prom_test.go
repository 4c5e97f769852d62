package tikv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/tikvops/operator/internal/testcluster"
)

func TestPromWithoutURL(t *testing.T) {
	p, err := NewProm("  ", nil)
	if p != nil || err != nil {
		t.Fatalf("NewProm(\"\") = %v, %v; want nil, nil", p, err)
	}
	ctx := context.Background()
	if _, err := p.Query(ctx, "up", time.Now()); !errors.Is(err, ErrNoPrometheus) {
		t.Errorf("Query on nil Prom = %v", err)
	}
	if _, err := p.QueryRange(ctx, "up", time.Now().Add(-time.Minute), time.Now(), time.Second); !errors.Is(err, ErrNoPrometheus) {
		t.Errorf("QueryRange on nil Prom = %v", err)
	}
	if _, err := p.ByStore(ctx, "up", time.Now(), nil); !errors.Is(err, ErrNoPrometheus) {
		t.Errorf("ByStore on nil Prom = %v", err)
	}
}

// startPrometheus runs Debian's prometheus binary on a free loopback port
// scraping PD's /metrics every second, with its data in a temp dir. It is
// stopped (SIGTERM, then SIGKILL) when the test ends.
func startPrometheus(t *testing.T, pdURL string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("prometheus binary not installed (apt-get install -y prometheus): %v", err)
		}
		t.Skipf("prometheus not installed (apt-get install -y prometheus): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	target := strings.TrimPrefix(pdURL, "http://")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pd
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	url := "http://" + addr
	waitUntil(t, 30*time.Second, "prometheus ready", func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("prometheus exited early")
		default:
		}
		res, err := http.Get(url + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == 200, res.Status
	})
	return url
}

// TestPromRealPrometheus runs a real Prometheus scraping the test PD's
// /metrics and reads PD series back through Prom.
func TestPromRealPrometheus(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 4})
	promURL := startPrometheus(t, tc.PDURL)
	p, err := NewProm(promURL, nil)
	if err != nil || p == nil {
		t.Fatalf("NewProm = %v, %v", p, err)
	}
	ctx := context.Background()
	pdInstance := strings.TrimPrefix(tc.PDURL, "http://")

	var started float64
	waitUntil(t, 30*time.Second, "process_start_time_seconds{job=\"pd\"} scraped", func() (bool, string) {
		v, err := p.Query(ctx, `process_start_time_seconds{job="pd"}`, time.Now())
		if err != nil {
			return false, err.Error()
		}
		vec, ok := v.(model.Vector)
		if !ok || len(vec) != 1 {
			return false, fmt.Sprintf("%v", v)
		}
		started = float64(vec[0].Value)
		return string(vec[0].Metric["instance"]) == pdInstance, vec.String()
	})
	if age := time.Since(time.Unix(int64(started), 0)); age < 0 || age > 5*time.Minute {
		t.Errorf("PD start time %v is %v ago", started, age)
	}

	// PD's own view of the stores, exported as pd_cluster_status.
	waitUntil(t, 60*time.Second, "pd_cluster_status store_up_count = 3", func() (bool, string) {
		byInst, err := p.ByInstance(ctx, `pd_cluster_status{type="store_up_count"}`, time.Now())
		if err != nil {
			return false, err.Error()
		}
		return byInst[pdInstance] == 3, fmt.Sprint(byInst)
	})

	end := time.Now()
	m, err := p.QueryRange(ctx, `up{job="pd"}`, end.Add(-20*time.Second), end, time.Second)
	if err != nil || len(m) != 1 || len(m[0].Values) == 0 {
		t.Fatalf("QueryRange(up) = %v, %v", m, err)
	}
	for _, s := range m[0].Values {
		if s.Value != 1 {
			t.Errorf("up{job=pd} = %v at %v", s.Value, s.Timestamp)
		}
	}
	if _, err := p.QueryRange(ctx, "up", end, end.Add(-time.Minute), time.Second); err == nil {
		t.Error("range with end before start accepted")
	}
	if _, err := p.Query(ctx, "up{", time.Now()); err == nil || !strings.Contains(err.Error(), "up{") {
		t.Errorf("bad PromQL error = %v", err)
	}

	// ByStore maps the instance label onto stores' status addresses; PD's
	// metrics carry PD's instance, so relabel a series as if a TiKV had
	// exported it.
	stores, err := newClient(t, tc.PDURL).Stores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := stores[1].Store
	q := fmt.Sprintf(`label_replace(pd_cluster_status{type="store_up_count"}, "instance", %q, "instance", ".*")`, st.StatusAddress)
	byStore, err := p.ByStore(ctx, q, time.Now(), stores)
	if err != nil || len(byStore) != 1 || byStore[st.ID] != 3 {
		t.Errorf("ByStore = %v, %v; want {%d: 3}", byStore, err, st.ID)
	}
}
