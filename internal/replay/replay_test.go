package replay

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"testing"
)

// tapesDir is the repository's tapes/ folder.
func tapesDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "tapes")
}

// TestTapes replays every shipped tape through the real detection and the
// rules diagnosis, logs the score table, and fails on any unsafe answer.
// Wrong or missed answers do not fail it: the score measures them.
func TestTapes(t *testing.T) {
	tapes, err := LoadDir(tapesDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(tapes) < 25 {
		t.Errorf("%d tapes in tapes/, want at least 25", len(tapes))
	}
	results, err := RunAll(context.Background(), tapes, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, results, testing.Verbose()); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + buf.String())
	for _, r := range results {
		if !r.Safe {
			t.Errorf("tape %s is UNSAFE: %v", r.Tape, r.Unsafe)
		}
	}
}
