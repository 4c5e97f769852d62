package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tikvops/operator/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestDatabasesAreSeparateAndSurviveRestart: two databases do not share
// tables, a committed row survives a restart on the same port, and the
// database is reachable only over 127.0.0.1 with the password.
func TestDatabasesAreSeparateAndSurviveRestart(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	if a == b {
		t.Fatalf("two NewDatabase calls returned the same URL %s", a)
	}
	if !strings.HasPrefix(a, "postgres://postgres:") || !strings.Contains(a, "@127.0.0.1:") || !strings.HasSuffix(a, "?sslmode=disable") {
		t.Fatalf("URL %s is not postgres://postgres:PASSWORD@127.0.0.1:PORT/DB?sslmode=disable", a)
	}
	ca := connect(t, a)
	if _, err := ca.Exec(ctx, `CREATE TABLE kept (v TEXT); INSERT INTO kept VALUES ('before restart')`); err != nil {
		t.Fatal(err)
	}
	cb := connect(t, b)
	var n int
	if err := cb.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'kept'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database b sees table kept of database a: n=%d err=%v", n, err)
	}

	port := pgtest.Port(t)
	pgtest.Restart(t)
	if p := pgtest.Port(t); p != port {
		t.Fatalf("port changed across restart: %d -> %d", port, p)
	}
	if err := ca.Ping(ctx); err == nil {
		t.Fatalf("a connection opened before the restart still works: the server did not restart")
	}
	ca2 := connect(t, a)
	var v string
	if err := ca2.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != "before restart" {
		t.Fatalf("after restart: v=%q err=%v", v, err)
	}

	bad := strings.Replace(a, "postgres://postgres:", "postgres://postgres:wrong", 1)
	if conn, err := pgx.Connect(ctx, bad); err == nil {
		conn.Close(ctx)
		t.Fatalf("connected with a wrong password")
	}
}

// TestDatabaseDroppedAtCleanup: a test's database is gone after its test.
func TestDatabaseDroppedAtCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		u := pgtest.NewDatabase(t)
		name = u[strings.LastIndex(u, "/")+1 : strings.Index(u, "?")]
	})
	c := connect(t, pgtest.SuperuserURL(t, ""))
	var n int
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database %s still exists after its test (n=%d err=%v)", name, n, err)
	}
}
