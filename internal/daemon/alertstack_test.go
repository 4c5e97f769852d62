package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/notify"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
)

// officialAlert is the official PD rule the test fires: PD reports a
// stopped store in pd_cluster_status{type="store_disconnected_count"} 20 s
// after its last heartbeat, from PD's own /metrics (no TiKV metrics
// needed). It maps to the operator's store_disconnected invariant.
const officialAlert = "PD_cluster_lost_connect_tikv_nums"

// alertFor is the `for:` of officialAlert in the test's copy of the rules
// (officially 1m) and the operator's store_disconnected `for` (default
// 1m): equal on both sides, short to keep the test under ~90 s.
const alertFor = 10 * time.Second

// copyRules copies the official rule files (../shared/alert-rules) into
// dir, rewriting only officialAlert's `for: 1m` to alertFor. Both files
// are evaluated; the TiKV rules need TiKV's metrics and stay silent.
func copyRules(t *testing.T, dir string) []string {
	t.Helper()
	src := filepath.Join("..", "..", "..", "shared", "alert-rules")
	files, err := filepath.Glob(filepath.Join(src, "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("official alert rules not found in %s: %v", src, err)
	}
	var out []string
	rewritten := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if i := strings.Index(s, "- alert: "+officialAlert+"\n"); i >= 0 {
			j := strings.Index(s[i:], "for: 1m\n")
			if j < 0 {
				t.Fatalf("%s: %s has no `for: 1m`", f, officialAlert)
			}
			s = s[:i+j] + "for: " + alertFor.String() + "\n" + s[i+j+len("for: 1m\n"):]
			rewritten = true
		}
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, dst)
	}
	if !rewritten {
		t.Fatalf("no rule %s in %v", officialAlert, files)
	}
	return out
}

