package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli"
	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

type result struct {
	code        int
	out, errOut string
}

// run executes the operator command line against the database at db.
func run(t *testing.T, db string, args ...string) result {
	t.Helper()
	f, out, errOut := clitest.Factory(t, db)
	code := cli.Execute(context.Background(), f, cli.NewRootCmd(f), args)
	return result{code, out.String(), errOut.String()}
}

func (r result) expect(t *testing.T, code int, outHas, errHas []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.out, r.errOut)
	}
	for _, s := range outHas {
		if !strings.Contains(r.out, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.out)
		}
	}
	for _, s := range errHas {
		if !strings.Contains(r.errOut, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.errOut)
		}
	}
}

func TestReadCommands(t *testing.T) {
	db, st := clitest.DB(t)
	s := clitest.Seed(t, st)
	imb, disc, pid := fmt.Sprint(s.Imbalance.ID), fmt.Sprint(s.Disconnected.ID), fmt.Sprint(s.Proposal.ID)
	tests := []struct {
		args   []string
		code   int
		out    []string
		errOut []string
	}{
		{[]string{"tickets", "list"}, 0, []string{"ID", "leader_imbalance", "store_disconnected", "#" + pid + " transfer_leader (proposed)", "diagnosed", "store:3"}, nil},
		{[]string{"tickets", "list", "--status", "open"}, 0, []string{"store_disconnected"}, nil},
		{[]string{"tickets", "list", "--status", "resolved"}, 0, nil, []string{"no tickets"}},
		{[]string{"tickets", "list", "--status", "closed"}, 2, nil, []string{`invalid --status "closed"`, "operator tickets list --help"}},
		{[]string{"tickets", "show", imb}, 0, []string{"Ticket #" + imb, "leader_imbalance/cluster", "[diagnosed]", "== Evidence (latest) ==", `"max_store_id": 1`,
			"== Diagnosis ==", "(by rules", "Leaders concentrated on store 1", "== Proposed actions ==", `{"region_id":2,"to_store_id":2}`,
			"== Audit records ==", "operator actions approve " + pid + " --dry-run"}, nil},
		{[]string{"tickets", "show", disc}, 0, []string{"not diagnosed yet"}, nil},
		{[]string{"tickets", "show", "#" + disc}, 0, []string{"store_disconnected/store:3"}, nil},
		{[]string{"tickets", "show", "99"}, 3, nil, []string{"Error: ticket 99 not found"}},
		{[]string{"tickets", "show", "x"}, 2, nil, []string{`invalid ticket id "x"`}},
		{[]string{"tickets", "show"}, 2, nil, []string{"needs a ticket id"}},
		{[]string{"actions", "list"}, 0, []string{"transfer_leader", "proposed", "soon", "rules"}, nil},
		{[]string{"actions", "list", "--status", "approved"}, 0, nil, []string{"no actions"}},
		{[]string{"actions", "list", "--status", "done"}, 2, nil, []string{`invalid --status "done"`}},
		{[]string{"actions", "show", pid}, 0, []string{"Action #" + pid + "  transfer_leader  [proposed]", "Risk:       low", "== Rationale ==",
			"store 1 leads every region", "== Risks ==", "a brief leader election", "== Status history ==", "proposed  rules",
			"== Dry run made by the diagnosis ==", "[ok]   region_exists", `POST /pd/api/v1/operators {"name":"transfer-leader"`}, nil},
		{[]string{"actions", "show", "42"}, 3, nil, []string{"Error: action 42 not found"}},
		{[]string{"audit", "list"}, 0, nil, []string{"no audit records"}},
		{[]string{"audit", "verify"}, 0, []string{"audit trail OK: no records yet"}, nil},
		{[]string{"version"}, 0, []string{"operator test (go"}, nil},
		{[]string{"tickets", "bogus"}, 2, nil, []string{`unknown command "bogus"`}},
		{[]string{"tickets", "list", "--nope"}, 2, nil, []string{"unknown flag: --nope"}},
		{[]string{"-o", "yaml", "tickets", "list"}, 2, nil, []string{`invalid -o "yaml"`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			run(t, db, tt.args...).expect(t, tt.code, tt.out, tt.errOut)
		})
	}
}

