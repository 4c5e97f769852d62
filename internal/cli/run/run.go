// Package run implements `operator run`, the daemon.
package run

import (
	"context"
	"fmt"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/daemon"
)

// RunOptions are the parsed flags of `operator run`.
type RunOptions struct {
	IO      *iostreams.IOStreams
	Config  func() (config.Config, error)
	Getenv  func(string) string
	Version string
	// LogFormat is "text" or "json"; LogLevel debug, info, warn or error.
	LogFormat string
	LogLevel  slog.Level
	// Start runs the daemon until ctx ends (daemon.New + Run); tests
	// replace it.
	Start func(ctx context.Context, opts daemon.Options) error
}

// NewCmdRun returns the command; runF replaces runRun in tests.
func NewCmdRun(f *cmdutil.Factory, runF func(context.Context, *RunOptions) error) *cobra.Command {
	opts := &RunOptions{IO: f.IOStreams, Config: f.Config, Getenv: f.Getenv, Version: f.Version, Start: start}
	var level string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the operator: monitor, diagnose, and execute approved actions",
		Long: `Run the operator daemon until SIGINT or SIGTERM:

  - the monitor reads the cluster from PD every interval, evaluates the
    invariants and opens, updates and resolves tickets in the database
    (created if missing);
  - the diagnosis runner diagnoses open tickets with the configured backend
    (rules by default) and proposes actions;
  - the executor runs the actions a human approved (operator actions approve),
    then re-evaluates the ticket;
  - /metrics (Prometheus) and /healthz are served on [server] listen
    (loopback by default).

Logs are structured (log/slog) on stderr. On SIGINT/SIGTERM no new work is
started, an execution in flight finishes and is recorded, and the process
exits 0.`,
		Example: `  operator run --config operator.toml
  operator run --pd http://127.0.0.1:2379 --db operator.db --interval 5s --log-format json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch opts.LogFormat {
			case "text", "json":
			default:
				return cmdutil.FlagErrorf("invalid --log-format %q: want text or json", opts.LogFormat)
			}
			if err := opts.LogLevel.UnmarshalText([]byte(level)); err != nil {
				return cmdutil.FlagErrorf("invalid --log-level %q: want debug, info, warn or error", level)
			}
			if cmd.Flags().Changed("interval") && f.Flags.Overrides.Interval <= 0 {
				return cmdutil.FlagErrorf("--interval must be positive, got %s", f.Flags.Overrides.Interval)
			}
			f.Flags.Overrides.ListenSet = cmd.Flags().Changed("listen")
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRun(cmd.Context(), opts)
		},
	}
	o := &f.Flags.Overrides
	cmd.Flags().DurationVar(&o.Interval, "interval", 0, "time between monitor cycles (overrides [monitor] interval)")
	cmd.Flags().StringVar(&o.Listen, "listen", "", "host:port for /metrics and /healthz (overrides [server] listen; \"\" disables)")
	cmd.Flags().StringVar(&o.Backend, "diagnosis", "", "diagnosis backend: rules, anthropic, openai or noop (overrides [diagnosis] backend)")
	cmd.Flags().StringVar(&opts.LogFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func start(ctx context.Context, opts daemon.Options) error {
	d, err := daemon.New(opts)
	if err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	return d.Run(ctx)
}

func runRun(ctx context.Context, opts *RunOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	if err := cfg.CheckCredentials(); err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	hopts := &slog.HandlerOptions{Level: opts.LogLevel}
	var h slog.Handler = slog.NewTextHandler(opts.IO.ErrOut, hopts)
	if strings.EqualFold(opts.LogFormat, "json") {
		h = slog.NewJSONHandler(opts.IO.ErrOut, hopts)
	}
	h = newMaskHandler(h, cfg.Secrets())
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := opts.Start(ctx, daemon.Options{Config: cfg, Version: opts.Version, Logger: slog.New(h), Getenv: opts.Getenv}); err != nil {
		return fmt.Errorf("operator run: %w", err)
	}
	return nil
}
