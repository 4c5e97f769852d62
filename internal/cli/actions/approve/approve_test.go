package approve

import (
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/auth"

	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

func TestNewCmdApprove(t *testing.T) {
	tests := []struct {
		args    []string
		dry     bool
		as      string // --as: on behalf of
		wait    time.Duration
		wantErr string
	}{
		{args: []string{"5"}, wait: DefaultWait},
		{args: []string{"5", "--dry-run", "--as", "alice"}, dry: true, as: "alice", wait: DefaultWait},
		{args: []string{"5", "--wait", "0"}, wait: 0},
		{args: []string{"5", "--wait", "90s", "--as", " bob "}, as: "bob", wait: 90 * time.Second},
		{args: []string{"5", "--wait", "-1s"}, wantErr: "--wait must not be negative"},
		{args: []string{"5", "--wait", "soon"}, wantErr: "invalid argument"},
		{args: []string{"5", "--as", ""}, wantErr: "--as needs a name"},
		{args: []string{"five"}, wantErr: `invalid action id "five"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *ApproveOptions
			cmd := NewCmdApprove(f, func(_ context.Context, o *ApproveOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != 5 || got.DryRun != tt.dry || got.Wait != tt.wait {
				t.Errorf("opts = %+v", got)
			}
			if got.OnBehalfOf != tt.as {
				t.Errorf("on behalf of = %q, want %q", got.OnBehalfOf, tt.as)
			}
		})
	}
}

// fakeMove is a catalog action for executor tests: its dry run and its
// execution succeed or fail as told, and it counts executions.
type fakeMove struct {
	mu       sync.Mutex
	valid    bool
	success  bool
	executed int
}

func (a *fakeMove) Spec() action.Spec {
	return action.Spec{Name: "fake_move", Description: "test action", Risk: action.RiskLow, Reversible: true,
		Params:  []action.Param{{Name: "region_id", Type: action.ParamInteger, Required: true}},
		Targets: []string{"region_id"}}
}

func (a *fakeMove) request() action.Request {
	return action.Request{Method: "POST", Path: "/pd/api/v1/operators", Body: json.RawMessage(`{"name":"fake","region_id":2}`)}
}

func (a *fakeMove) DryRun(context.Context, json.RawMessage) (action.DryRunResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return action.DryRunResult{Valid: a.valid, Message: map[bool]string{true: "would move region 2", false: "region 2 has no voter on store 9"}[a.valid],
		Preconditions: []action.Check{{Name: "target_is_voter", Passed: a.valid, Detail: "store 9"}},
		Warnings:      []string{"a warning"}, Requests: []action.Request{a.request()}}, nil
}

func (a *fakeMove) Execute(context.Context, json.RawMessage) (action.Outcome, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.executed++
	msg := "leader of region 2 moved to store 9"
	if !a.success {
		msg = "operator timed out"
	}
	return action.Outcome{Success: a.success, Message: msg, Requests: []action.Request{a.request()}}, nil
}

type rig struct {
	st   *store.Store
	act  *fakeMove
	cat  *action.Catalog
	ex   *executor.Executor
	opts *ApproveOptions
	out  *strings.Builder
	me   string
}

// newRig serves the real API over a Unix socket in a temp dir, as the
// daemon does: the CLI's identity is this process's OS user (an admin:
// the daemon's own user), read from the kernel.
func newRig(t *testing.T) *rig {
	db, st := clitest.DB(t)
	f, _, _ := clitest.Factory(t, db)
	r := &rig{st: st, act: &fakeMove{valid: true, success: true}}
	r.cat = action.NewCatalog(r.act)
	r.ex = executor.New(executor.Options{Store: st, Catalog: r.cat, Name: "daemon", PollInterval: 20 * time.Millisecond,
		Reevaluate: func(context.Context, ticket.Ticket) (bool, error) { return true, nil }})
	sock := filepath.Join(t.TempDir(), "operator.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.New(api.Options{Store: st, Executor: r.ex}).Handler(),
		ConnContext: api.UnixConnContext(auth.UnixPolicy{SelfUID: os.Getuid()})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r.me = clitest.Me(t)
	r.opts = &ApproveOptions{
		IO: f.IOStreams, Config: f.Config, Now: time.Now, Format: cmdutil.FormatTable,
		NewGate: func(config.Config) (Gate, error) { return api.NewSocketClient(sock), nil },
		Wait:    20 * time.Second, PollInterval: 20 * time.Millisecond, Bin: "operator",
	}
	return r
}

// propose adds a proposal of fake_move.
func (r *rig) propose(t *testing.T, subject string) int64 {
	t.Helper()
	ctx := context.Background()
	tk, _, err := r.st.Observe(ctx, ticket.Observation{Invariant: "leader_imbalance", Subject: subject, Severity: ticket.Warning,
		Summary: "skew", Evidence: json.RawMessage(`{}`)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.st.SaveDiagnosis(ctx, tk.ID, store.DiagnosisInput{Markdown: "m", Backend: "rules", Proposal: &action.Proposal{
		ActionType: "fake_move", Params: json.RawMessage(`{"region_id":2}`), Urgency: action.Soon, ExpiresAt: time.Now().Add(time.Hour)}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// daemon runs an executor as `operator run` would, until the test ends.
func (r *rig) daemon(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.ex.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func output(r *rig) string { return r.opts.IO.Out.(interface{ String() string }).String() }

func TestApproveWaitsForTheExecutor(t *testing.T) {
	r := newRig(t)
	r.daemon(t)
	r.opts.ID = r.propose(t, "cluster")
	if err := approveRun(context.Background(), r.opts); err != nil {
		t.Fatalf("approve: %v\n%s", err, output(r))
	}
	out := output(r)
	for _, want := range []string{"Approved action #1 fake_move", "as " + r.me, "Action #1 completed", "(approved by " + r.me + ", executed by daemon)",
		"leader of region 2 moved to store 9", `POST /pd/api/v1/operators {"name":"fake","region_id":2}`, "Audit record 2", // record 1 is the approval
		"Ticket #1: resolved (the invariant holds again)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	p, _ := r.st.Proposal(context.Background(), r.opts.ID)
	if p.Status != action.Completed || p.ApprovedBy != r.me || r.act.executed != 1 {
		t.Errorf("proposal %+v, executed %d", p, r.act.executed)
	}
	recs, _ := r.st.Records(context.Background(), store.RecordFilter{ProposalID: r.opts.ID})
	if len(recs) != 2 || recs[0].ID != 2 || !recs[0].IsExecution() || recs[1].ID != 1 ||
		recs[1].Event != action.EventApproval || recs[1].ApprovedBy != r.me || recs[1].ActorRole != "admin" {
		t.Errorf("records = %+v", recs)
	}
}

func TestApproveReportsFailure(t *testing.T) {
	r := newRig(t)
	r.act.success = false
	r.daemon(t)
	r.opts.ID = r.propose(t, "cluster")
	err := approveRun(context.Background(), r.opts)
	if !errors.Is(err, cmdutil.ErrActionFailed) || !strings.Contains(err.Error(), "operator timed out") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(output(r), "Action #1 failed") {
		t.Errorf("output:\n%s", output(r))
	}
}

func TestApproveNotPickedUp(t *testing.T) {
	r := newRig(t)
	r.opts.ID = r.propose(t, "cluster")
	r.opts.Wait = 300 * time.Millisecond
	err := approveRun(context.Background(), r.opts)
	if !errors.Is(err, cmdutil.ErrPending) || !strings.Contains(err.Error(), "the executor has not picked it up within 300ms") {
		t.Fatalf("err = %v", err)
	}
	p, _ := r.st.Proposal(context.Background(), r.opts.ID)
	if p.Status != action.Approved {
		t.Errorf("status = %s, want approved (it runs when the executor claims it, until the approval expires)", p.Status)
	}
}

// The daemon down: the CLI says so, with its own exit code, and writes
// nothing (it has no way to).
func TestApproveDaemonDown(t *testing.T) {
	r := newRig(t)
	r.opts.ID = r.propose(t, "cluster")
	r.opts.NewGate = func(config.Config) (Gate, error) {
		return api.NewSocketClient(filepath.Join(t.TempDir(), "nobody.sock")), nil
	}
	err := approveRun(context.Background(), r.opts)
	if !errors.Is(err, api.ErrDaemonUnreachable) {
		t.Fatalf("err = %v", err)
	}
	if p, _ := r.st.Proposal(context.Background(), r.opts.ID); p.Status != action.Proposed {
		t.Errorf("status = %s", p.Status)
	}
}

func TestDryRun(t *testing.T) {
	r := newRig(t)
	r.opts.DryRun = true
	r.opts.ID = r.propose(t, "cluster")
	if err := approveRun(context.Background(), r.opts); err != nil {
		t.Fatal(err)
	}
	out := output(r)
	for _, want := range []string{"Dry run of action #1 fake_move", "Result: VALID: would move region 2", "[ok]   target_is_voter",
		"Warnings:\n  - a warning", "PD requests an execution would send:\n  POST /pd/api/v1/operators", "Recorded as audit record 1",
		"Nothing was sent to PD", "Next: operator actions approve 1 --evidence "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	p, _ := r.st.Proposal(context.Background(), r.opts.ID)
	if p.Status != action.DryRun || r.act.executed != 0 {
		t.Errorf("after dry run: status %s, executed %d", p.Status, r.act.executed)
	}

	// An invalid dry run exits 9 and is recorded too.
	r.act.valid = false
	err := approveRun(context.Background(), r.opts)
	if !errors.Is(err, cmdutil.ErrActionFailed) || !strings.Contains(err.Error(), "dry run of action 1 is invalid") {
		t.Fatalf("err = %v", err)
	}
	if out := output(r); !strings.Contains(out, "Result: INVALID") || !strings.Contains(out, "[FAIL] target_is_voter") {
		t.Errorf("output:\n%s", out)
	}
	recs, _ := r.st.Records(context.Background(), store.RecordFilter{ProposalID: r.opts.ID})
	if len(recs) != 2 || !recs[0].DryRun || recs[0].Success {
		t.Errorf("records = %+v", recs)
	}
}

func TestApproveJSON(t *testing.T) {
	r := newRig(t)
	r.daemon(t)
	r.opts.Format = cmdutil.FormatJSON
	r.opts.ID = r.propose(t, "cluster")
	if err := approveRun(context.Background(), r.opts); err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal([]byte(output(r)), &res); err != nil {
		t.Fatalf("%v:\n%s", err, output(r))
	}
	if res.Outcome != "completed" || res.Record == nil || res.Record.DryRun || res.Action.Status != action.Completed || res.TicketStatus != ticket.Resolved {
		t.Errorf("result = %+v", res)
	}
}