func TestJSONOutput(t *testing.T) {
	db, st := clitest.DB(t)
	s := clitest.Seed(t, st)

	r := run(t, db, "-o", "json", "tickets", "list")
	r.expect(t, 0, nil, nil)
	var rows []struct {
		ID           int64         `json:"id"`
		Key          string        `json:"key"`
		ActionID     int64         `json:"action_id"`
		ActionStatus action.Status `json:"action_status"`
	}
	if err := json.Unmarshal([]byte(r.out), &rows); err != nil {
		t.Fatalf("tickets list -o json: %v\n%s", err, r.out)
	}
	if len(rows) != 2 || rows[1].Key != "leader_imbalance/cluster" || rows[1].ActionID != s.Proposal.ID || rows[1].ActionStatus != action.Proposed {
		t.Errorf("rows = %+v", rows)
	}

	r = run(t, db, "-o", "json", "actions", "show", fmt.Sprint(s.Proposal.ID))
	r.expect(t, 0, nil, nil)
	var v struct {
		Action  action.Proposal      `json:"action"`
		Ticket  struct{ Key string } `json:"ticket"`
		History []struct {
			Status action.Status `json:"status"`
		} `json:"history"`
		DryRun  *action.DryRunResult `json:"diagnosis_dry_run"`
		Records []action.Record      `json:"records"`
	}
	if err := json.Unmarshal([]byte(r.out), &v); err != nil {
		t.Fatalf("actions show -o json: %v\n%s", err, r.out)
	}
	if v.Action.ID != s.Proposal.ID || v.Ticket.Key != "leader_imbalance/cluster" || len(v.History) != 1 || v.DryRun == nil || !v.DryRun.Valid || v.Records == nil {
		t.Errorf("view = %+v", v)
	}

	for _, args := range [][]string{{"actions", "list"}, {"audit", "list"}, {"tickets", "show", "1"}, {"audit", "verify"}, {"version"}, {"config", "show"}} {
		r := run(t, db, append([]string{"-o", "json"}, args...)...)
		if r.code != 0 || !json.Valid([]byte(r.out)) {
			t.Errorf("%v -o json: exit %d, output not JSON:\n%s%s", args, r.code, r.out, r.errOut)
		}
	}
}

