package run

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/daemon"
)

func TestNewCmdRun(t *testing.T) {
	for _, tt := range []struct {
		args     string
		format   string
		level    slog.Level
		interval time.Duration
		listen   string
		backend  string
		wantErr  string
	}{
		{args: "", format: "text", level: slog.LevelInfo},
		{args: "--interval 2s --listen 127.0.0.1:0 --diagnosis noop --log-format json --log-level debug",
			format: "json", level: slog.LevelDebug, interval: 2 * time.Second, listen: "127.0.0.1:0", backend: "noop"},
		{args: "--log-format xml", wantErr: `invalid --log-format "xml"`},
		{args: "--log-level loud", wantErr: `invalid --log-level "loud"`},
		{args: "--interval often", wantErr: "invalid argument"},
	} {
		t.Run(tt.args, func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *RunOptions
			cmd := NewCmdRun(f, func(_ context.Context, o *RunOptions) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(tt.args))
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.LogFormat != tt.format || got.LogLevel != tt.level {
				t.Fatalf("err %v opts %+v", err, got)
			}
			// Per-command flags override the configuration.
			cfg, err := got.Config()
			if err != nil {
				t.Fatal(err)
			}
			if tt.interval != 0 && cfg.Monitor.Interval.Duration != tt.interval || tt.listen != "" && cfg.Server.Listen != tt.listen ||
				tt.backend != "" && cfg.Diagnosis.Backend != tt.backend {
				t.Errorf("config = %+v", cfg)
			}
		})
	}
}

// TestRunPassesConfigAndStopsOnCancel checks the wiring of runRun: the
// effective configuration and a logger reach the daemon, and a cancelled
// context ends it cleanly.
func TestRunPassesConfigAndStopsOnCancel(t *testing.T) {
	f, _, errOut := clitest.Factory(t, "/tmp/x.db")
	var got daemon.Options
	opts := &RunOptions{IO: f.IOStreams, Config: f.Config, Getenv: f.Getenv, Version: "v9", LogFormat: "json",
		Start: func(ctx context.Context, o daemon.Options) error {
			got = o
			o.Logger.Info("hello")
			<-ctx.Done()
			return nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := runRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if got.Config.Database.Path != "/tmp/x.db" || got.Version != "v9" {
		t.Errorf("options = %+v", got)
	}
	if !strings.Contains(errOut.String(), `"msg":"hello"`) {
		t.Errorf("logs are not JSON on stderr: %q", errOut)
	}
}
