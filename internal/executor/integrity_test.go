package executor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// signedWorld is a store with the daemon's audit key, an executor that
// verifies signatures with it, and a counting fake action.
type signedWorld struct {
	st       *store.Store
	path     string
	e        *Executor
	executed atomic.Int32
	now      atomic.Pointer[time.Time]
}

func newSignedWorld(t *testing.T, specs ...action.Spec) *signedWorld {
	t.Helper()
	dir := t.TempDir()
	w := &signedWorld{path: filepath.Join(dir, "operator.db")}
	w.st = openStore(t, w.path, true)
	key, err := auditkey.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	w.st.SetAuditKey(key, auditkey.NewCheckpoint(dir, key), nil)
	now := time.Now()
	w.now.Store(&now)
	var acts []action.Action
	for _, sp := range specs {
		acts = append(acts, &fakeAction{spec: sp, exec: func(context.Context, json.RawMessage) (action.Outcome, error) {
			w.executed.Add(1)
			return action.Outcome{Success: true, Message: "done", Requests: []action.Request{{Method: "POST", Path: "/fake"}}}, nil
		}})
	}
	w.e = New(Options{Store: w.st, Catalog: action.NewCatalog(acts...), PollInterval: 20 * time.Millisecond,
		Verifier: key.Public(), Clock: func() time.Time { return *w.now.Load() }})
	return w
}

func (w *signedWorld) advance(d time.Duration) {
	n := w.now.Load().Add(d)
	w.now.Store(&n)
}

