package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/tikv"
)

// Environment of the helper process.
const (
	helperDBEnv = "OPERATOR_EXECUTOR_HELPER_DB"
	helperPDEnv = "OPERATOR_EXECUTOR_HELPER_PD"
	// exitNoCrash is the helper's exit code when the crash point was
	// never reached.
	exitNoCrash = 3
)

// TestHelperProcess is not a test: run as a child by TestCrashAtEachStep
// (selected by $OPERATOR_EXECUTOR_HELPER=1), it runs an executor on the
// real SQLite file and PD (through the parent's proxy) with the crash point
// of $OPERATOR_TEST_CRASH_AT, exactly as the daemon wires it, and is
// SIGKILLed by its own crash hook.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestCrashAtEachStep")
	}
	crash, err := NewCrasherFromEnv()
	if err != nil || crash == nil {
		fmt.Fprintln(os.Stderr, "helper: crash point:", crash, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, os.Getenv(helperDBEnv), store.Options{})
	if err == nil {
		err = st.BindCluster(ctx, testClusterID, "", time.Now())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	pdc, err := pd.New([]string{os.Getenv(helperPDEnv)}, pd.WithObserver(crash.Observer()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	e := New(Options{
		Store: st, Catalog: tikv.NewCatalog(pdc, tikv.WithPollInterval(50*time.Millisecond)),
		Capture: func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
			return tikv.CaptureState(ctx, pdc, params)
		},
		Crash: crash, Logger: testLogger(t),
	})
	err = e.Run(ctx)
	fmt.Fprintln(os.Stderr, "helper: Run returned without crashing:", err)
	os.Exit(exitNoCrash)
}

// A process killed (SIGKILL, no cleanup) at each step of an execution
// leaves the proposal visibly executing; the next executor never runs it
// again: it marks it failed "interrupted; outcome unknown" with what PD
// shows, PD received at most one operator for the region, and the audit
// trail holds one interrupted record and verifies.
func TestCrashAtEachStep(t *testing.T) {
	for _, tc := range []struct {
		point CrashPoint
		// sent: the operator request reached PD before the kill.
		sent bool
		// hint: what the recovery's dry run says.
		hint string
	}{
		{CrashBeforeRequest, false, "still finds it applicable"},
		{CrashAfterRequest, true, "refuses it (the effect may be in place)"},
		{CrashBeforeRecord, true, "refuses it (the effect may be in place)"},
	} {
		t.Run(string(tc.point), func(t *testing.T) {
			h := newHarness(t)
			r := pickRegion(t)
			p := propose(t, h.st, tikv.ActionTransferLeader, transferParams(r), time.Time{})
			ctx := ctxT(t, 2*time.Minute)
			// Approved as the CLI does, straight in the store.
			if _, err := h.st.Approve(ctx, p.ID, "alice", time.Now()); err != nil {
				t.Fatal(err)
			}
			mark := proxy.mark()

			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
			cmd.Env = append(os.Environ(), helperEnv+"=1", helperDBEnv+"="+h.path,
				helperPDEnv+"="+proxy.URL(), CrashEnv+"="+string(tc.point))
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			ws, ok := ee.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("helper was not SIGKILLed (%v)\n%s", err, out)
			}
			childName := fmt.Sprintf("%s:%d", hostname(t), cmd.Process.Pid)

			// Status visible: still executing, claimed by the dead child,
			// nothing recorded but the approval.
			got, err := h.st.Proposal(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != action.Executing || got.ExecutedBy != childName {
				t.Fatalf("after the kill: %s by %q, want executing by %s", got.Status, got.ExecutedBy, childName)
			}
			if recs := records(t, h.st, p.ID); len(recs) != 1 {
				t.Fatalf("the killed process recorded: %+v", recs)
			} else {
				approvalRecord(t, recs[0], p.ID, "alice")
			}
			posts := operatorPosts(proxy.since(mark))
			if tc.sent != (len(posts) == 1) || len(posts) > 1 {
				t.Fatalf("%d operator requests reached PD before the kill at %s", len(posts), tc.point)
			}
			want := r.Leader
			if tc.sent {
				want = r.Follower
				// PD carries the operator out without the dead process.
				if err := shared.WaitFor(ctx, func() (bool, error) { return leaderOf(t, r.ID) == r.Follower, nil }); err != nil {
					t.Fatalf("leader never moved: %v", err)
				}
			}

			// A new executor starts: recovery, then its normal loop.
			e := h.executor(func(o *Options) { o.Name = "restarted" })
			stop := run(t, e)
			fin := waitStatus(t, h.st, p.ID, action.Failed, action.Completed)
			if fin.Status != action.Failed || !strings.HasPrefix(fin.Result, Interrupted) ||
				!strings.Contains(fin.Result, childName) || !strings.Contains(fin.Result, tc.hint) {
				t.Fatalf("recovered: %s %q", fin.Status, fin.Result)
			}
			// Let the loop poll a few times (it could only claim an
			// approved proposal; this one is final), then stop it.
			time.Sleep(5 * e.poll)
			stop()

			// No second execution: PD got at most the one request, and
			// the leader moved at most once.
			if n := len(operatorPosts(proxy.since(mark))); n != len(posts) {
				t.Errorf("%d operator requests after recovery, want %d (no second execution)", n, len(posts))
			}
			if l := leaderOf(t, r.ID); l != want {
				t.Errorf("leader on %d, want %d", l, want)
			}
			op, err := h.pdc.RegionOperator(ctx, r.ID)
			switch {
			case tc.sent && err != nil:
				t.Errorf("PD shows no operator for region %d: %v", r.ID, err)
			case tc.sent && (!strings.HasPrefix(op.Desc, "admin-transfer-leader") || !op.Status.Finished()):
				t.Errorf("region %d operator = %+v", r.ID, op)
			case !tc.sent && err == nil && !op.Status.Finished():
				t.Errorf("a new operator runs on region %d: %+v", r.ID, op)
			}

			recs := records(t, h.st, p.ID)
			if len(recs) != 2 || recs[0].Success || !recs[0].IsExecution() || recs[0].ExecutedBy != childName ||
				!strings.HasPrefix(recs[0].Message, Interrupted) || recs[0].ApprovedBy != "alice" {
				t.Fatalf("records = %+v", recs)
			}
			approvalRecord(t, recs[1], p.ID, "alice")
			if l := stateRegionLeader(t, recs[0].StateAfter); l != want {
				t.Errorf("recorded PD state shows leader %d, want %d", l, want)
			}
			rep := verifyOK(t, h.st)

			// Another restart changes nothing: the records are unchanged
			// and the chain still verifies to the same head.
			again := h.executor(func(o *Options) { o.Name = "restarted-again" })
			if rec, err := again.Recover(ctx); err != nil || len(rec) != 0 {
				t.Errorf("second recovery: %v, %v", rec, err)
			}
			if rep2 := verifyOK(t, h.st); rep2.HeadHash != rep.HeadHash || rep2.Records != rep.Records {
				t.Errorf("chain changed: %+v -> %+v", rep, rep2)
			}
		})
	}
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
