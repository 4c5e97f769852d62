package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver for rawDB

	"github.com/tikvops/operator/internal/pgtest"
)

// One PostgreSQL server for the package's tests (internal/pgtest); each
// test gets a fresh database.
func TestMain(m *testing.M) { pgtest.Main(m) }

// backend is one database the conformance suite runs on: every test
// written as func(t *testing.T, be backend) runs once per backend
// (forEachBackend), as subtests "sqlite" and "postgres".
type backend struct {
	name string
	// target returns a new empty database: a file path (SQLite) or a URL
	// (PostgreSQL, the superuser's: tests tamper with it).
	target func(t testing.TB) string
}

var backends = []backend{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "operator.db") }},
	{"postgres", func(t testing.TB) string { return pgtest.NewDatabaseFrom(t, pgTemplate(t)) }},
}

// pgTemplate returns the name of a database migrated to SchemaVersion,
// made once per test binary; each test copies it (migrating a new
// database in every test costs more than the copy). Tests of the
// migrations themselves use pgtest.NewDatabase.
func pgTemplate(t testing.TB) string {
	t.Helper()
	return pgtest.Template(t, fmt.Sprintf("store_schema_v%d", SchemaVersion), func(url string) error {
		s, err := Open(context.Background(), url, Options{})
		if err != nil {
			return err
		}
		return s.Close()
	})
}

// forEachBackend runs f as one subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, be backend)) {
	t.Helper()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { f(t, be) })
	}
}

func (be backend) pg() bool { return be.name == "postgres" }

// openTemp opens a store on a new database of the backend and returns it
// with its target (open more handles on it with openAt).
func (be backend) openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	target := be.target(t)
	return openAt(t, target), target
}

// rawDB opens the database with plain SQL and no store, as someone
// tampering with it would (on PostgreSQL: as the superuser, on one
// connection so that session settings stick).
func (be backend) rawDB(t *testing.T, target string) *sql.DB {
	t.Helper()
	if !be.pg() {
		return rawDB(t, target)
	}
	db, err := sql.Open("pgx", target)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

var dropTrigger = regexp.MustCompile(`^DROP TRIGGER ((action_records|silences|silence_expiries)_no_[a-z]+)$`)

// sqlFor translates a SQLite tampering statement for the backend:
// PostgreSQL's sequence table is id_sequence, and dropping an append-only
// trigger becomes turning the session's triggers off.
func (be backend) sqlFor(q string) string {
	if !be.pg() {
		return q
	}
	if dropTrigger.MatchString(q) {
		// A superuser turns every trigger of the session off, the
		// append-only ones and the foreign keys' (SQLite's raw handle
		// does not enforce foreign keys either).
		return "SET session_replication_role = replica"
	}
	return strings.ReplaceAll(q, "sqlite_sequence", "id_sequence")
}

// exec runs tampering statements (translated by sqlFor) on a raw handle.
func (be backend) exec(t *testing.T, target string, stmts ...string) {
	t.Helper()
	db := be.rawDB(t, target)
	for _, q := range stmts {
		if _, err := db.ExecContext(context.Background(), be.sqlFor(q)); err != nil {
			t.Fatalf("%s: %v", be.sqlFor(q), err)
		}
	}
}

// tamper runs statements with the append-only triggers off, as an attacker
// with write access to the file (SQLite) or superuser rights (PostgreSQL)
// could.
func (be backend) tamper(t *testing.T, target string, stmts ...string) {
	t.Helper()
	if !be.pg() {
		tamper(t, target, stmts...)
		return
	}
	be.exec(t, target, append([]string{`DROP TRIGGER action_records_no_update`, `DROP TRIGGER action_records_no_delete`}, stmts...)...)
}
