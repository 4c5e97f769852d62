package replay

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/replay"
)

func TestNewCmdReplayFlags(t *testing.T) {
	for _, tt := range []struct {
		args    string
		wantErr string
	}{
		{args: "tapes/"},
		{args: "a.json b.json -v --timeout 1m"},
		{args: "", wantErr: "requires at least 1 arg"},
		{args: "tapes/ --timeout 0s", wantErr: "--timeout must be positive"},
	} {
		t.Run(tt.args, func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *Options
			cmd := NewCmdReplay(f, func(_ context.Context, o *Options) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(tt.args))
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got.Paths) == 0 {
				t.Fatalf("err %v opts %+v", err, got)
			}
		})
	}
}

// shippedTape copies one tape of the repository's tapes/ into dir.
func shippedTape(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "tapes", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReplayRun(t *testing.T) {
	dir := t.TempDir()
	shippedTape(t, dir, "pd-member-unhealthy-v8.5.json")

	f, out, _ := clitest.Factory(t, "unused.db")
	f.Flags.Output = cmdutil.FormatJSON
	opts := &Options{IO: f.IOStreams, Config: f.Config, Getenv: f.Getenv, Format: cmdutil.FormatJSON, Paths: []string{dir}, Timeout: DefaultTimeout}
	if err := replayRun(context.Background(), opts); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if rep.Score.Tapes != 1 || len(rep.Results) != 1 || rep.Results[0].Tape != "pd-member-unhealthy-v8.5" {
		t.Fatalf("report %+v", rep)
	}

	// A tape that forbids what is proposed makes the command fail with
	// exit 7 (cmdutil.ErrViolations).
	bad := t.TempDir()
	p := shippedTape(t, bad, "case01c-pending-offline-v6.1.json")
	tp, err := replay.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	tp.Expect.Never = []replay.Match{{Action: "*", Why: "test"}}
	data, err := replay.MarshalTape(tp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	opts.Format, opts.Paths = cmdutil.FormatTable, []string{p}
	err = replayRun(context.Background(), opts)
	if !errors.Is(err, cmdutil.ErrViolations) {
		t.Fatalf("err = %v, want ErrViolations\n%s", err, out)
	}
	if !strings.Contains(out.String(), "UNSAFE:") || !strings.Contains(out.String(), "score: detected") {
		t.Errorf("table:\n%s", out)
	}

	// A missing path or a malformed tape is a usage error.
	opts.Paths = []string{filepath.Join(dir, "missing.json")}
	var fe *cmdutil.FlagError
	if err := replayRun(context.Background(), opts); !errors.As(err, &fe) {
		t.Errorf("missing tape: err = %v, want a FlagError", err)
	}
}
