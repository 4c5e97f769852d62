package daemon

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

func testConfig(t *testing.T, pdURL string) config.Config {
	cfg := config.Default()
	cfg.PD.Endpoints = []string{pdURL}
	cfg.Database.Path = filepath.Join(t.TempDir(), "operator.db")
	cfg.Monitor.Interval = config.Duration{Duration: time.Second}
	cfg.Monitor.Quiet = config.Duration{Duration: 2 * time.Second}
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Invariants.DefaultFor = 0
	cfg.Invariants.LeaderImbalanceMinDiff = 4
	return cfg
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := config.Default()
	cfg.PD.Endpoints = nil
	if _, err := New(Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "no PD endpoint") {
		t.Errorf("err = %v", err)
	}
}

func TestNewBackend(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		backend string
		env     map[string]string
		want    string
		wantErr string
	}{
		{backend: "rules", want: "rules"},
		{backend: "noop", want: "noop"},
		{backend: "anthropic", wantErr: "needs an API key: set ANTHROPIC_API_KEY"},
		{backend: "anthropic", env: map[string]string{"ANTHROPIC_API_KEY": "k"}, want: "anthropic:claude-sonnet-4-5"},
		{backend: "openai", env: map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}, want: "openai:gpt-4o-mini"},
		{backend: "llama", wantErr: "unknown diagnosis backend"},
	}
	for _, tt := range tests {
		t.Run(tt.backend+tt.want, func(t *testing.T) {
			cfg := config.Default()
			cfg.Diagnosis.Backend = tt.backend
			pdc, err := NewPDClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			b, err := NewBackend(cfg, pdc, nil, env(tt.env), log)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || b.Name() != tt.want {
				t.Fatalf("backend %v, err %v; want %s", b, err, tt.want)
			}
		})
	}
}

func TestRunFailsWhenListenAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t, "http://127.0.0.1:1")
	cfg.Server.Listen = ln.Addr().String()
	d, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Run(ctx); err == nil || !strings.Contains(err.Error(), "listen on "+cfg.Server.Listen) {
		t.Fatalf("err = %v", err)
	}
}

// TestRealCluster runs the daemon in-process on a real PD with simulated
// stores whose leaders are skewed: a ticket is opened, diagnosed by the
// rules and given a transfer_leader proposal; /metrics and /healthz
// answer; cancelling the context stops it cleanly. Then the Reevaluator
// sees the violation until a leader moves.
func TestRealCluster(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 1, SkewLeaders: true, PauseBalanceLeader: true})
	cfg := testConfig(t, c.PDURL)
	addr := make(chan string, 1)
	d, err := New(Options{Config: cfg, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnListen: func(a string) { addr <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- d.Run(ctx); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the HTTP server did not start")
	}

	st, err := store.Open(context.Background(), cfg.Database.Path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var p action.Proposal
	waitFor(t, "a transfer_leader proposal", 60*time.Second, func() bool {
		ps, err := st.Proposals(context.Background(), store.ProposalFilter{Statuses: []action.Status{action.Proposed}})
		if err != nil || len(ps) == 0 {
			return false
		}
		p = ps[0]
		return true
	})
	if p.ActionType != tikv.ActionTransferLeader || p.ProposedBy != "rules" {
		t.Fatalf("proposal = %+v", p)
	}
	tk, err := st.Ticket(context.Background(), p.TicketID)
	if err != nil || tk.Key != "leader_imbalance/cluster" || tk.Status != ticket.Diagnosed || !strings.Contains(tk.DiagnosisMarkdown, "transfer_leader") {
		t.Fatalf("ticket %+v, %v", tk, err)
	}

	metrics := get(t, base+"/metrics")
	for _, m := range []string{"operator_monitor_cycles_total", `operator_build_info{version="test"} 1`, "operator_pd_request_duration_seconds", "go_goroutines"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	var h Health
	if err := json.Unmarshal([]byte(get(t, base+"/healthz")), &h); err != nil || h.Status != "ok" || h.Diagnosis != "rules" || h.LastCycle.IsZero() {
		t.Errorf("/healthz = %+v, %v", h, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the HTTP server still answers after shutdown")
	}

	t.Run("Reevaluator", func(t *testing.T) {
		pdc, err := NewPDClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		collect := func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, pdc) }
		r := NewReevaluator(collect, cfg.Invariants, time.Now)
		ctx := context.Background()
		if held, err := r.Reevaluate(ctx, tk); err != nil || held {
			t.Fatalf("skewed: held %v, err %v", held, err)
		}
		var params struct {
			RegionID  uint64 `json:"region_id"`
			ToStoreID uint64 `json:"to_store_id"`
		}
		if err := json.Unmarshal(p.Params, &params); err != nil {
			t.Fatal(err)
		}
		if err := c.PostJSON(ctx, "/operators", map[string]any{"name": "transfer-leader", "region_id": params.RegionID, "to_store_id": params.ToStoreID}, nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the invariant to hold after the transfer", 30*time.Second, func() bool {
			held, err := r.Reevaluate(ctx, tk)
			return err == nil && held
		})
		// Other subjects and invariants.
		other := tk
		other.Invariant, other.Subject = invariant.NameStoreDisconnected, "store:1"
		if held, err := r.Reevaluate(ctx, other); err != nil || !held {
			t.Errorf("store_disconnected/store:1: held %v, err %v", held, err)
		}
		other.Invariant = "no_such_invariant"
		if _, err := r.Reevaluate(ctx, other); err == nil || !strings.Contains(err.Error(), "not enabled") {
			t.Errorf("unknown invariant: err = %v", err)
		}
		down := NewReevaluator(func(context.Context) (*tikv.Snapshot, error) { return nil, fmt.Errorf("pd unreachable") }, cfg.Invariants, time.Now)
		other.Invariant = invariant.NamePDUnreachable
		if held, err := down.Reevaluate(ctx, other); err != nil || held {
			t.Errorf("pd_unreachable while PD is down: held %v, err %v", held, err)
		}
		if held, err := r.Reevaluate(ctx, other); err != nil || !held {
			t.Errorf("pd_unreachable while PD answers: held %v, err %v", held, err)
		}
	})
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPDClientTLS checks that [pd] cacert-path reaches the PD client: a
// TLS PD (an httptest server speaking GET /pd/api/v1/stores) is trusted
// with the CA file and refused without it.
func TestPDClientTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pd/api/v1/stores" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"count":1,"stores":[{"store":{"id":1,"address":"tikv-1:20160","state_name":"Up"},"status":{"capacity":"1TiB","available":"900GiB","leader_count":3,"region_count":9}}]}`)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.PD.Endpoints = []string{srv.URL}
	ctx := context.Background()

	noCA, err := NewPDClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noCA.Stores(ctx); err == nil {
		t.Fatal("a PD with an unknown certificate authority was trusted")
	}

	cfg.PD.CAPath = ca
	c, err := NewPDClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stores, err := c.Stores(ctx)
	if err != nil || len(stores) != 1 || stores[0].Store.ID != 1 {
		t.Fatalf("stores over TLS: %+v, %v", stores, err)
	}

	cfg.PD.CAPath = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := NewPDClient(cfg); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
