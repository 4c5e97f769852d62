package run

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/daemon"
)

func TestIntervalZeroRejected(t *testing.T) {
	for _, arg := range []string{"--interval=0s", "--interval=-5s"} {
		f, _, _ := clitest.Factory(t, "unused.db")
		ran := false
		cmd := NewCmdRun(f, func(context.Context, *RunOptions) error { ran = true; return nil })
		cmd.SetArgs([]string{arg})
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		var fe *cmdutil.FlagError
		if ran || !errors.As(err, &fe) || !strings.Contains(err.Error(), "--interval must be positive") {
			t.Errorf("%s: ran %v, err %v", arg, ran, err)
		}
	}
}

func TestMissingAPIKeyIsConfigurationError(t *testing.T) {
	f, _, _ := clitest.Factory(t, "/tmp/x.db")
	f.Flags.Overrides.Backend = "anthropic"
	started := false
	opts := &RunOptions{IO: f.IOStreams, Config: f.Config, Getenv: f.Getenv, LogFormat: "text",
		Start: func(context.Context, daemon.Options) error { started = true; return nil }}
	err := runRun(context.Background(), opts)
	var fe *cmdutil.FlagError
	if started || !errors.As(err, &fe) || !strings.Contains(err.Error(), "configuration error") ||
		!strings.Contains(err.Error(), "ANTHROPIC_API_KEY") {
		t.Fatalf("started %v, err %v; want a configuration error (exit 2) before the daemon starts", started, err)
	}
	// openai against api.openai.com needs a key; a local server does not.
	f.Flags.Overrides.Backend = "openai"
	if err := runRun(context.Background(), opts); !errors.As(err, &fe) || !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Errorf("openai without key and base-url: %v", err)
	}
}

func TestLogsMaskSecrets(t *testing.T) {
	f, _, errOut := clitest.Factory(t, "/tmp/x.db")
	f.Flags.PD = "http://root:pd-password-1@127.0.0.1:2379"
	f.Flags.Overrides.Backend = "anthropic"
	env := f.Getenv
	f.Getenv = func(k string) string {
		if k == "ANTHROPIC_API_KEY" {
			return "sk-ant-secret-key"
		}
		return env(k)
	}
	opts := &RunOptions{IO: f.IOStreams, Config: f.Config, Getenv: f.Getenv, LogFormat: "text",
		Start: func(_ context.Context, o daemon.Options) error {
			cfg := o.Config
			// As the daemon logs its start, and a provider's error that
			// echoes the key.
			o.Logger.Info("operator started", "pd", cfg.PD.Endpoints)
			o.Logger.With("component", "diagnose").Warn("diagnosis failed",
				"err", errors.New(`401 {"error":"invalid x-api-key sk-ant-secret-key"}`))
			return nil
		}}
	if err := runRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	logs := errOut.String()
	for _, secret := range []string{"pd-password-1", "sk-ant-secret-key"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log leaks %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "root:****@127.0.0.1:2379") || !strings.Contains(logs, "invalid x-api-key ****") {
		t.Errorf("logs:\n%s", logs)
	}
}
