package auditkey

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReplicaFileName(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"db-1:127.0.0.1:9471": "db-1_127.0.0.1_9471",
		"../../etc/passwd":    "_.._etc_passwd",
		"h/ost 1":             "h_ost_1",
		"..":                  "",
		"host:[::1]:80":       "host____1__80",
	} {
		if got := ReplicaFileName(in); got != want {
			t.Errorf("ReplicaFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Two replicas append to their own files in one directory; readers see
// both, and the old shared file, and skip lines signed by another key.
func TestReplicaCheckpoints(t *testing.T) {
	dir := t.TempDir()
	key, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := NewReplicaCheckpoint(dir, "a:1", key)
	b := NewReplicaCheckpoint(dir, "b:2", key)
	if filepath.Base(a.Path()) != "audit.checkpoint.a_1" || NewReplicaCheckpoint(dir, "", key).Path() != filepath.Join(dir, CheckpointFile) {
		t.Fatalf("paths %s, %s", a.Path(), NewReplicaCheckpoint(dir, "", key).Path())
	}
	at := time.Unix(1700000000, 0)
	for i, c := range []*Checkpoint{a, b, a, b} {
		if err := c.Append(int64(i+1), "h", at); err != nil {
			t.Fatal(err)
		}
	}
	if err := NewCheckpoint(dir, key).Append(1, "h", at); err != nil {
		t.Fatal(err)
	}
	if err := NewReplicaCheckpoint(dir, "c", other).Append(9, "h", at); err != nil { // another key
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, CheckpointFile+".d"), 0o700); err != nil { // not a file
		t.Fatal(err)
	}
	cps, err := ReadCheckpoints(dir, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cps {
		got = append(got, c.File)
	}
	if len(cps) != 4 || cps[0].File != CheckpointFile || cps[1].Newest().ID != 3 || cps[2].Newest().ID != 4 || cps[3].Bad != 1 || len(cps[3].Heads) != 0 {
		t.Fatalf("checkpoints %q: %+v", got, cps)
	}
	heads, bad, err := ReadHeads(dir, key.Public())
	if err != nil || len(heads) != 5 || bad != 1 {
		t.Fatalf("ReadHeads: %d heads, %d bad, %v", len(heads), bad, err)
	}
	if cps, err := ReadCheckpoints(filepath.Join(dir, "missing"), nil); err != nil || len(cps) != 0 {
		t.Fatalf("missing dir: %v %v", cps, err)
	}
}
