package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/tikvops/operator/internal/pgtest"
)

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`:                              `SELECT 1`,
		`a = ? AND b = ?`:                       `a = $1 AND b = $2`,
		`a = ?1 AND b = ?2 AND c = ?1`:          `a = $1 AND b = $2 AND c = $1`,
		`a = ?2 AND b = ?`:                      `a = $2 AND b = $3`,
		`x = '?' AND y = ?`:                     `x = '?' AND y = $1`,
		`x = 'it''s ?' AND "q?" = ?`:            `x = 'it''s ?' AND "q?" = $1`,
		"-- what?\nx = ? /* ? */ AND y = ?":     "-- what?\nx = $1 /* ? */ AND y = $2",
		`$b$ a ? b $b$ || ?`:                    `$b$ a ? b $b$ || $1`,
		`VALUES (?, ?) ON CONFLICT DO NOTHING`:  `VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		`unterminated 'string ? `:               `unterminated 'string ? `,
		`WHERE ticket_id = ?1 AND r = ?10 OR ?`: `WHERE ticket_id = $1 AND r = $10 OR $11`,
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

// pgExec runs statements as the superuser on the database of target.
func pgExec(t *testing.T, target string, stmts ...string) {
	t.Helper()
	backends[1].exec(t, target, stmts...)
}

// TestPostgresRuntimeRoleCannotChangeAudit: the daemon's runtime role
// (PostgresRuntimeGrants) writes tickets, decisions and records, but an
// UPDATE or DELETE of a record is refused to it by the privileges and to
// the owner by the triggers; a superuser who turns the triggers off and
// edits a record is caught by Verify.
func TestPostgresRuntimeRoleCannotChangeAudit(t *testing.T) {
	ctx := context.Background()
	owner, target := backends[1].openTemp(t) // the owner runs the migrations
	u, _ := url.Parse(target)
	db := strings.TrimPrefix(u.Path, "/")
	role := "rt_" + db
	pgExec(t, target, `CREATE ROLE "`+role+`" LOGIN PASSWORD 'runtime-secret'`, PostgresRuntimeGrants(role))
	t.Cleanup(func() {
		// The role owns nothing; drop its grants with the database.
		pgExec(t, pgtest.SuperuserURL(t, db), `DROP OWNED BY "`+role+`"`)
		pgExec(t, pgtest.SuperuserURL(t, ""), `DROP ROLE IF EXISTS "`+role+`"`)
	})

	rt := openAt(t, pgtest.URL(t, role, "runtime-secret", db))
	id := proposed(t, rt, "store:100")
	if _, err := rt.Approve(ctx, id, "alice", t0); err != nil {
		t.Fatalf("approve as the runtime role: %v", err)
	}
	chain(t, rt, 2)
	recs, err := owner.Records(ctx, RecordFilter{})
	if err != nil || len(recs) != 3 {
		t.Fatalf("records written by the runtime role: %d, %v", len(recs), err)
	}

	for _, q := range []string{
		`UPDATE action_records SET message = 'nothing happened' WHERE id = 1`,
		`DELETE FROM action_records WHERE id = 3`,
		`TRUNCATE action_records`,
		`TRUNCATE silence_expiries`,
	} {
		_, err := rt.db.ExecContext(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("runtime role: %s: err = %v, want permission denied", q, err)
		}
		_, err = owner.db.ExecContext(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("owner: %s: err = %v, want the append-only trigger to refuse", q, err)
		}
	}
	// The runtime role cannot switch triggers off either.
	if _, err := rt.db.ExecContext(ctx, `SET session_replication_role = replica`); err == nil {
		t.Errorf("runtime role may set session_replication_role")
	}
	if rep, err := rt.Verify(ctx); err != nil || !rep.OK || rep.Records != 3 {
		t.Fatalf("Verify after refused tampering = %+v, %v", rep, err)
	}

	// A superuser with the triggers off.
	backends[1].tamper(t, target, `UPDATE action_records SET message = 'approved by security' WHERE id = 2`)
	rep, err := rt.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Broken == nil || rep.Broken.Kind != BreakEdited || rep.Broken.ID != 2 {
		t.Errorf("Verify after a superuser's edit = %+v (broken %+v), want edited record 2", rep, rep.Broken)
	}
}

