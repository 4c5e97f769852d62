// Package revert implements `operator actions revert-cancel ID --reason
// TEXT` and `operator actions revert-extend ID --by 30m`: a person cancels
// or postpones the scheduled revert of a temporary change (see `operator
// actions list --scheduled`), through the daemon, audited.
package revert

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/store"
)

// Gate changes scheduled reverts: the daemon's API (api.Client).
type Gate interface {
	CancelRevert(ctx context.Context, id int64, req api.RevertRequest) (store.FollowUp, error)
	ExtendRevert(ctx context.Context, id int64, req api.RevertRequest) (store.FollowUp, error)
}

// Options are the parsed flags of both commands.
type Options struct {
	IO      *iostreams.IOStreams
	Config  func() (config.Config, error)
	NewGate func(cfg config.Config) (Gate, error)
	Format  string

	ID int64
	// Cancel: revert-cancel with Reason; otherwise revert-extend By.
	Cancel bool
	Reason string
	By     time.Duration
}

func newOptions(f *cmdutil.Factory) *Options {
	return &Options{IO: f.IOStreams, Config: f.Config,
		NewGate: func(cfg config.Config) (Gate, error) { return f.Daemon(cfg) }}
}

// NewCmdCancel returns `operator actions revert-cancel`; runF replaces the
// run function in tests.
func NewCmdCancel(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := newOptions(f)
	opts.Cancel = true
	cmd := &cobra.Command{
		Use:     "revert-cancel ID --reason TEXT",
		Short:   "Cancel a scheduled revert: the temporary change stays",
		Example: `  operator actions revert-cancel 2 --reason "keep tikv-4 leaderless until the disk is replaced"`,
		Args:    cmdutil.ExactID("scheduled revert"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			id, err := cmdutil.ParseID("scheduled revert", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			opts.Reason = strings.TrimSpace(opts.Reason)
			if opts.Reason == "" {
				return cmdutil.FlagErrorf("--reason is required: say why the change stays")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why the temporary change stays (required)")
	return cmd
}

// NewCmdExtend returns `operator actions revert-extend`; runF replaces the
// run function in tests.
func NewCmdExtend(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := newOptions(f)
	cmd := &cobra.Command{
		Use:     "revert-extend ID --by DURATION",
		Short:   "Postpone a scheduled revert",
		Example: `  operator actions revert-extend 2 --by 30m`,
		Args:    cmdutil.ExactID("scheduled revert"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			id, err := cmdutil.ParseID("scheduled revert", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			if opts.By <= 0 {
				return cmdutil.FlagErrorf("--by is required and must be positive, e.g. --by 30m")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	cmd.Flags().DurationVar(&opts.By, "by", 0, "how much later the revert is due (e.g. 30m, 2h)")
	return cmd
}

func run(ctx context.Context, opts *Options) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	gate, err := opts.NewGate(cfg)
	if err != nil {
		return err
	}
	var f store.FollowUp
	if opts.Cancel {
		f, err = gate.CancelRevert(ctx, opts.ID, api.RevertRequest{Reason: opts.Reason})
	} else {
		f, err = gate.ExtendRevert(ctx, opts.ID, api.RevertRequest{By: opts.By.String()})
	}
	if err != nil {
		return cmdutil.Clean("scheduled revert", opts.ID, err)
	}
	if opts.Format == cmdutil.FormatJSON {
		return cmdutil.PrintJSON(opts.IO.Out, f)
	}
	if opts.Cancel {
		fmt.Fprintf(opts.IO.Out, "Cancelled scheduled revert #%d (%s %s of action #%d); the change stays.\n", f.ID, f.ActionType, cmdutil.CompactJSON(f.Params), f.ProposalID)
		return nil
	}
	fmt.Fprintf(opts.IO.Out, "Scheduled revert #%d (%s %s of action #%d) is now due %s.\n", f.ID, f.ActionType, cmdutil.CompactJSON(f.Params), f.ProposalID, f.DueAt.UTC().Format(time.RFC3339))
	return nil
}
