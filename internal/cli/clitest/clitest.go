// Package clitest helps test operator commands on a real SQLite file with
// fake IO streams, as GitHub CLI tests commands (flag parsing through runF,
// behaviour through buffers).
package clitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// T0 is the time seeded data is observed at.
var T0 = time.Date(2025, 11, 30, 3, 0, 0, 0, time.UTC)

// DB creates a database file in t.TempDir() and returns its path and an
// open store, closed when the test ends.
func DB(t testing.TB) (string, *store.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "operator.db")
	st, err := store.Open(context.Background(), path, store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.BindCluster(context.Background(), ClusterID, "", T0); err != nil {
		t.Fatal(err)
	}
	return path, st
}

// ClusterID is the PD cluster id DB binds test databases to.
const ClusterID = "7001"

// Me is this process's OS user name, the identity the daemon's Unix
// socket sees for the test.
func Me(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// Seeded are the ids Seed created.
type Seeded struct {
	// Imbalance is a diagnosed leader_imbalance ticket with Proposal.
	Imbalance ticket.Ticket
	// Proposal is a transfer_leader proposal of Imbalance, status proposed,
	// expiring 24 h after T0.
	Proposal action.Proposal
	// Disconnected is an open store_disconnected ticket, not diagnosed.
	Disconnected ticket.Ticket
}

// Seed fills st with two tickets and one proposal (see Seeded), as the
// monitor and the diagnosis runner would.
func Seed(t testing.TB, st *store.Store) Seeded {
	t.Helper()
	ctx := context.Background()
	var s Seeded
	var err error
	s.Imbalance, _, err = st.Observe(ctx, ticket.Observation{
		Invariant: "leader_imbalance", Subject: "cluster", Severity: ticket.Warning,
		Summary:  "leaders 5/0/0 across 3 Up TiKV stores: max-min 5 > 2",
		Evidence: json.RawMessage(`{"leader_counts":{"1":5,"2":0,"3":0},"max_store_id":1,"min_store_id":2,"diff":5,"threshold":2}`),
	}, T0)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.SaveDiagnosis(ctx, s.Imbalance.ID, store.DiagnosisInput{
		Markdown: "## Leaders concentrated on store 1\n\nMove region 2's leader to store 2.\n",
		JSON: json.RawMessage(`{"summary":"Leaders concentrated on store 1","confidence":"high","proposed_action":` +
			`{"action_type":"transfer_leader","params":{"region_id":2,"to_store_id":2},"rationale":"r","urgency":"soon"},` +
			`"dry_run":{"valid":true,"message":"ok","preconditions":[{"name":"region_exists","passed":true,"detail":"region 2 exists"}],` +
			`"requests":[{"method":"POST","path":"/pd/api/v1/operators","body":{"name":"transfer-leader","region_id":2,"to_store_id":2}}]}}`),
		Backend: "rules",
		Proposal: &action.Proposal{
			ActionType: "transfer_leader", Params: json.RawMessage(`{"region_id":2,"to_store_id":2}`),
			Rationale: "store 1 leads every region; store 2 holds a voter of region 2",
			Risks:     []string{"a brief leader election on region 2"}, Urgency: action.Soon,
			ExpiresAt: T0.Add(24 * time.Hour),
		},
	}, T0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if s.Proposal, err = st.Proposal(ctx, pid); err != nil {
		t.Fatal(err)
	}
	if s.Imbalance, err = st.Ticket(ctx, s.Imbalance.ID); err != nil {
		t.Fatal(err)
	}
	s.Disconnected, _, err = st.Observe(ctx, ticket.Observation{
		Invariant: "store_disconnected", Subject: "store:3", Severity: ticket.Warning,
		Summary:  "store 3 is Disconnected: last heartbeat 31s ago (> 20s)",
		Evidence: json.RawMessage(`{"store_id":3,"state_name":"Disconnected","heartbeat_age_seconds":31}`),
	}, T0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Factory returns a Factory whose streams are buffers, whose environment
// holds only OPERATOR_DB=dbPath (the root command's flags reset
// f.Flags when they are bound) and whose clock is T0 + 1 minute.
func Factory(t testing.TB, dbPath string) (f *cmdutil.Factory, out, errOut *bytes.Buffer) {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	f = cmdutil.New("test")
	f.IOStreams = ios
	f.Getenv = func(k string) string {
		if k == "OPERATOR_DB" {
			return dbPath
		}
		return ""
	}
	f.Now = func() time.Time { return T0.Add(time.Minute) }
	return f, out, errOut
}

// stubAction is a catalog entry with a real spec and no PD behind it: the
// daemon's policy checks (known type, valid params) pass; a dry run fails.
type stubAction struct{ spec action.Spec }

func (a stubAction) Spec() action.Spec { return a.spec }
func (a stubAction) DryRun(context.Context, json.RawMessage) (action.DryRunResult, error) {
	return action.DryRunResult{}, errors.New("stub action: no PD in this test")
}
func (a stubAction) Execute(context.Context, json.RawMessage) (action.Outcome, error) {
	return action.Outcome{}, errors.New("stub action: no PD in this test")
}

// Serve serves the daemon's API (no executor loop) on the Unix socket the
// CLI finds next to the database at dbPath, with a catalog of stub
// transfer_leader and evict_leader actions, until the test ends. The
// caller's OS user is an admin there (the daemon's own user).
func Serve(t testing.TB, dbPath string, st *store.Store) {
	t.Helper()
	lo, hi := 1.0, float64(1<<62)
	ids := func(names ...string) []action.Param {
		var ps []action.Param
		for _, n := range names {
			ps = append(ps, action.Param{Name: n, Type: action.ParamInteger, Required: true, Min: &lo, Max: &hi})
		}
		return ps
	}
	cat := action.NewCatalog(
		stubAction{action.Spec{Name: "transfer_leader", Risk: action.RiskLow, Params: ids("region_id", "to_store_id"), Targets: []string{"region_id", "to_store_id"}}},
		stubAction{action.Spec{Name: "evict_leader", Risk: action.RiskMedium, Params: ids("store_id"), Targets: []string{"store_id"}}},
	)
	ex := executor.New(executor.Options{Store: st, Catalog: cat, Name: "test-daemon", Clock: func() time.Time { return T0.Add(time.Minute) }})
	sock := filepath.Join(filepath.Dir(dbPath), "operator.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.New(api.Options{Store: st, Executor: ex}).Handler(),
		ConnContext: api.UnixConnContext(auth.UnixPolicy{SelfUID: os.Getuid()})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}
