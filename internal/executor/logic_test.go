package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// fakeAction is a pure-logic action for the executor's own rules (the
// real TiKV catalog is exercised on PD in executor_test.go).
type fakeAction struct {
	spec action.Spec
	exec func(ctx context.Context, params json.RawMessage) (action.Outcome, error)
	dry  func(ctx context.Context, params json.RawMessage) (action.DryRunResult, error)
}

func (f *fakeAction) Spec() action.Spec { return f.spec }

func (f *fakeAction) DryRun(ctx context.Context, params json.RawMessage) (action.DryRunResult, error) {
	if f.dry != nil {
		return f.dry(ctx, params)
	}
	return action.DryRunResult{Valid: true, Message: "ok", Requests: []action.Request{{Method: "POST", Path: "/fake"}}}, nil
}

func (f *fakeAction) Execute(ctx context.Context, params json.RawMessage) (action.Outcome, error) {
	if f.exec != nil {
		return f.exec(ctx, params)
	}
	return action.Outcome{Success: true, Message: "done", Requests: []action.Request{{Method: "POST", Path: "/fake"}}}, nil
}

func regionSpec(name string) action.Spec {
	one := 1.0
	return action.Spec{Name: name, Risk: action.RiskLow, Targets: []string{"region_id", "to_store_id"},
		Params: []action.Param{
			{Name: "region_id", Type: action.ParamInteger, Required: true, Min: &one},
			{Name: "to_store_id", Type: action.ParamInteger, Required: true, Min: &one},
		}}
}

func storeSpec(name string) action.Spec {
	return action.Spec{Name: name, Risk: action.RiskMedium, Targets: []string{"store_id"},
		Params: []action.Param{{Name: "store_id", Type: action.ParamInteger, Required: true}}}
}

func tempStore(t *testing.T) *store.Store {
	return openStore(t, filepath.Join(t.TempDir(), "operator.db"), true)
}

func TestTargetKeys(t *testing.T) {
	for _, tc := range []struct {
		spec   action.Spec
		params string
		want   []string
	}{
		{regionSpec("transfer_leader"), `{"region_id": 7, "to_store_id": 4}`, []string{"region:7", "store:4"}},
		{regionSpec("transfer_leader"), `{"region_id": 7.0, "to_store_id": "4"}`, []string{"region:7", "store:4"}},
		{action.Spec{Name: "transfer_peer", Targets: []string{"region_id", "from_store_id", "to_store_id"}},
			`{"region_id": 2, "from_store_id": 1, "to_store_id": 3}`, []string{"region:2", "store:1", "store:3"}},
		{storeSpec("drain_store"), `{"store_id": 4}`, []string{"store:4"}},
		{storeSpec("drain_store"), `{}`, nil},
		{storeSpec("drain_store"), `not json`, nil},
		{action.Spec{Name: "set_leader_schedule_limit"}, `{"limit": 8}`, []string{"action:set_leader_schedule_limit"}},
	} {
		if got := TargetKeys(tc.spec, json.RawMessage(tc.params)); !slices.Equal(got, tc.want) {
			t.Errorf("TargetKeys(%s, %s) = %v, want %v", tc.spec.Name, tc.params, got, tc.want)
		}
	}
}

