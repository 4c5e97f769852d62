package daemon

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the owner's grants

	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/pgtest"
	"github.com/tikvops/operator/internal/store"
)

// One PostgreSQL server for the package's tests (internal/pgtest), started
// by the first test that asks for a database. The HA test's child
// processes never start one (they get a URL).
func TestMain(m *testing.M) { pgtest.Main(m) }

// haDB is the shared database of a test's replicas.
type haDB struct {
	// toml is the replicas' [database] section (and [audit] key-dir).
	toml string
	// target is what the test itself opens: the SQLite file, or the
	// owner's (superuser's) URL.
	target string
	// runtime is the replicas' PostgreSQL URL (the runtime role), "" for
	// SQLite.
	runtime string
	// keyDir is the shared [audit] key-dir.
	keyDir string
}

// haDatabase makes the replicas' database in dir: a SQLite file, or
// ("postgres") a fresh PostgreSQL database migrated by its owner, and a
// login role with store.PostgresRuntimeGrants (no UPDATE, DELETE or
// TRUNCATE on the audit table) that the replicas connect as, as docs/ha.md
// recommends. The key directory is dir.
func haDatabase(t *testing.T, kind, dir string) haDB {
	t.Helper()
	if kind == "sqlite" {
		path := filepath.Join(dir, "operator.db")
		return haDB{toml: fmt.Sprintf("[database]\npath = %q", path), target: path, keyDir: dir}
	}
	owner := pgtest.NewDatabase(t)
	st, err := store.Open(context.Background(), owner, store.Options{}) // the owner runs the migrations
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	u, _ := url.Parse(owner)
	name := strings.TrimPrefix(u.Path, "/")
	role, pw := "rt_"+name, "runtime-secret"
	pgExec(t, owner, `CREATE ROLE "`+role+`" LOGIN PASSWORD '`+pw+`'`, store.PostgresRuntimeGrants(role))
	t.Cleanup(func() {
		pgExec(t, pgtest.SuperuserURL(t, name), `DROP OWNED BY "`+role+`"`)
		pgExec(t, pgtest.SuperuserURL(t, ""), `DROP ROLE IF EXISTS "`+role+`"`)
	})
	rt := pgtest.URL(t, role, pw, name)
	return haDB{toml: fmt.Sprintf("[database]\nurl = %q\n[audit]\nkey-dir = %q", rt, dir), target: owner, runtime: rt, keyDir: dir}
}

// pgExec runs statements on one connection of target.
func pgExec(t *testing.T, target string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("pgx", target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// verifyAudit runs `operator audit verify`'s check (store.VerifyWith with
// the public key and every checkpoint file of keyDir) and wants it clean,
// signed, with at least minCheckpoints checkpoint files (one per replica
// that appended).
func verifyAudit(t *testing.T, st *store.Store, keyDir string, minCheckpoints int) store.VerifyReport {
	t.Helper()
	pub, err := auditkey.LoadPublic(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := st.VerifyWith(context.Background(), store.VerifyOptions{PublicKey: pub, KeyDir: keyDir})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Signed != rep.Records || rep.CheckpointID != rep.HeadID || len(rep.Checkpoints) < minCheckpoints {
		t.Errorf("audit verify: ok=%t records=%d signed=%d head=%d checkpoint=%d files=%+v broken=%+v warnings=%q; want clean, every record signed, checkpoint at the head, >= %d files",
			rep.OK, rep.Records, rep.Signed, rep.HeadID, rep.CheckpointID, rep.Checkpoints, rep.Broken, rep.Warnings, minCheckpoints)
	}
	return rep
}
