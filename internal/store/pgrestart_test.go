package store

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tikvops/operator/internal/action"

	"github.com/tikvops/operator/internal/pgtest"
)

// TestPostgresWritesAcrossRestart: two stores (two replicas) on one
// PostgreSQL database write decisions while the server is restarted. A
// write that fails is one the restart cut short (its transaction rolled
// back, or its commit outcome unknown); every write that returned nil is
// in the database and the chain verifies. After the restart every pooled
// connection is dead: the first writes and reads on both stores succeed
// anyway (beginWrite retries BEGIN and the write lock on a new connection;
// a SELECT is retried by database/sql).
func TestPostgresWritesAcrossRestart(t *testing.T) {
	ctx := context.Background()
	a, target := backends[1].openTemp(t)
	b := openAt(t, target)
	stores := []*Store{a, b}
	var (
		mu       sync.Mutex
		approved = map[int64]bool{}
		failed   int
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := proposeErr(ctx, s, fmt.Sprintf("store:%d%d", w, i))
				if err == nil {
					_, err = s.Approve(ctx, id, "alice", t0)
				}
				mu.Lock()
				if err == nil {
					approved[id] = true
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	waitCount := func(n int) {
		t.Helper()
		limit := time.Now().Add(60 * time.Second)
		for {
			if time.Now().After(limit) {
				close(stop)
				wg.Wait()
				t.Fatalf("fewer than %d decisions recorded within 60 s (%d writes failed)", n, failed)
			}
			mu.Lock()
			k := len(approved)
			mu.Unlock()
			if k >= n {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCount(5)
	pgtest.Restart(t)
	mu.Lock()
	before := len(approved)
	mu.Unlock()
	waitCount(before + 5)
	close(stop)
	wg.Wait()
	t.Logf("%d decisions recorded, %d writes cut short by the restart", len(approved), failed)

	// Both stores' pools are dead again after a second restart: their
	// first write succeeds, and after a third their first read.
	pgtest.Restart(t)
	for i, s := range stores {
		id, err := proposeErr(ctx, s, fmt.Sprintf("store:after%d", i))
		if err == nil {
			_, err = s.Approve(ctx, id, "alice", t0)
		}
		if err != nil {
			t.Errorf("store %d: first write after the restart: %v", i, err)
		} else {
			approved[id] = true
		}
	}
	pgtest.Restart(t)
	for i, s := range stores {
		if _, err := s.Proposals(ctx, ProposalFilter{}); err != nil {
			t.Errorf("store %d: first read after the restart: %v", i, err)
		}
	}
	for id := range approved {
		apps, err := a.Approvals(ctx, id)
		if err != nil || len(apps) != 1 {
			t.Errorf("action %d: approval returned nil, but %d approval records: %v", id, len(apps), err)
		}
	}
	if rep := mustVerify(t, b, VerifyOptions{}); !rep.OK {
		t.Errorf("verify: %+v", rep.Broken)
	}
}

// proposeErr is proposed (a ticket, its diagnosis and proposal) returning
// the error instead of failing the test.
func proposeErr(ctx context.Context, s *Store, subject string) (int64, error) {
	tk, _, err := s.Observe(ctx, obs("store_down", subject, `{"state":"Down"}`), t0)
	if err != nil {
		return 0, err
	}
	return s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{
		Markdown: "store is down", JSON: json.RawMessage(`{"cause":"down"}`), Backend: "rules",
		Proposal: &action.Proposal{ActionType: "remove_store", Params: json.RawMessage(`{"store_id":4}`),
			Rationale: "drain it", Urgency: action.Soon, ExpiresAt: t0.Add(time.Hour)},
	}, t0)
}

// TestConnLost: which errors beginWrite retries (a lost or refused
// connection) and which it returns (a statement's own failure, a lock
// timeout, a cancelled context).
func TestConnLost(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{driver.ErrBadConn, true},
		{fmt.Errorf("begin write transaction: %w", &pgconn.PgError{Code: "57P01"}), true},
		{&pgconn.PgError{Code: "57P03"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{io.ErrUnexpectedEOF, true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{&pgconn.PgError{Code: "55P03"}, false}, // lock_timeout: another replica holds the write lock
		{&pgconn.PgError{Code: "23505"}, false}, // unique violation
		{context.Canceled, false},
		{ErrStaleTerm, false},
	} {
		if got := connLost(c.err); got != c.want {
			t.Errorf("connLost(%v) = %t, want %t", c.err, got, c.want)
		}
	}
	for q, want := range map[string]bool{"SELECT 1": true, "\n\t select x": true, "(SELECT 1)": true,
		"INSERT INTO t VALUES (1) RETURNING id": false, "WITH d AS (DELETE FROM t RETURNING *) SELECT 1": false} {
		if got := isSelect(q); got != want {
			t.Errorf("isSelect(%q) = %t", q, got)
		}
	}
}
