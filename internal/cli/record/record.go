// Package record implements `operator record`: poll a live PD and write
// a replay tape skeleton (internal/replay, docs/replay.md).
package record

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/replay"
)

// Options are the parsed flags of `operator record`.
type Options struct {
	IO       *iostreams.IOStreams
	Config   func() (config.Config, error)
	PDClient func(cfg config.Config) (*pd.Client, error)
	Out      string
	Every    time.Duration
	For      time.Duration
	Title    string
	Source   []string
	Force    bool
}

// NewCmdRecord returns the command; runF replaces recordRun in tests.
func NewCmdRecord(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams, Config: f.Config, PDClient: f.PDClient}
	cmd := &cobra.Command{
		Use:   "record --out FILE",
		Short: "Record PD's answers over time into a replay tape skeleton",
		Long: `Poll PD every --every for --for and write a tape (docs/replay.md): each poll
reads the endpoints the operator's collector, diagnosis and dry runs read
(GET only; nothing is changed), and a step keeps the answers that changed
since the previous poll.

The tape's expected outcome is left empty: fill in expect.detect,
expect.response and expect.never (and cite the incident's source) before
` + "`operator replay`" + ` accepts it. The tape holds store addresses and labels as PD
reports them: edit them out before sharing it.`,
		Example: `  operator record --pd http://127.0.0.1:2379 --out tapes/my-incident.json --every 10s --for 5m`,
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Out == "" {
				return cmdutil.FlagErrorf("--out is required")
			}
			if opts.Every <= 0 || opts.For < 0 {
				return cmdutil.FlagErrorf("--every must be positive and --for not negative, got %s and %s", opts.Every, opts.For)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return recordRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Out, "out", "", "tape file to write (JSON)")
	fl.DurationVar(&opts.Every, "every", replay.DefaultRecordEvery, "pause between polls")
	fl.DurationVar(&opts.For, "for", replay.DefaultRecordFor, "how long to record")
	fl.StringVar(&opts.Title, "title", "", "one line describing the incident")
	fl.StringSliceVar(&opts.Source, "source", nil, "where the incident is reported (issue URL), repeatable")
	fl.BoolVar(&opts.Force, "force", false, "overwrite --out if it exists")
	return cmd
}

func recordRun(ctx context.Context, opts *Options) error {
	if !opts.Force {
		if _, err := os.Stat(opts.Out); err == nil {
			return cmdutil.FlagErrorf("%s exists; use --force to overwrite it", opts.Out)
		}
	}
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	c, err := opts.PDClient(cfg)
	if err != nil {
		return err
	}
	id := strings.TrimSuffix(filepath.Base(opts.Out), ".json")
	t, err := replay.Record(ctx, c, replay.RecordOptions{
		ID: id, Title: opts.Title, Source: opts.Source, Every: opts.Every, For: opts.For,
		OnStep: func(step int, at time.Duration, changed int) {
			fmt.Fprintf(opts.IO.ErrOut, "step %d at %s: %d endpoints changed\n", step, at.Round(time.Second), changed)
		},
	})
	if err != nil {
		return fmt.Errorf("record from PD %s: %w", strings.Join(cfg.PD.Endpoints, ","), err)
	}
	data, err := replay.MarshalTape(t)
	if err != nil {
		return err
	}
	if err := os.WriteFile(opts.Out, data, 0o644); err != nil {
		return fmt.Errorf("write tape: %w", err)
	}
	fmt.Fprintf(opts.IO.Out, "wrote %s: %d steps from PD %s; fill in expect before replaying it\n", opts.Out, len(t.Steps), t.PDVersion)
	if errors.Is(ctx.Err(), context.Canceled) {
		fmt.Fprintln(opts.IO.ErrOut, "recording stopped early")
	}
	return nil
}