// At most one execution per region or store: with the first proposal on
// region 7 executing, a second one on region 7 (or touching its target
// store) waits approved, while one on another region and store runs
// alongside; once the first finishes, the second runs.
func TestOneExecutionPerRegionOrStore(t *testing.T) {
	st := tempStore(t)
	var (
		mu      sync.Mutex
		running = map[string]int{}
		maxSeen = map[string]int{}
		release = make(chan struct{})
	)
	slow := &fakeAction{spec: regionSpec("transfer_leader"), exec: func(ctx context.Context, params json.RawMessage) (action.Outcome, error) {
		keys := TargetKeys(regionSpec("transfer_leader"), params)
		mu.Lock()
		for _, k := range keys {
			running[k]++
			maxSeen[k] = max(maxSeen[k], running[k])
		}
		mu.Unlock()
		<-release
		mu.Lock()
		for _, k := range keys {
			running[k]--
		}
		mu.Unlock()
		return action.Outcome{Success: true, Message: "moved", Requests: []action.Request{{Method: "POST", Path: "/x"}}}, nil
	}}
	drain := &fakeAction{spec: storeSpec("drain_store")}
	e := New(Options{Store: st, Catalog: action.NewCatalog(slow, drain), Logger: testLogger(t), PollInterval: 20 * time.Millisecond})
	ctx := ctxT(t, time.Minute)

	first := propose(t, st, "transfer_leader", map[string]int{"region_id": 7, "to_store_id": 4}, time.Time{})
	sameRegion := propose(t, st, "transfer_leader", map[string]int{"region_id": 7, "to_store_id": 5}, time.Time{})
	sameStore := propose(t, st, "drain_store", map[string]int{"store_id": 4}, time.Time{})
	other := propose(t, st, "transfer_leader", map[string]int{"region_id": 8, "to_store_id": 5}, time.Time{})
	for _, p := range []action.Proposal{first, sameRegion, sameStore} {
		if _, err := e.Approve(ctx, p.ID, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	run(t, e)
	waitStatus(t, st, first.ID, action.Executing)
	if _, err := e.Approve(ctx, other.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, st, other.ID, action.Executing) // runs alongside
	for _, p := range []action.Proposal{sameRegion, sameStore} {
		if got, _ := st.Proposal(ctx, p.ID); got.Status != action.Approved {
			t.Errorf("proposal %d touching a busy target is %s, want approved (waiting)", p.ID, got.Status)
		}
	}
	close(release)
	for _, p := range []action.Proposal{first, sameRegion, sameStore, other} {
		if got := waitStatus(t, st, p.ID, action.Completed, action.Failed); got.Status != action.Completed {
			t.Errorf("proposal %d: %s %s", p.ID, got.Status, got.Result)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range maxSeen {
		if n > 1 {
			t.Errorf("%d executions at once on %s", n, k)
		}
	}
	// First before the waiting ones: claim order follows approval.
	f, _ := st.Proposal(ctx, first.ID)
	s, _ := st.Proposal(ctx, sameRegion.ID)
	if s.ExecutedAt.Before(*f.FinishedAt) {
		t.Errorf("region 7's second action started %v before the first finished %v", s.ExecutedAt, f.FinishedAt)
	}
}

func TestApprovalPolicy(t *testing.T) {
	st := tempStore(t)
	cat := action.NewCatalog(&fakeAction{spec: regionSpec("transfer_leader")})
	ctx := ctxT(t, time.Minute)
	e := New(Options{Store: st, Catalog: cat, MaxPerHour: 2})

	// A person who proposed an action cannot approve it.
	p := propose(t, st, "transfer_leader", map[string]int{"region_id": 1, "to_store_id": 2}, time.Time{})
	setProposer(t, st, p.ID, action.HumanProposer+"carol")
	if _, err := e.Approve(ctx, p.ID, "carol"); !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "carol proposed it") {
		t.Errorf("self-approval: %v", err)
	}
	if got, _ := st.Proposal(ctx, p.ID); got.Status != action.Proposed {
		t.Errorf("refused approval changed status to %s", got.Status)
	}
	// Unknown action type and invalid params: refused before approval.
	unknown := propose(t, st, "reboot_cluster", map[string]int{}, time.Time{})
	if _, err := e.Approve(ctx, unknown.ID, "alice"); !errors.Is(err, ErrPolicy) || !errors.Is(err, action.ErrUnknownAction) {
		t.Errorf("unknown action: %v", err)
	}
	bad := propose(t, st, "transfer_leader", map[string]any{"region_id": "seven"}, time.Time{})
	if _, err := e.Approve(ctx, bad.ID, "alice"); !errors.Is(err, ErrPolicy) || !errors.Is(err, action.ErrInvalidParams) {
		t.Errorf("invalid params: %v", err)
	}

	// Hourly cap 2: one started this hour + one approved waiting = full.
	started := propose(t, st, "transfer_leader", map[string]int{"region_id": 3, "to_store_id": 2}, time.Time{})
	if _, err := e.Approve(ctx, started.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimID(ctx, started.ID, "elsewhere", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Approve(ctx, p.ID, "alice"); err != nil {
		t.Fatalf("approval within the cap: %v", err)
	}
	third := propose(t, st, "transfer_leader", map[string]int{"region_id": 4, "to_store_id": 2}, time.Time{})
	_, err := e.Approve(ctx, third.ID, "alice")
	if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "hourly execution cap reached: 1 executions started in the last hour and 1 approved actions waiting (max-executions-per-hour 2)") {
		t.Errorf("approval over the cap: %v", err)
	}
	// The cap counts a trailing hour: an hour later there is room again.
	later := New(Options{Store: st, Catalog: cat, MaxPerHour: 2, Clock: func() time.Time { return time.Now().Add(61 * time.Minute) }})
	third = propose(t, st, "transfer_leader", map[string]int{"region_id": 4, "to_store_id": 2}, time.Now().Add(2*time.Hour))
	if _, err := later.Approve(ctx, third.ID, "alice"); err != nil {
		t.Errorf("approval an hour later: %v", err)
	}
}

// Run leaves approved proposals waiting once MaxPerHour executions
// started in the trailing hour.
func TestRunHonoursHourlyCap(t *testing.T) {
	st := tempStore(t)
	cat := action.NewCatalog(&fakeAction{spec: regionSpec("transfer_leader")})
	ctx := ctxT(t, time.Minute)
	a := propose(t, st, "transfer_leader", map[string]int{"region_id": 1, "to_store_id": 2}, time.Time{})
	b := propose(t, st, "transfer_leader", map[string]int{"region_id": 2, "to_store_id": 2}, time.Time{})
	for _, p := range []action.Proposal{a, b} { // approved as the CLI does, without the policy
		if _, err := st.Approve(ctx, p.ID, "alice", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e := New(Options{Store: st, Catalog: cat, MaxPerHour: 1, PollInterval: 20 * time.Millisecond, Logger: testLogger(t)})
	stop := run(t, e)
	waitStatus(t, st, a.ID, action.Completed)
	time.Sleep(10 * e.poll) // several polls
	stop()
	if got, _ := st.Proposal(ctx, b.ID); got.Status != action.Approved {
		t.Errorf("second proposal is %s, want approved (capped)", got.Status)
	}
	if n, _ := st.ExecutionsSince(ctx, time.Now().Add(-time.Hour)); n != 1 {
		t.Errorf("%d executions, want 1", n)
	}
}

// Failures the executor classifies itself: an action type the catalog does
// not know and an error whose effect is unknown; and the ticket follow-up
// (resolve when the invariant holds, reopen when it does not).
func TestExecutionOutcomes(t *testing.T) {
	st := tempStore(t)
	var (
		mu    sync.Mutex
		calls []string
	)
	called := func(name string) {
		mu.Lock()
		calls = append(calls, name)
		mu.Unlock()
	}
	lost := &fakeAction{spec: regionSpec("flaky"), exec: func(context.Context, json.RawMessage) (action.Outcome, error) {
		called("flaky")
		return action.Outcome{Message: "effect unknown: POST /x", Requests: []action.Request{{Method: "POST", Path: "/x"}}},
			errors.New("connection reset after sending")
	}}
	refused := &fakeAction{spec: regionSpec("refused"), dry: func(context.Context, json.RawMessage) (action.DryRunResult, error) {
		return action.DryRunResult{Valid: false, Message: "refused: x", Preconditions: []action.Check{
			{Name: "region_exists", Passed: true, Detail: "ok"}, {Name: "target_store_up", Passed: false, Detail: "store 4 is Down (must be Up)"}}}, nil
	}, exec: func(context.Context, json.RawMessage) (action.Outcome, error) {
		called("refused")
		return action.Outcome{}, nil
	}}
	good := &fakeAction{spec: regionSpec("good")}
	held := map[int64]bool{}
	e := New(Options{Store: st, Catalog: action.NewCatalog(lost, refused, good), Logger: testLogger(t), PollInterval: 20 * time.Millisecond,
		Reevaluate: func(_ context.Context, tk ticket.Ticket) (bool, error) { return held[tk.ID], nil },
		Capture: func(_ context.Context, params json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`{"params":` + string(params) + `}`), nil
		}})
	ctx := ctxT(t, time.Minute)
	unknown := propose(t, st, "gone_action", map[string]int{"region_id": 1}, time.Time{})
	flaky := propose(t, st, "flaky", map[string]int{"region_id": 2, "to_store_id": 1}, time.Time{})
	ref := propose(t, st, "refused", map[string]int{"region_id": 3, "to_store_id": 4}, time.Time{})
	ok := propose(t, st, "good", map[string]int{"region_id": 4, "to_store_id": 1}, time.Time{})
	held[ok.TicketID] = true
	// A newer diagnosis of the same ticket proposed something else, still
	// pending: it expires when the ticket resolves.
	if err := st.Reopen(ctx, ok.TicketID, time.Now()); err != nil {
		t.Fatal(err)
	}
	pendingID, err := st.SaveDiagnosis(ctx, ok.TicketID, store.DiagnosisInput{Markdown: "again", Backend: "rules",
		Proposal: &action.Proposal{ActionType: "good", Params: json.RawMessage(`{"region_id":9,"to_store_id":1}`), ExpiresAt: time.Now().Add(time.Hour)}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []action.Proposal{unknown, flaky, ref, ok} {
		if _, err := st.Approve(ctx, p.ID, "alice", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	run(t, e)
	for _, tc := range []struct {
		p      action.Proposal
		status action.Status
		result string
		ticket ticket.Status
	}{
		// An action the daemon's catalog does not know is refused at claim
		// time, with nothing sent; the ticket keeps its diagnosis.
		{unknown, action.Refused, `refused at claim: unknown action type "gone_action"`, ticket.Diagnosed},
		{flaky, action.Failed, "outcome unknown: effect unknown: POST /x: connection reset after sending", ticket.Diagnosed},
		{ref, action.Failed, "refused, nothing sent to PD: preconditions no longer hold: target_store_up: store 4 is Down (must be Up)", ticket.Open},
		{ok, action.Completed, "done", ticket.Resolved},
	} {
		got := waitStatus(t, st, tc.p.ID, action.Completed, action.Failed, action.Refused)
		if got.Status != tc.status || got.Result != tc.result {
			t.Errorf("%s: %s %q, want %s %q", tc.p.ActionType, got.Status, got.Result, tc.status, tc.result)
		}
		recs := records(t, st, tc.p.ID)
		wantEvent := action.EventExecution
		if tc.status == action.Refused {
			wantEvent = action.EventRefusal
		}
		if len(recs) != 2 || recs[0].Event != wantEvent || recs[0].Success != (tc.status == action.Completed) || !strings.Contains(recs[0].Message, tc.result) {
			t.Errorf("%s records: %+v", tc.p.ActionType, recs)
		} else {
			approvalRecord(t, recs[1], tc.p.ID, "alice")
		}
		// Wait for the ticket follow-up, which runs after the record.
		wctx := ctxT(t, 10*time.Second)
		for {
			tk, _ := st.Ticket(ctx, tc.p.TicketID)
			if tk.Status == tc.ticket {
				break
			}
			if wctx.Err() != nil {
				t.Errorf("%s: ticket %s, want %s", tc.p.ActionType, tk.Status, tc.ticket)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got, _ := st.Proposal(ctx, pendingID); got.Status != action.Expired {
		t.Errorf("pending proposal of the resolved ticket is %s, want expired", got.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(calls, "refused") {
		t.Error("Execute was called although the re-checked preconditions failed")
	}
	verifyOK(t, st)
}

// Recover leaves a proposal claimed by another live process on this host
// alone (another daemon is executing it) and recovers one whose process
// is gone.
func TestRecoverSkipsLiveExecutor(t *testing.T) {
	st := tempStore(t)
	e := New(Options{Store: st, Catalog: action.NewCatalog(&fakeAction{spec: regionSpec("transfer_leader")}), Name: "me"})
	ctx := ctxT(t, time.Minute)
	host, _ := os.Hostname()
	live := propose(t, st, "transfer_leader", map[string]int{"region_id": 1, "to_store_id": 2}, time.Time{})
	dead := propose(t, st, "transfer_leader", map[string]int{"region_id": 2, "to_store_id": 2}, time.Time{})
	for p, by := range map[int64]string{live.ID: fmt.Sprintf("%s:%d", host, os.Getppid()), dead.ID: "gone-host:1"} {
		if _, err := st.Approve(ctx, p, "alice", time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ClaimID(ctx, p, by, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != dead.ID || got[0].Status != action.Failed || !strings.HasPrefix(got[0].Result, Interrupted) {
		t.Fatalf("recovered %+v", got)
	}
	if p, _ := st.Proposal(ctx, live.ID); p.Status != action.Executing {
		t.Errorf("live executor's proposal is %s", p.Status)
	}
}

func TestCrasher(t *testing.T) {
	if _, err := NewCrasher("sometime"); err == nil {
		t.Error("unknown crash point accepted")
	}
	t.Setenv(CrashEnv, "")
	if c, err := NewCrasherFromEnv(); c != nil || err != nil {
		t.Errorf("unset env: %v, %v", c, err)
	}
	t.Setenv(CrashEnv, "after_request")
	c, err := NewCrasherFromEnv()
	if err != nil || c.Point() != CrashAfterRequest {
		t.Fatalf("%v, %v", c, err)
	}
	killed := 0
	c.kill = func() { killed++ }
	obs := c.Observer()
	obs("POST", "/pd/api/v1/operators", 200, time.Millisecond, 10) // not armed: outside an execution
	c.arm()
	obs("GET", "/pd/api/v1/region/id/{id}", 200, time.Millisecond, 10)
	if killed != 0 {
		t.Fatalf("killed %d times before the mutating request", killed)
	}
	obs("POST", "/pd/api/v1/operators", 200, time.Millisecond, 10)
	if killed != 1 {
		t.Fatalf("killed %d times after it", killed)
	}
	var nilCrasher *Crasher
	nilCrasher.Observer()("POST", "/x", 200, 0, 0)
	nilCrasher.at(CrashBeforeRecord)
}