func TestMissingDatabaseIsNotCreated(t *testing.T) {
	db := filepath.Join(t.TempDir(), "missing", "operator.db")
	for _, args := range [][]string{{"tickets", "list"}, {"tickets", "show", "1"}, {"actions", "list"}, {"actions", "show", "1"},
		{"audit", "list"}, {"audit", "verify"}} {
		run(t, db, args...).expect(t, 5, nil, []string{"no operator database at " + db, "`operator run` creates the database"})
	}
	// Decisions go to the daemon, which is not running either.
	for _, args := range [][]string{{"actions", "approve", "1"}, {"actions", "reject", "1", "--reason", "x"}} {
		run(t, db, args...).expect(t, 13, nil, []string{"the operator daemon is not reachable"})
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("database file exists after read commands: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(db)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("database directory created: %v", err)
	}
}

func TestPDUnreachable(t *testing.T) {
	db, _ := clitest.DB(t)
	run(t, db, "check", "--pd", "http://127.0.0.1:1").expect(t, 6, nil, []string{"pd unreachable", "Hint: check --pd"})
	run(t, db, "check", "--pd", "127.0.0.1:1").expect(t, 2, nil, []string{"must start with http://"})
}

func TestApproveRejectStates(t *testing.T) {
	db, st := clitest.DB(t)
	s := clitest.Seed(t, st)
	id := fmt.Sprint(s.Proposal.ID)

	run(t, db, "actions", "reject", id).expect(t, 2, nil, []string{"--reason is required"})
	run(t, db, "actions", "approve", id, "--as", " ").expect(t, 2, nil, []string{"--as needs a name"})
	// No daemon: decisions cannot be made (only the daemon writes them).
	run(t, db, "actions", "approve", id, "--wait", "0").expect(t, 13, nil, []string{"the operator daemon is not reachable", "is `operator run` running?"})
	clitest.Serve(t, db, st)
	me := clitest.Me(t)
	run(t, db, "actions", "approve", "77", "--as", "alice").expect(t, 3, nil, []string{"Error: action 77 not found"})
	run(t, db, "actions", "reject", "77", "--reason", "x").expect(t, 3, nil, []string{"Error: action 77 not found"})

	// Approve with no executor running: recorded, then reported as not
	// picked up. An admin approves on behalf of alice: both names recorded.
	run(t, db, "actions", "approve", id, "--as", "alice", "--wait", "300ms").
		expect(t, 10, []string{"Approved action #" + id + " transfer_leader", "as " + me + " on behalf of alice"}, []string{"the executor has not picked it up within 300ms"})
	p, err := st.Proposal(context.Background(), s.Proposal.ID)
	if err != nil || p.Status != action.Approved || p.ApprovedBy != me {
		t.Fatalf("after approve: %+v, %v", p, err)
	}
	// The approval is an audit record, shown as such and not as an execution.
	run(t, db, "audit", "list", "--action", id).
		expect(t, 0, []string{"KIND", "approval", "approved", me, "on behalf of alice"}, nil)
	// Approving twice, rejecting an approved action: wrong state.
	run(t, db, "actions", "approve", id, "--as", "bob").
		expect(t, 4, nil, []string{"Error: action " + id + " is approved; only proposed actions can be approved"})
	run(t, db, "actions", "reject", id, "--reason", "late").
		expect(t, 4, nil, []string{"only proposed actions can be rejected"})

	// The reject path on a second proposal.
	ctx := context.Background()
	obs := ticket.Observation{Invariant: "store_slow", Subject: "store:2", Severity: ticket.Critical, Summary: "slow", Evidence: json.RawMessage(`{}`)}
	tk, _, err := st.Observe(ctx, obs, clitest.T0)
	if err != nil {
		t.Fatal(err)
	}
	pid2, err := st.SaveDiagnosis(ctx, tk.ID, store.DiagnosisInput{Markdown: "m", Backend: "rules", Proposal: &action.Proposal{
		ActionType: "evict_leader", Params: json.RawMessage(`{"store_id":2}`), Urgency: action.Soon, ExpiresAt: clitest.T0.Add(time.Hour)}}, clitest.T0)
	if err != nil {
		t.Fatal(err)
	}
	id2 := fmt.Sprint(pid2)
	run(t, db, "actions", "reject", id2, "--reason", "store 2 is being replaced", "--as", "carol").
		expect(t, 0, []string{"Rejected action #" + id2 + " evict_leader", "on behalf of carol", "store 2 is being replaced"}, nil)
	run(t, db, "actions", "approve", id2, "--as", "alice").
		expect(t, 4, nil, []string{"Error: action " + id2 + " is rejected; only proposed actions can be approved"})
	run(t, db, "actions", "approve", id2, "--dry-run").
		expect(t, 4, nil, []string{"Error: action " + id2 + " is rejected; only proposed actions can be dry-run"})
	run(t, db, "actions", "show", id2).expect(t, 0, []string{"[rejected]", "rejected  " + me, "store 2 is being replaced"}, nil)
	run(t, db, "actions", "list", "--status", "rejected").expect(t, 0, []string{me + " (rejected)"}, nil)
	run(t, db, "actions", "show", id2).expect(t, 0, []string{"rejection", "rejected by " + me + " on behalf of carol: store 2 is being replaced"}, nil)
	recs, err := st.Records(ctx, store.RecordFilter{})
	if err != nil || len(recs) != 2 || recs[0].Event != action.EventRejection || recs[0].ProposalID != pid2 ||
		recs[1].Event != action.EventApproval || recs[1].ProposalID != s.Proposal.ID || recs[1].ApprovedBy != me || recs[1].OnBehalfOf != "alice" {
		t.Errorf("audit records = %+v, %v", recs, err)
	}
	if n, _ := st.ExecutionsSince(ctx, time.Time{}); n != 0 {
		t.Errorf("approval/rejection counted as executions: %d", n)
	}
	if rep, err := st.Verify(ctx); err != nil || !rep.OK || rep.Records != 2 {
		t.Errorf("Verify = %+v, %v", rep, err)
	}
}

func TestConfigShowMasksSecrets(t *testing.T) {
	db, _ := clitest.DB(t)
	cfgPath := filepath.Join(t.TempDir(), "operator.toml")
	if err := os.WriteFile(cfgPath, []byte(`
[pd]
endpoints = ["http://10.0.0.1:2379"]
[prometheus]
url = "http://admin:hunter2@prom:9090"
[diagnosis]
backend = "anthropic"
[diagnosis.anthropic]
api-key = "sk-ant-secret"
[invariants]
leader-imbalance-min-diff = 4
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, db, "--config", cfgPath, "--pd", "http://flag:2379", "config", "show")
	r.expect(t, 0, []string{"config file " + cfgPath, `endpoints = ["http://flag:2379"]`, `api-key = "****"`, "leader-imbalance-min-diff = 4", `path = "` + db + `"`}, nil)
	for _, secret := range []string{"sk-ant-secret", "hunter2"} {
		if strings.Contains(r.out, secret) {
			t.Errorf("config show prints %q:\n%s", secret, r.out)
		}
	}
	run(t, db, "--config", filepath.Join(t.TempDir(), "nope.toml"), "config", "show").expect(t, 2, nil, []string{"does not exist"})
}

func TestExitCodeMapping(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, cli.ExitOK},
		{errors.New("boom"), cli.ExitError},
		{cmdutil.FlagErrorf("bad"), cli.ExitUsage},
		{fmt.Errorf("x: %w", store.ErrNotFound), cli.ExitNotFound},
		{&cmdutil.NotFoundError{Kind: "action", ID: 1}, cli.ExitNotFound},
		{fmt.Errorf("x: %w", &action.ErrTransition{ID: 1, From: action.Rejected, To: action.Approved}), cli.ExitWrongState},
		{fmt.Errorf("x: %w", store.ErrExpired), cli.ExitWrongState},
		{fmt.Errorf("x: %w", store.ErrNoDatabase), cli.ExitNoDatabase},
		{fmt.Errorf("x: %w", pd.ErrUnreachable), cli.ExitPDUnreachable},
		{cmdutil.Silent(cmdutil.ErrViolations), cli.ExitViolations},
		{fmt.Errorf("%w: edited", cmdutil.ErrVerifyFailed), cli.ExitVerifyFailed},
		{fmt.Errorf("%w: failed", cmdutil.ErrActionFailed), cli.ExitActionFailed},
		{fmt.Errorf("%w: not picked up", cmdutil.ErrPending), cli.ExitPendingOutcome},
	}
	for _, tt := range tests {
		if got := cli.ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