// hookRecorder is a local webhook receiver that verifies the operator's
// HMAC signature of each delivery.
type hookRecorder struct {
	mu     sync.Mutex
	kinds  []string
	forged int
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !notify.VerifySignature([]byte("hook-secret"), b, r.Header.Get(notify.HeaderSignature)) {
		h.forged++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.kinds = append(h.kinds, r.Header.Get(notify.HeaderKind))
}

// TestOfficialAlertsRealPrometheus runs the operator in-process on a real
// PD with simulated stores, a real Prometheus evaluating PingCAP's official
// rule files against PD's /metrics (and scraping the daemon's /metrics),
// and a real Alertmanager whose webhook is the daemon's
// POST /api/v1/alerts/alertmanager. A stopped store makes both the
// operator's store_disconnected ticket and the official
// PD_cluster_lost_connect_tikv_nums alert; the alert's ticket is linked
// under the operator's: one incident. The test logs store stop → operator
// ticket and store stop → the alert's arrival (docs/alerting.md). Then
// every panel query of deploy/grafana/operator.json returns data from that
// Prometheus.
func TestOfficialAlertsRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("real Prometheus and Alertmanager: ~60 s")
	}
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 2})
	hooks := &hookRecorder{}
	hookSrv := httptest.NewServer(hooks)
	t.Cleanup(hookSrv.Close)

	cfg := testConfig(t, c.PDURL)
	cfg.Invariants.For = map[string]time.Duration{invariant.NameStoreDisconnected: alertFor}
	cfg.Notify.Webhooks = []config.WebhookSink{{Name: "hook", URL: hookSrv.URL, Secret: "hook-secret"}}
	addr := make(chan string, 1)
	d, err := New(Options{Config: cfg, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnListen: func(a string) { addr <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() { _ = d.Run(ctx); close(exited) }()
	t.Cleanup(func() { cancel(); <-exited })
	var daemonAddr string
	select {
	case daemonAddr = <-addr:
	case <-exited:
		t.Fatal("daemon exited")
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon's HTTP server did not start")
	}

	am := testcluster.StartAlertmanager(t, testcluster.AlertmanagerOptions{
		WebhookURL: "http://" + daemonAddr + "/api/v1/alerts/alertmanager"})
	prom := testcluster.StartPrometheus(t, testcluster.PrometheusOptions{
		Targets: map[string][]string{
			"pd":       {strings.TrimPrefix(c.PDURL, "http://")},
			"operator": {daemonAddr},
		},
		RuleFiles:     copyRules(t, t.TempDir()),
		Alertmanagers: []string{am.Addr},
	})
	qctx, qcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer qcancel()
	// The pipeline is live: both targets up, PD's store metrics and the
	// etcd leader series the official rules join on.
	for _, q := range []string{`up{job="pd"} == 1`, `up{job="operator"} == 1`,
		`pd_cluster_status{type="store_up_count"} == 3`, `sum(etcd_server_is_leader) by (instance) > 0`} {
		waitFor(t, q, 30*time.Second, func() bool {
			s, err := prom.Query(qctx, q)
			return err == nil && len(s) > 0
		})
	}

	st, err := store.Open(context.Background(), cfg.Database.Path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := c.Sim.StoreIDs()
	victim := ids[len(ids)-1]
	subject := invariant.StoreSubject(victim)
	stopped := time.Now()
	if err := c.Sim.StopStore(victim); err != nil {
		t.Fatal(err)
	}
	var own, alert ticket.Ticket
	var toOwn, toAlert time.Duration
	waitFor(t, "the operator's ticket and the official alert", 80*time.Second, func() bool {
		ts, err := st.Tickets(context.Background(), store.TicketFilter{})
		if err != nil {
			return false
		}
		for _, tk := range ts {
			switch {
			case own.ID == 0 && tk.Invariant == invariant.NameStoreDisconnected && tk.Subject == subject:
				own, toOwn = tk, time.Since(stopped)
			case alert.ID == 0 && tk.Invariant == "alert:"+officialAlert:
				alert, toAlert = tk, time.Since(stopped)
			}
		}
		return own.ID != 0 && alert.ID != 0
	})
	t.Logf("store %d stopped: operator's %s ticket %d after %.1fs; official %s arrived at the daemon (ticket %d) after %.1fs",
		victim, invariant.NameStoreDisconnected, own.ID, toOwn.Seconds(), officialAlert, alert.ID, toAlert.Seconds())

	// One incident: the alert's ticket is linked under the operator's.
	waitFor(t, "the alert ticket linked to the operator's ticket", 10*time.Second, func() bool {
		root, err := st.TicketRoot(context.Background(), alert.ID)
		return err == nil && root == own.ID
	})
	var ev struct {
		Source string
		MapsTo string `json:"maps_to"`
		Labels map[string]string
	}
	if err := json.Unmarshal(alert.FirstEvidence, &ev); err != nil || ev.Source != "alertmanager" || ev.MapsTo != invariant.NameStoreDisconnected ||
		ev.Labels["instance"] != strings.TrimPrefix(c.PDURL, "http://") {
		t.Errorf("alert ticket evidence %s (%v)", alert.FirstEvidence, err)
	}
	if ts, _ := st.Tickets(context.Background(), store.TicketFilter{}); countInv(ts, "alert:"+officialAlert) != 1 {
		t.Errorf("the alert made %d tickets, want 1", countInv(ts, "alert:"+officialAlert))
	}
	// The webhook sink delivered signed events about both tickets.
	waitFor(t, "signed webhook deliveries", 10*time.Second, func() bool {
		hooks.mu.Lock()
		defer hooks.mu.Unlock()
		return countStr(hooks.kinds, "ticket_opened") >= 2
	})
	if hooks.forged != 0 {
		t.Errorf("%d webhook deliveries failed HMAC verification", hooks.forged)
	}

	t.Run("GrafanaPanels", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "operator.json"))
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			Panels []struct {
				Title   string
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(b, &dash); err != nil || len(dash.Panels) == 0 {
			t.Fatalf("dashboard: %d panels, %v", len(dash.Panels), err)
		}
		for _, p := range dash.Panels {
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				var got []testcluster.Sample
				waitFor(t, "data for panel "+p.Title+": "+tg.Expr, 15*time.Second, func() bool {
					got, err = prom.Query(qctx, tg.Expr)
					return err == nil && len(got) > 0
				})
			}
		}
	})
}

func countInv(ts []ticket.Ticket, inv string) int {
	n := 0
	for _, t := range ts {
		if t.Invariant == inv {
			n++
		}
	}
	return n
}

func countStr(list []string, v string) int {
	n := 0
	for _, s := range list {
		if s == v {
			n++
		}
	}
	return n
}
