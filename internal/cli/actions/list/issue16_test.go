package list

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
)

func TestListWideColourWatch(t *testing.T) {
	db, st := clitest.DB(t)
	clitest.Seed(t, st)
	f, out, _ := clitest.Factory(t, db)
	opts := &ListOptions{IO: f.IOStreams, Store: f.Store, Now: f.Now, Format: cmdutil.FormatTable}
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	full := out.String()
	out.Reset()
	opts.IO.Width = 80
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if n := len([]rune(l)); n > 80 {
			t.Errorf("line of %d columns on an 80-column terminal: %q", n, l)
		}
	}
	out.Reset()
	opts.Wide = true
	if err := listRun(context.Background(), opts); err != nil || out.String() != full {
		t.Errorf("--wide: %v\n%s\nwant\n%s", err, out, full)
	}
	var raw bytes.Buffer
	opts.IO.ColorOut = &raw
	if err := listRun(context.Background(), opts); err != nil || !strings.Contains(raw.String(), "\x1b[33mproposed\x1b[0m") {
		t.Errorf("no colour for proposed: %v %q", err, raw.String())
	}
	opts.IO.ColorOut = nil
	out.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	opts.Watch = cmdutil.WatchFlags{Watch: true, Interval: time.Second}
	opts.Title = "operator actions list"
	opts.After = func(time.Duration) <-chan time.Time {
		if n++; n == 2 {
			cancel()
		}
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	if err := listRun(ctx, opts); err != nil || strings.Count(out.String(), "transfer_leader") < 2 {
		t.Errorf("watch: %v\n%s", err, out)
	}
}