// TestPostgresOpenErrors: a wrong password or a missing database is
// reported with the host and database, never the password; a database
// migrated by a newer binary is refused with ErrSchemaTooNew.
func TestPostgresOpenErrors(t *testing.T) {
	ctx := context.Background()
	target := pgtest.NewDatabase(t)
	u, _ := url.Parse(target)
	pw, _ := u.User.Password()

	bad := *u
	bad.User = url.UserPassword("postgres", "wrong-"+pw)
	_, err := Open(ctx, bad.String(), Options{})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), u.Host) || !strings.Contains(err.Error(), u.Path) {
		t.Errorf("error %q: want host %s and database %s, and no password", err, u.Host, u.Path)
	}

	missing := *u
	missing.Path = "/no_such_db"
	_, err = Open(ctx, missing.String(), Options{Create: true})
	if !errors.Is(err, ErrNoDatabase) || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "no_such_db") {
		t.Errorf("Open of a missing database = %v, want ErrNoDatabase naming it without the password", err)
	}

	s := openAt(t, target)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations(version, name) VALUES (?, 'future')`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, target, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

// TestPostgresConcurrentOpenMigratesOnce: replicas starting at once on an
// empty database apply each migration once (the write lock).
func TestPostgresConcurrentOpenMigratesOnce(t *testing.T) {
	ctx := context.Background()
	target := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, target, Options{})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Open: %v", err)
	}
	s := openAt(t, target)
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(pgMigrations) {
		t.Errorf("schema_migrations has %d rows (%v), want %d", n, err, len(pgMigrations))
	}
	if v, err := s.Version(ctx); err != nil || v != SchemaVersion {
		t.Errorf("Version = %d, %v, want %d", v, err, SchemaVersion)
	}
}

// TestPostgresSchemaMatchesSQLite: the PostgreSQL schema at SchemaVersion
// has SQLite's tables, columns (name and NOT NULL), indexes and
// append-only triggers. A SQLite migration without its PostgreSQL twin
// fails here.
func TestPostgresSchemaMatchesSQLite(t *testing.T) {
	ctx := context.Background()
	if last := pgMigrations[len(pgMigrations)-1].version; last != SchemaVersion {
		t.Fatalf("the last PostgreSQL migration is %d, SchemaVersion is %d: mirror SQLite's migrations in pgMigrations", last, SchemaVersion)
	}
	lite, _ := backends[0].openTemp(t)
	pg, _ := backends[1].openTemp(t)
	describe := func(s *Store, tables, cols, indexes, triggers string) []string {
		var out []string
		for _, q := range []string{tables, cols, indexes, triggers} {
			rows, err := s.db.QueryContext(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", s.Dialect(), err)
			}
			for rows.Next() {
				var a, b string
				var c int64
				if err := rows.Scan(&a, &b, &c); err != nil {
					t.Fatal(err)
				}
				out = append(out, fmt.Sprintf("%s %s %d", a, b, c))
			}
			rows.Close()
		}
		sort.Strings(out)
		return out
	}
	got := describe(pg,
		`SELECT 'table', table_name, 0 FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'id_sequence'`,
		`SELECT table_name, column_name, CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END FROM information_schema.columns
		 WHERE table_schema = 'public' AND table_name <> 'id_sequence' AND NOT (column_name = 'id' AND data_type = 'bigint' AND table_name IN
		 (SELECT event_object_table FROM information_schema.triggers WHERE trigger_name LIKE '%_assign_id'))`,
		`SELECT 'index', indexname, 0 FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT IN (SELECT conname FROM pg_constraint)`,
		`SELECT DISTINCT 'trigger', trigger_name, 0 FROM information_schema.triggers WHERE trigger_name LIKE '%_no_update' OR trigger_name LIKE '%_no_delete'`)
	want := describe(lite,
		`SELECT 'table', name, 0 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`,
		// An INTEGER PRIMARY KEY AUTOINCREMENT id is left out on both
		// sides (NOT NULL in PostgreSQL, nullable rowid alias in SQLite).
		`SELECT m.name, c.name, CASE WHEN c."notnull" = 1 OR c.pk > 0 THEN 1 ELSE 0 END FROM sqlite_master m, pragma_table_info(m.name) c
		 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND NOT (c.name = 'id' AND c.pk = 1 AND m.sql LIKE '%AUTOINCREMENT%')`,
		`SELECT 'index', name, 0 FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'`,
		`SELECT 'trigger', name, 0 FROM sqlite_master WHERE type = 'trigger'`)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		gm := map[string]bool{}
		for _, g := range got {
			gm[g] = true
		}
		wm := map[string]bool{}
		for _, w := range want {
			wm[w] = true
			if !gm[w] {
				t.Errorf("PostgreSQL lacks: %s", w)
			}
		}
		for _, g := range got {
			if !wm[g] {
				t.Errorf("PostgreSQL has, SQLite not: %s", g)
			}
		}
	}
}
