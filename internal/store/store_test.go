package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// t0 is the tests' fixed clock origin.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{Create: true})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "operator.db")
	return openAt(t, path), path
}

// rawDB opens the file with plain SQL, as someone tampering with it would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func obs(inv, subject string, ev string) ticket.Observation {
	return ticket.Observation{
		Invariant: inv, Subject: subject, Severity: ticket.Critical,
		Summary: inv + " on " + subject, Evidence: json.RawMessage(ev),
	}
}

// proposed creates a diagnosed ticket with one proposal expiring at
// t0+1h and returns the proposal id.
func proposed(t testing.TB, s *Store, subject string) int64 {
	t.Helper()
	ctx := context.Background()
	tk, _, err := s.Observe(ctx, obs("store_down", subject, `{"state":"Down"}`), t0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{
		Markdown: "store is down", JSON: json.RawMessage(`{"cause":"down"}`), Backend: "rules",
		Proposal: &action.Proposal{
			ActionType: "remove_store", Params: json.RawMessage(`{"store_id":4}`),
			Rationale: "drain it", Risks: []string{"moves data"}, Urgency: action.Soon,
			ExpiresAt: t0.Add(time.Hour),
		},
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOpenMissingWithoutCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "operator.db")
	_, err := Open(context.Background(), path, Options{})
	if !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("Open missing: err = %v, want ErrNoDatabase", err)
	}
	if want := path; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the path %s", err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open without Create created the directory (stat err %v)", err)
	}
	// Same with an existing directory: no file may appear.
	path = filepath.Join(dir, "operator.db")
	if _, err := Open(context.Background(), path, Options{}); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("Open missing: err = %v, want ErrNoDatabase", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("Open without Create left files: %v", entries)
	}
}

func TestOpenCreatesParentAndConfigures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "operator.db")
	s := openAt(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("file not created: %v", err)
	}
	ctx := context.Background()
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
		{"synchronous", "2"}, // FULL
	} {
		var got string
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	// A second handle without Create opens the existing file.
	s2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("Open existing without Create: %v", err)
	}
	s2.Close()
}

func TestMigrationsNumbered(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 {
			t.Errorf("migration %d has version %d", i, m.version)
		}
	}
	if last := migrations[len(migrations)-1].version; last != SchemaVersion {
		t.Errorf("SchemaVersion = %d, last migration %d", SchemaVersion, last)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	if _, _, err := s.Observe(ctx, obs("store_down", "store:1", `{}`), t0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for i := 0; i < 3; i++ {
		s2, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatalf("re-open %d: %v", i, err)
		}
		v, err := s2.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != SchemaVersion {
			t.Errorf("version = %d, want %d", v, SchemaVersion)
		}
		var n int
		if err := s2.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(migrations) {
			t.Errorf("schema_migrations has %d rows, want %d", n, len(migrations))
		}
		tk, err := s2.OpenTicket(ctx, "store_down/store:1")
		if err != nil || tk.Occurrences != 1 {
			t.Errorf("ticket after re-open: %+v, %v", tk, err)
		}
		s2.Close()
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "operator.db")
	ctx := context.Background()
	const openers = 8
	errs := make(chan error, openers)
	stores := make(chan *Store, openers)
	for i := 0; i < openers; i++ {
		go func() {
			s, err := Open(ctx, path, Options{Create: true})
			errs <- err
			stores <- s
		}()
	}
	for i := 0; i < openers; i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
		if s := <-stores; s != nil {
			s.Close()
		}
	}
	s := openAt(t, path)
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(migrations))
	}
}

func TestSchemaTooNew(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations(version, name) VALUES (?, 'future')`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, path, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

func TestOpenPathWithURICharacters(t *testing.T) {
	// '?' and '#' and '%' must not be taken as URI syntax.
	path := filepath.Join(t.TempDir(), "we?ird#name%20.db")
	s := openAt(t, path)
	if _, _, err := s.Observe(context.Background(), obs("x", "y", `{}`), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("file not at the literal path: %v", err)
	}
}

// Example of the error a CLI user sees.
func ExampleOpen_missing() {
	_, err := Open(context.Background(), "/nonexistent/operator.db", Options{})
	fmt.Println(errors.Is(err, ErrNoDatabase))
	// Output: true
}
