package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

var shared *testcluster.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	c, err := testcluster.New(ctx, testcluster.Options{Stores: 3, Regions: 4, StoreHeartbeat: time.Second,
		DisableSchedulers: []string{"balance-region", "hot-region", "evict-slow-store"}})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "api TestMain: start cluster:", err)
		os.Exit(1)
	}
	shared = c
	code := m.Run()
	if err := c.Close(); err != nil {
		code = 1
	}
	os.Exit(code)
}

// world is a daemon's API (tokens alice, bob: approvers; carol: viewer)
// in front of an executor on the real PD.
type world struct {
	st      *store.Store
	secrets map[string]string
	srv     *httptest.Server
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "op.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.BindCluster(ctx, "7001", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	pdc, err := pd.New([]string{shared.PDURL})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{st: st, secrets: map[string]string{}}
	var toks []auth.Token
	for name, role := range map[string]string{"alice": "approver", "bob": "approver", "carol": "viewer"} {
		sec, err := auth.NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		w.secrets[name] = sec
		toks = append(toks, auth.Token{Name: name, Role: role, SHA256: auth.HashToken(sec)})
	}
	tokens, err := auth.NewTokens(toks)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	ex := executor.New(executor.Options{Store: st, Name: "api-test",
		Catalog: tikv.NewCatalog(pdc, tikv.WithPollInterval(50*time.Millisecond), tikv.WithVerifyTimeout(30*time.Second)), Logger: log})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ex.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	w.srv = httptest.NewServer(api.New(api.Options{Store: st, Executor: ex, Tokens: tokens, Logger: log}).Handler())
	t.Cleanup(w.srv.Close)
	return w
}

func (w *world) as(name string) *api.Client { return api.NewURLClient(w.srv.URL, w.secrets[name]) }

func pausedSchedulers(t *testing.T) []string {
	t.Helper()
	var names []string
	if err := shared.GetJSON(context.Background(), "/schedulers?status=paused", &names); err != nil {
		t.Fatal(err)
	}
	return names
}

// A person proposes resume_scheduler (the fix of a paused scheduler);
// they cannot approve it themselves (policy, exit 4); another approver
// can, and PD shows the scheduler resumed.
func TestHumanProposalApprovedBySomeoneElse(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	const sched = "balance-leader-scheduler"
	if err := shared.PauseScheduler(ctx, sched, time.Hour); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shared.PauseScheduler(context.Background(), sched, 0) })
	if !slices.Contains(pausedSchedulers(t), sched) {
		t.Fatalf("%s not paused in PD", sched)
	}

	// A viewer cannot propose; unknown types and bad params are refused.
	_, err := w.as("carol").Propose(ctx, api.ProposeRequest{ActionType: tikv.ActionResumeScheduler, Params: json.RawMessage(`{"name":"` + sched + `"}`), Reason: "x"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("viewer propose: err = %v, want 403", err)
	}
	if _, err := w.as("alice").Propose(ctx, api.ProposeRequest{ActionType: "format_disk", Reason: "x"}); !errors.As(err, &ae) || ae.Code != api.CodePolicy {
		t.Fatalf("unknown type: err = %v, want policy", err)
	}
	if _, err := w.as("alice").Propose(ctx, api.ProposeRequest{ActionType: tikv.ActionResumeScheduler, Params: json.RawMessage(`{"nme":"x"}`), Reason: "x"}); !errors.As(err, &ae) || ae.Code != api.CodePolicy {
		t.Fatalf("bad params: err = %v, want policy", err)
	}
	if _, err := w.as("alice").Propose(ctx, api.ProposeRequest{ActionType: tikv.ActionResumeScheduler, Params: json.RawMessage(`{"name":"` + sched + `"}`)}); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Fatalf("no reason: err = %v, want 400", err)
	}

	p, err := w.as("alice").Propose(ctx, api.ProposeRequest{ActionType: tikv.ActionResumeScheduler,
		Params: json.RawMessage(`{"name":"` + sched + `"}`), Reason: "the diagnosis names the paused scheduler\x1b[2J"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ProposedBy != action.HumanProposer+"alice" || p.Status != action.Proposed || p.ClusterID != "7001" {
		t.Fatalf("proposal = %+v", p)
	}
	if strings.ContainsRune(p.Rationale, 0x1b) {
		t.Errorf("reason not sanitised: %q", p.Rationale)
	}
	tk, err := w.st.Ticket(ctx, p.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Invariant != store.ManualInvariant || tk.Status != ticket.Diagnosed || tk.ClusterID != "7001" {
		t.Fatalf("manual ticket = %+v", tk)
	}

	// alice cannot approve her own proposal: policy, which the CLI exits 4 with.
	_, err = w.as("alice").Approve(ctx, p.ID, api.DecisionRequest{})
	if !errors.As(err, &ae) || ae.Code != api.CodePolicy {
		t.Fatalf("self-approval: err = %v, want policy", err)
	}
	var se *cmdutil.StateError
	if !errors.As(cmdutil.Clean("action", p.ID, err), &se) {
		t.Fatalf("self-approval maps to %T, want *cmdutil.StateError (exit 4)", cmdutil.Clean("action", p.ID, err))
	}
	if !slices.Contains(pausedSchedulers(t), sched) {
		t.Fatal("scheduler resumed without an approval")
	}

	if _, err := w.as("bob").Approve(ctx, p.ID, api.DecisionRequest{}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last action.Proposal
	if err := testcluster.WaitFor(wctx, func() (bool, error) {
		last, err = w.st.Proposal(wctx, p.ID)
		return last.Status.Final(), err
	}); err != nil || last.Status != action.Completed {
		t.Fatalf("action %d: %s %q (%v)", p.ID, last.Status, last.Result, err)
	}
	if slices.Contains(pausedSchedulers(t), sched) {
		t.Fatalf("PD still lists %s as paused after the approved resume", sched)
	}
	if tk, _ := w.st.Ticket(ctx, p.TicketID); tk.Status != ticket.Resolved {
		t.Errorf("manual ticket %d is %s after its action completed, want resolved", tk.ID, tk.Status)
	}
	if rep, err := w.st.Verify(ctx); err != nil || !rep.OK {
		t.Fatalf("audit: %+v %v", rep, err)
	}
}
