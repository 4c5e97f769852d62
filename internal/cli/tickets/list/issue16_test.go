package list

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
)

func seeded(t *testing.T) (*ListOptions, *bytes.Buffer) {
	t.Helper()
	db, st := clitest.DB(t)
	clitest.Seed(t, st)
	f, out, _ := clitest.Factory(t, db)
	return &ListOptions{IO: f.IOStreams, Store: f.Store, Now: f.Now, Format: cmdutil.FormatTable}, out
}

func TestListFitsTerminalWidth(t *testing.T) {
	opts, out := seeded(t)
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	full := out.String()
	if maxLine(full) <= 100 {
		t.Fatalf("seeded table is only %d wide; the test needs a wider one:\n%s", maxLine(full), full)
	}
	out.Reset()
	opts.IO.Width, opts.IO.IsTTY = 100, true
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if w := maxLine(out.String()); w > 100 || !strings.Contains(out.String(), "…") {
		t.Errorf("a 100-column terminal gets lines of %d columns:\n%s", w, out)
	}
	out.Reset()
	opts.Wide = true
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if out.String() != full {
		t.Errorf("--wide differs from the unfitted table:\n%s\nwant\n%s", out, full)
	}
}

func maxLine(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, utf8.RuneCountInString(l))
	}
	return n
}

func TestListColour(t *testing.T) {
	opts, out := seeded(t)
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Errorf("colour when not a terminal:\n%q", out)
	}
	var raw bytes.Buffer
	opts.IO.ColorOut = &raw
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	s := raw.String()
	// diagnosed (yellow) leader_imbalance at warning (yellow); open (red)
	// store_disconnected.
	if !strings.Contains(s, "\x1b[33mdiagnosed\x1b[0m") || !strings.Contains(s, "\x1b[31mopen\x1b[0m") ||
		!strings.Contains(s, "\x1b[33mwarning\x1b[0m") {
		t.Errorf("no status/severity colour:\n%q", s)
	}
	// Alignment ignores the colour codes: every row's SEVERITY starts in
	// the same column once the codes are removed.
	plain := strings.NewReplacer("\x1b[33m", "", "\x1b[31m", "", "\x1b[0m", "").Replace(s)
	lines := strings.Split(strings.TrimSpace(plain), "\n")
	col := strings.Index(lines[0], "SEVERITY")
	for _, l := range lines[1:] {
		if c := l[col-1 : col]; c != " " || l[col] == ' ' {
			t.Errorf("misaligned row %q (SEVERITY at %d)", l, col)
		}
	}
}

func TestListWatch(t *testing.T) {
	opts, out := seeded(t)
	opts.Watch = cmdutil.WatchFlags{Watch: true, Interval: time.Second}
	opts.Title = "bin/operator tickets list"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	renders := 0
	opts.After = func(time.Duration) <-chan time.Time {
		renders++
		if renders == 3 {
			cancel() // Ctrl-C after the third render
		}
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	if err := listRun(ctx, opts); err != nil {
		t.Fatalf("watch ended with %v, want nil on Ctrl-C", err)
	}
	if n := strings.Count(out.String(), "Every 1s: bin/operator tickets list"); n < 3 {
		t.Errorf("%d refreshes, want >= 3:\n%s", n, out)
	}
	if n := strings.Count(out.String(), "store_disconnected"); n < 3 {
		t.Errorf("table rendered %d times", n)
	}
}

func TestWatchFlags(t *testing.T) {
	f, _, _ := clitest.Factory(t, "unused.db")
	for args, wantErr := range map[string]string{
		"--watch --watch-interval 0s": "--watch-interval must be positive",
		"-w -o json":                  "--watch prints tables",
	} {
		f.Flags.Output = cmdutil.FormatTable
		if strings.Contains(args, "-o json") {
			f.Flags.Output = cmdutil.FormatJSON
		}
		cmd := NewCmdList(f, func(context.Context, *ListOptions) error { return nil })
		cmd.SetArgs(strings.Fields(strings.ReplaceAll(args, "-o json", "")))
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: err = %v, want %q", args, err, wantErr)
		}
	}
}
