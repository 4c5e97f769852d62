// Package reject implements `operator actions reject ID --reason TEXT`.
package reject

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/store"
)

// Gate rejects proposals: executor.Executor.
type Gate interface {
	Reject(ctx context.Context, id int64, by, reason string) (action.Proposal, error)
}

// RejectOptions are the parsed flags of `operator actions reject`.
type RejectOptions struct {
	IO        *iostreams.IOStreams
	Config    func() (config.Config, error)
	OpenStore func(ctx context.Context, cfg config.Config) (*store.Store, error)
	NewGate   func(cfg config.Config, st *store.Store) (Gate, error)
	Now       func() time.Time
	Format    string

	ID     int64
	Reason string
	As     string
}

// NewCmdReject returns the command; runF replaces rejectRun in tests.
func NewCmdReject(f *cmdutil.Factory, runF func(context.Context, *RejectOptions) error) *cobra.Command {
	opts := &RejectOptions{
		IO: f.IOStreams, Config: f.Config, OpenStore: f.OpenStore, Now: f.Now,
		NewGate: func(cfg config.Config, st *store.Store) (Gate, error) { return f.Executor(cfg, st) },
	}
	cmd := &cobra.Command{
		Use:   "reject ID --reason TEXT",
		Short: "Reject a proposed action, with a reason",
		Long: `Reject a proposed action. The rejection (who, when, why) is recorded and
final: the action can no longer be approved. The ticket stays diagnosed.`,
		Example: `  operator actions reject 5 --reason "maintenance window tonight; will move it by hand"`,
		Args:    cmdutil.ExactID("action"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			id, err := cmdutil.ParseID("action", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			opts.Reason = strings.TrimSpace(opts.Reason)
			if opts.Reason == "" {
				return cmdutil.FlagErrorf("--reason is required: say why the action is rejected")
			}
			opts.As = strings.TrimSpace(opts.As)
			if cmd.Flags().Changed("as") && opts.As == "" {
				return cmdutil.FlagErrorf("--as needs a name")
			}
			if opts.As == "" {
				opts.As = cmdutil.WhoAmI(f.Getenv)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return rejectRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why the action is rejected (required)")
	cmd.Flags().StringVar(&opts.As, "as", "", "name recorded as the rejecter (default: the OS user)")
	return cmd
}

func rejectRun(ctx context.Context, opts *RejectOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	st, err := opts.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	gate, err := opts.NewGate(cfg, st)
	if err != nil {
		return err
	}
	p, err := gate.Reject(ctx, opts.ID, opts.As, opts.Reason)
	if err != nil {
		return cmdutil.Clean("action", opts.ID, err)
	}
	if opts.Format == cmdutil.FormatJSON {
		return cmdutil.PrintJSON(opts.IO.Out, p)
	}
	fmt.Fprintf(opts.IO.Out, "Rejected action #%d %s %s as %s: %s\n", p.ID, p.ActionType, cmdutil.CompactJSON(p.Params), opts.As, opts.Reason)
	return nil
}
