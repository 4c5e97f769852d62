package silence_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/cli"
	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/store"
)

func run(t *testing.T, db string, args ...string) (int, string, string) {
	t.Helper()
	f, out, errOut := clitest.Factory(t, db)
	code := cli.Execute(context.Background(), f, cli.NewRootCmd(f), args)
	return code, out.String(), errOut.String()
}

// The CLI over the daemon's Unix socket (your OS user, an admin there):
// add, list, expire; usage errors before any request.
func TestSilenceCommands(t *testing.T) {
	db, st := clitest.DB(t)
	me := clitest.Me(t)
	for _, args := range [][]string{
		{"silence", "add", "--store", "4", "--for", "2h"},
		{"silence", "add", "--store", "4", "--reason", "r"},
		{"silence", "add", "--for", "2h", "--end", "2030-01-01T00:00:00Z", "--reason", "r"},
		{"silence", "add", "--for", "soon", "--reason", "r"},
		{"silence", "expire", "1"},
	} {
		if code, _, errOut := run(t, db, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut)
		}
	}
	if code, _, errOut := run(t, db, "silence", "list"); code != 13 || !strings.Contains(errOut, "not reachable") {
		t.Errorf("list without a daemon: exit %d: %s", code, errOut)
	}
	clitest.Serve(t, db, st)
	code, out, errOut := run(t, db, "silence", "add", "--store", "4", "--invariant", "store_low_space", "--for", "2h", "--reason", "disk swap")
	if code != 0 || !strings.Contains(out, "Silence #1: store_low_space on store:4 muted from") || !strings.Contains(out, "by "+me+" (admin): disk swap") {
		t.Fatalf("add: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run(t, db, "silence", "add", "--store", "x4", "--for", "1h", "--reason", "r"); code != 2 || !strings.Contains(errOut, "not a store id") {
		t.Errorf("bad store: exit %d: %s", code, errOut)
	}
	code, out, _ = run(t, db, "-o", "json", "silence", "list", "--active")
	var ss []store.Silence
	if err := json.Unmarshal([]byte(out), &ss); code != 0 || err != nil || len(ss) != 1 || ss[0].CreatedBy != me || ss[0].Subject != "store:4" {
		t.Fatalf("list: exit %d, %v: %s", code, err, out)
	}
	if code, out, errOut := run(t, db, "silence", "expire", "1", "--reason", "done early"); code != 0 || !strings.Contains(out, "Expired silence #1") {
		t.Errorf("expire: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run(t, db, "silence", "expire", "1", "--reason", "again"); code != 4 || !strings.Contains(errOut, "already over") {
		t.Errorf("expire twice: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, db, "silence", "expire", "9", "--reason", "x"); code != 3 || !strings.Contains(errOut, "silence 9 not found") {
		t.Errorf("expire unknown: exit %d: %s", code, errOut)
	}
	if code, out, _ := run(t, db, "silence", "list"); code != 0 || !strings.Contains(out, "expired by "+me) {
		t.Errorf("list after expire: exit %d\n%s", code, out)
	}

	// `operator audit verify` finds a silence edited by hand.
	if code, out, errOut := run(t, db, "audit", "verify"); code != 0 {
		t.Fatalf("verify before the edit: exit %d\n%s%s", code, out, errOut)
	}
	raw, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{`DROP TRIGGER silences_no_update`, `UPDATE silences SET ends_at = '2099-01-01T00:00:00.000000000Z'`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errOut := run(t, db, "audit", "verify"); code != 8 || !strings.Contains(errOut, "silence 1 content does not match its hash") {
		t.Errorf("verify after editing silence 1: exit %d: %s", code, errOut)
	}
}
