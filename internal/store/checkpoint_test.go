package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auditkey"
)

// TestCheckpointPerReplica: two replicas (two stores on one database, one
// key directory) each append to their own checkpoint file
// (audit.checkpoint.<replica>); verify reads both, and a trimmed chain is
// detected by either file alone. An old shared audit.checkpoint is still
// read.
func TestCheckpointPerReplica(t *testing.T) { forEachBackend(t, testCheckpointPerReplica) }

func testCheckpointPerReplica(t *testing.T, be backend) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := auditkey.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := auditkey.LoadPublic(dir)
	if err != nil {
		t.Fatal(err)
	}
	target := be.target(t)
	a, b := openAt(t, target), openAt(t, target)
	a.SetAuditKey(key, auditkey.NewReplicaCheckpoint(dir, "host-a:127.0.0.1:9471", key), nil)
	b.SetAuditKey(key, auditkey.NewReplicaCheckpoint(dir, "host-b:127.0.0.1:9472", key), nil)
	for _, s := range []*Store{a, b} {
		if err := s.BindCluster(ctx, "7001", "test", t0); err != nil {
			t.Fatal(err)
		}
	}
	// Records 1..6, alternating: a writes 1, 3, 5 (dry runs), b 2, 4, 6
	// (approvals).
	for i, sub := range []string{"store:1", "store:2", "store:3"} {
		id := proposed(t, a, sub)
		if _, err := a.RecordDryRun(ctx, id, action.Record{Success: true, ExecutedBy: "alice"}, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Approve(ctx, id, "bob", t0); err != nil {
			t.Fatalf("approve %d: %v", i, err)
		}
	}
	files, err := auditkey.CheckpointFiles(dir)
	if err != nil || len(files) != 2 || files[0] != "audit.checkpoint.host-a_127.0.0.1_9471" || files[1] != "audit.checkpoint.host-b_127.0.0.1_9472" {
		t.Fatalf("checkpoint files = %q, %v; want one per replica", files, err)
	}
	vo := VerifyOptions{PublicKey: pub, KeyDir: dir}
	rep := mustVerify(t, a, vo)
	if !rep.OK || rep.Records != 6 || rep.CheckpointID != 6 || len(rep.Checkpoints) != 2 ||
		rep.Checkpoints[0].ID != 5 || rep.Checkpoints[1].ID != 6 {
		t.Fatalf("clean chain: %+v", rep)
	}

	// A line of the old shared file (a daemon before per-replica files)
	// is read too: a head it names that the chain lost is reported.
	old := auditkey.NewCheckpoint(dir, key)
	if err := old.Append(6, rep.HeadHash, t0); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, b, vo); !rep.OK || len(rep.Checkpoints) != 3 || rep.Checkpoints[0].File != auditkey.CheckpointFile {
		t.Fatalf("with the shared file: %+v", rep)
	}

	// Trim the tail to record 3 and reset the sequence: every file
	// alone detects it (a's newest head is 5, b's and the old file's 6).
	be.tamper(t, target, `DELETE FROM action_records WHERE id > 3`, `UPDATE sqlite_sequence SET seq = 3 WHERE name = 'action_records'`)
	hidden := filepath.Join(t.TempDir(), "hidden")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	all, _ := auditkey.CheckpointFiles(dir)
	for _, keep := range all {
		for _, f := range all {
			if f != keep {
				if err := os.Rename(filepath.Join(dir, f), filepath.Join(hidden, f)); err != nil {
					t.Fatal(err)
				}
			}
		}
		rep := mustVerify(t, a, vo)
		if rep.OK || rep.Broken == nil || rep.Broken.Kind != BreakTrimmed || !strings.Contains(rep.Broken.Detail, keep) {
			t.Errorf("trimmed chain with only %s: %+v broken %+v; want trimmed, naming the file", keep, rep, rep.Broken)
		}
		for _, f := range all {
			if f != keep {
				if err := os.Rename(filepath.Join(hidden, f), filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