func (w *signedWorld) sql(t *testing.T, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+w.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func approver(name string) auth.Identity {
	return auth.Identity{Name: name, Role: auth.Approver, Via: "test"}
}

// Issue 10's attacks on the approval, each refused where the action runs.
func TestClaimTimeIntegrity(t *testing.T) {
	spec := regionSpec("transfer_leader")
	t.Run("status forged with SQL after a rejection", func(t *testing.T) {
		w := newSignedWorld(t, spec)
		p := propose(t, w.st, "transfer_leader", map[string]int{"region_id": 1, "to_store_id": 2}, time.Time{})
		if _, err := w.e.RejectAs(context.Background(), p.ID, approver("bob"), Decision{}, "no"); err != nil {
			t.Fatal(err)
		}
		w.sql(t, `UPDATE action_proposals SET status = 'approved', approved_by = 'mallory' WHERE id = ?`, p.ID)
		defer run(t, w.e)()
		got := waitStatus(t, w.st, p.ID, action.Refused, action.Completed, action.Failed)
		if got.Status != action.Refused || w.executed.Load() != 0 || !strings.Contains(got.Result, "no approval record") {
			t.Errorf("forged approval: %s %q, executed %d", got.Status, got.Result, w.executed.Load())
		}
	})
	t.Run("params edited after approval", func(t *testing.T) {
		w := newSignedWorld(t, spec)
		p := propose(t, w.st, "transfer_leader", map[string]int{"region_id": 1, "to_store_id": 2}, time.Time{})
		if _, _, err := w.e.ApproveAs(context.Background(), p.ID, approver("alice"), Decision{}); err != nil {
			t.Fatal(err)
		}
		w.sql(t, `UPDATE action_proposals SET params = '{"region_id":1,"to_store_id":3}' WHERE id = ?`, p.ID)
		defer run(t, w.e)()
		got := waitStatus(t, w.st, p.ID, action.Refused, action.Completed, action.Failed)
		if got.Status != action.Refused || w.executed.Load() != 0 || !strings.Contains(got.Result, "other params") {
			t.Errorf("edited params: %s %q", got.Status, got.Result)
		}
	})
	t.Run("approval record forged with another key", func(t *testing.T) {
		w := newSignedWorld(t, spec)
		p := propose(t, w.st, "transfer_leader", map[string]int{"region_id": 1, "to_store_id": 2}, time.Time{})
		forger := openStore(t, w.path, false) // no key: the attacker's own writer
		if _, err := forger.Approve(context.Background(), p.ID, "mallory", time.Now()); err != nil {
			t.Fatal(err)
		}
		defer run(t, w.e)()
		got := waitStatus(t, w.st, p.ID, action.Refused, action.Completed, action.Failed)
		if got.Status != action.Refused || w.executed.Load() != 0 || !strings.Contains(got.Result, "not signed by this daemon") {
			t.Errorf("forged record: %s %q", got.Status, got.Result)
		}
	})
	t.Run("approval past its TTL", func(t *testing.T) {
		w := newSignedWorld(t, spec)
		p := propose(t, w.st, "transfer_leader", map[string]int{"region_id": 1, "to_store_id": 2}, time.Now().Add(48*time.Hour))
		if _, _, err := w.e.ApproveAs(context.Background(), p.ID, approver("alice"), Decision{}); err != nil {
			t.Fatal(err)
		}
		w.advance(store.DefaultApprovalTTL + time.Minute) // the daemon was down meanwhile
		defer run(t, w.e)()
		got := waitStatus(t, w.st, p.ID, action.Expired, action.Completed, action.Failed, action.Refused)
		if got.Status != action.Expired || w.executed.Load() != 0 {
			t.Errorf("stale approval: %s %q, executed %d", got.Status, got.Result, w.executed.Load())
		}
	})
	t.Run("made for another cluster", func(t *testing.T) {
		w := newSignedWorld(t, spec)
		p := propose(t, w.st, "transfer_leader", map[string]int{"region_id": 1, "to_store_id": 2}, time.Time{})
		if _, _, err := w.e.ApproveAs(context.Background(), p.ID, approver("alice"), Decision{}); err != nil {
			t.Fatal(err)
		}
		w.sql(t, `UPDATE action_proposals SET cluster_id = '9999' WHERE id = ?`, p.ID)
		defer run(t, w.e)() // this cluster's executor no longer sees it
		// The daemon of cluster 9999, sharing the database and the key,
		// claims it and refuses it: the approval is bound to the other
		// cluster.
		otherSt, err := store.Open(context.Background(), w.path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer otherSt.Close()
		if err := otherSt.BindCluster(context.Background(), "9999", "other", time.Now()); err != nil {
			t.Fatal(err)
		}
		key, err := auditkey.LoadOrCreate(filepath.Dir(w.path))
		if err != nil {
			t.Fatal(err)
		}
		otherSt.SetAuditKey(key, nil, nil)
		other := New(Options{Store: otherSt, Catalog: w.e.cat, PollInterval: 20 * time.Millisecond, Verifier: key.Public(),
			Clock: func() time.Time { return *w.now.Load() }})
		defer run(t, other)()
		got := waitStatus(t, w.st, p.ID, action.Refused, action.Completed, action.Failed)
		if got.Status != action.Refused || w.executed.Load() != 0 || !strings.Contains(got.Result, "approved it for cluster") {
			t.Errorf("other cluster: %s %q", got.Status, got.Result)
		}
	})
	t.Run("invariant holds again at claim", func(t *testing.T) {
		w := newSignedWorld(t, spec)
		w.e.holds = func(context.Context, ticket.Ticket) (bool, error) { return true, nil }
		p := propose(t, w.st, "transfer_leader", map[string]int{"region_id": 1, "to_store_id": 2}, time.Time{})
		if _, _, err := w.e.ApproveAs(context.Background(), p.ID, approver("alice"), Decision{}); err != nil {
			t.Fatal(err)
		}
		defer run(t, w.e)()
		got := waitStatus(t, w.st, p.ID, action.Expired, action.Completed, action.Failed)
		if got.Status != action.Expired || w.executed.Load() != 0 || !strings.Contains(got.Result, "holds again") {
			t.Errorf("fixed meanwhile: %s %q", got.Status, got.Result)
		}
	})
}

// Roles and the two-person rule are the daemon's policy, whatever the
// caller's configuration.
func TestPolicyRolesAndTwoPeople(t *testing.T) {
	high := storeSpec("drain_store")
	high.Risk, high.Capacity = action.RiskHigh, true
	w := newSignedWorld(t, high)
	ctx := context.Background()
	p := propose(t, w.st, "drain_store", map[string]int{"store_id": 4}, time.Time{})
	if _, _, err := w.e.ApproveAs(ctx, p.ID, auth.Identity{Name: "val", Role: auth.Viewer}, Decision{}); !errorsIs(err, ErrForbidden) {
		t.Errorf("viewer approval: %v", err)
	}
	if _, _, err := w.e.ApproveAs(ctx, p.ID, approver("alice"), Decision{OnBehalfOf: "bob"}); !errorsIs(err, ErrForbidden) {
		t.Errorf("non-admin on behalf of: %v", err)
	}
	if _, _, err := w.e.ApproveAs(ctx, p.ID, approver("bob\u200b"), Decision{}); !errorsIs(err, store.ErrInvalid) {
		t.Errorf("zero-width name: %v", err)
	}
	np, res, err := w.e.ApproveAs(ctx, p.ID, approver("alice"), Decision{})
	if err != nil || np.Status != action.Proposed || res.Approvals != 1 || res.Required != 2 {
		t.Fatalf("first approval of a high-risk action: %+v %+v %v", np.Status, res, err)
	}
	if _, _, err := w.e.ApproveAs(ctx, p.ID, approver("ALICE"), Decision{}); !errorsIs(err, ErrPolicy) {
		t.Errorf("same person twice: %v", err)
	}
	np, res, err = w.e.ApproveAs(ctx, p.ID, approver("bob"), Decision{})
	if err != nil || np.Status != action.Approved || res.Approvals != 2 {
		t.Fatalf("second approval: %+v %+v %v", np.Status, res, err)
	}
	defer run(t, w.e)()
	if got := waitStatus(t, w.st, p.ID, action.Completed, action.Failed, action.Refused); got.Status != action.Completed {
		t.Errorf("two-person approved drain: %s %q", got.Status, got.Result)
	}
	recs := records(t, w.st, p.ID)
	if len(recs) != 3 || recs[1].ApprovedBy != "bob" || recs[2].ApprovedBy != "alice" || recs[1].ActorRole != "approver" {
		t.Errorf("records = %+v", recs)
	}
}

// Two capacity-reducing actions never execute at the same time, even on
// different stores.
func TestCapacityActionsSerialised(t *testing.T) {
	drain := storeSpec("drain_store")
	drain.Capacity = true
	keys := TargetKeys(drain, json.RawMessage(`{"store_id": 4}`))
	if len(keys) != 2 || keys[0] != CapacityKey {
		t.Fatalf("TargetKeys = %v", keys)
	}
	e := &Executor{cat: action.NewCatalog(&fakeAction{spec: drain})}
	a := action.Proposal{ActionType: "drain_store", Params: json.RawMessage(`{"store_id": 4}`)}
	b := action.Proposal{ActionType: "drain_store", Params: json.RawMessage(`{"store_id": 5}`)}
	if !e.conflicts(b, []action.Proposal{a}) {
		t.Error("a second drain may run while the first executes")
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
