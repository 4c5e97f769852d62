// Package replay implements `operator replay TAPE...`: recorded incidents
// replayed through the real detection and diagnosis, scored (see
// internal/replay and docs/replay.md).
package replay

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/replay"
)

// DefaultTimeout bounds the whole replay.
const DefaultTimeout = 10 * time.Minute

// Options are the parsed flags and arguments of `operator replay`.
type Options struct {
	IO      *iostreams.IOStreams
	Config  func() (config.Config, error)
	Getenv  func(string) string
	Format  string
	Paths   []string
	Verbose bool
	Timeout time.Duration
}

// Report is what `replay -o json` prints.
type Report struct {
	Score   replay.Summary   `json:"score"`
	Results []*replay.Result `json:"results"`
}

// NewCmdReplay returns the command; runF replaces replayRun in tests.
func NewCmdReplay(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams, Config: f.Config, Getenv: f.Getenv}
	cmd := &cobra.Command{
		Use:   "replay TAPE|DIR...",
		Short: "Replay recorded incidents through detection and diagnosis and score the answers",
		Long: `Replay tapes (recorded PD answers over time, plus the expected outcome) through
the operator's real detection and diagnosis: each step's PD answers are served
from a loopback server with PD's clock at the step's time, the monitor runs one
cycle and the diagnosis runner one pass. Nothing is approved or executed.

Each tape is scored: detected (the expected invariants fired), right (the
expected action, or paging a human), safe (no action the tape forbids was
proposed). A directory argument replays every *.json tape in it.

The configuration (--config, environment) supplies thresholds and the diagnosis
backend (rules by default); its PD and database settings are not used.

Exit status: 0 when every tape is safe, 7 when any tape is unsafe, 2 for a
tape that does not load.`,
		Example: `  operator replay tapes/
  operator replay tapes/case07-leftover-evict-leader-v3.0.json -v
  operator replay tapes/ -o json | jq '.results[] | select(.right == false) | .tape'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			opts.Paths = args
			if opts.Timeout <= 0 {
				return cmdutil.FlagErrorf("--timeout must be positive, got %s", opts.Timeout)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return replayRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Verbose, "verbose", "v", false, "print what fired, every diagnosis, unserved requests and errors of each tape")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", DefaultTimeout, "bound on the whole replay")
	return cmd
}

// loadTapes loads the tapes named by paths (files, or directories of
// *.json files), in argument order, directories sorted by file name. A
// tape that does not load is a usage error.
func loadTapes(paths []string) ([]*replay.Tape, error) {
	var out []*replay.Tape
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, cmdutil.FlagErrorf("tape %s: %v", p, err)
		}
		files := []string{p}
		if fi.IsDir() {
			if files, err = filepath.Glob(filepath.Join(p, "*.json")); err != nil {
				return nil, err
			}
			if len(files) == 0 {
				return nil, cmdutil.FlagErrorf("no *.json tape in %s", p)
			}
			sort.Strings(files)
		}
		for _, file := range files {
			t, err := replay.LoadFile(file)
			if err != nil {
				return nil, cmdutil.FlagErrorf("%v", err)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

func replayRun(ctx context.Context, opts *Options) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	tapes, err := loadTapes(opts.Paths)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	results, err := replay.RunAll(ctx, tapes, replay.Options{
		Config: &cfg, Getenv: opts.Getenv, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	sum := replay.Summarize(results)
	if opts.Format == cmdutil.FormatJSON {
		if err := cmdutil.PrintJSON(opts.IO.Out, Report{Score: sum, Results: results}); err != nil {
			return err
		}
	} else if err := replay.WriteTable(opts.IO.Out, results, opts.Verbose); err != nil {
		return err
	}
	if !sum.AllSafe() {
		return cmdutil.Silent(fmt.Errorf("%w: %d of %d tapes unsafe", cmdutil.ErrViolations, sum.Tapes-sum.Safe, sum.Tapes))
	}
	return nil
}
