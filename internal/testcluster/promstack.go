package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binaries of the Debian packages `prometheus` and
// `prometheus-alertmanager` (scripts/test.sh installs them when missing).
var (
	PrometheusBins   = []string{"prometheus"}
	AlertmanagerBins = []string{"prometheus-alertmanager", "alertmanager"}
)

// lookBin finds the first of names on $PATH. Without it, the test fails
// under CI ($CI set) and is skipped otherwise, naming the package.
func lookBin(t testing.TB, pkg string, names []string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not installed (apt-get install -y %s)", strings.Join(names, " or "), pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// child runs bin with args in its own process group, output in dir/log,
// until the test ends (SIGTERM, SIGKILL after 10 s); on failure the log
// is printed. It waits until GET readyPath on addr answers 200 (30 s).
func child(t testing.TB, name, dir, bin, addr, readyPath string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
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
			t.Logf("%s log tail:\n%s", name, logTail(logPath))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("%s exited early; log:\n%s", name, logTail(logPath))
		default:
		}
		if resp, err := http.Get("http://" + addr + readyPath); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready on %s within 30s; log:\n%s", name, addr, logTail(logPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PrometheusOptions configure StartPrometheus.
type PrometheusOptions struct {
	// Targets maps a job name to the host:port targets scraped at /metrics.
	Targets map[string][]string
	// RuleFiles are rule files (paths) Prometheus evaluates.
	RuleFiles []string
	// Alertmanagers are host:port addresses alerts are sent to.
	Alertmanagers []string
	// Interval is the scrape and evaluation interval (default 1 s).
	Interval time.Duration
}

// Prometheus is a real Prometheus server started by StartPrometheus.
type Prometheus struct {
	// URL is http://127.0.0.1:PORT.
	URL string
	// Dir holds prometheus.yml, the data and prometheus.log.
	Dir string
}

// StartPrometheus runs Debian's prometheus on a free loopback port with its
// config and data in a temp dir, until the test ends. It skips the test
// when prometheus is not installed (fails under CI).
func StartPrometheus(t testing.TB, o PrometheusOptions) *Prometheus {
	t.Helper()
	bin := lookBin(t, "prometheus", PrometheusBins)
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n", o.Interval, o.Interval)
	if len(o.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range o.RuleFiles {
			fmt.Fprintf(&b, "  - %q\n", f)
		}
	}
	if len(o.Alertmanagers) > 0 {
		b.WriteString("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets:\n")
		for _, a := range o.Alertmanagers {
			fmt.Fprintf(&b, "            - %q\n", a)
		}
	}
	b.WriteString("scrape_configs:\n")
	for job, targets := range o.Targets {
		fmt.Fprintf(&b, "  - job_name: %q\n    static_configs:\n      - targets:\n", job)
		for _, tg := range targets {
			fmt.Fprintf(&b, "          - %q\n", tg)
		}
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	child(t, "prometheus", dir, bin, addr, "/-/ready",
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	return &Prometheus{URL: "http://" + addr, Dir: dir}
}

// Sample is one series of an instant query's result.
type Sample struct {
	Metric map[string]string
	// Value is the sample's value as Prometheus prints it ("1", "NaN").
	Value string
}

// Query runs an instant PromQL query (GET /api/v1/query) and returns its
// vector or scalar result. Errors: HTTP, a Prometheus error (bad PromQL),
// or a result type other than vector or scalar.
func (p *Prometheus) Query(ctx context.Context, promql string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?query="+url.QueryEscape(promql), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: HTTP %d: %w", promql, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", promql, body.Error)
	}
	switch body.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(body.Data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]Sample, len(vec))
		for i, s := range vec {
			out[i] = Sample{Metric: s.Metric, Value: fmt.Sprint(s.Value[1])}
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(body.Data.Result, &v); err != nil {
			return nil, err
		}
		return []Sample{{Value: fmt.Sprint(v[1])}}, nil
	}
	return nil, fmt.Errorf("query %q: result type %s", promql, body.Data.ResultType)
}

// AlertmanagerOptions configure StartAlertmanager.
type AlertmanagerOptions struct {
	// WebhookURL receives every alert (webhook_configs, send_resolved);
	// "" routes to a receiver without integrations.
	WebhookURL string
	// BearerToken, when set, is sent to WebhookURL.
	BearerToken string
	// GroupWait and GroupInterval of the route (defaults 1 s and 1 s);
	// RepeatInterval defaults to 1 h.
	GroupWait, GroupInterval, RepeatInterval time.Duration
}

// Alertmanager is a real Alertmanager started by StartAlertmanager.
type Alertmanager struct {
	// URL is http://127.0.0.1:PORT; Addr its host:port.
	URL, Addr string
}

// StartAlertmanager runs Debian's prometheus-alertmanager on a free
// loopback port (clustering off), its config and data in a temp dir,
// until the test ends. It skips when not installed (fails under CI).
func StartAlertmanager(t testing.TB, o AlertmanagerOptions) *Alertmanager {
	t.Helper()
	bin := lookBin(t, "prometheus-alertmanager", AlertmanagerBins)
	if o.GroupWait <= 0 {
		o.GroupWait = time.Second
	}
	if o.GroupInterval <= 0 {
		o.GroupInterval = time.Second
	}
	if o.RepeatInterval <= 0 {
		o.RepeatInterval = time.Hour
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "route:\n  receiver: operator\n  group_by: [alertname, instance]\n  group_wait: %s\n  group_interval: %s\n  repeat_interval: %s\n",
		o.GroupWait, o.GroupInterval, o.RepeatInterval)
	b.WriteString("receivers:\n  - name: operator\n")
	if o.WebhookURL != "" {
		fmt.Fprintf(&b, "    webhook_configs:\n      - url: %q\n        send_resolved: true\n", o.WebhookURL)
		if o.BearerToken != "" {
			fmt.Fprintf(&b, "        http_config:\n          authorization:\n            credentials: %q\n", o.BearerToken)
		}
	}
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	child(t, "alertmanager", dir, bin, addr, "/-/ready",
		"--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	return &Alertmanager{URL: "http://" + addr, Addr: addr}
}
