// Package reject implements `operator actions reject ID --reason TEXT`.
package reject

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/safetext"
)

// Gate rejects proposals: the daemon's API (api.Client).
type Gate interface {
	Reject(ctx context.Context, id int64, req api.DecisionRequest) (action.Proposal, error)
}

// RejectOptions are the parsed flags of `operator actions reject`.
type RejectOptions struct {
	IO      *iostreams.IOStreams
	Config  func() (config.Config, error)
	NewGate func(cfg config.Config) (Gate, error)
	Now     func() time.Time
	Format  string

	ID     int64
	Reason string
	// OnBehalfOf (--as): an admin rejecting for another person.
	OnBehalfOf string
}

// NewCmdReject returns the command; runF replaces rejectRun in tests.
func NewCmdReject(f *cmdutil.Factory, runF func(context.Context, *RejectOptions) error) *cobra.Command {
	opts := &RejectOptions{
		IO: f.IOStreams, Config: f.Config, Now: f.Now,
		NewGate: func(cfg config.Config) (Gate, error) { return f.Daemon(cfg) },
	}
	cmd := &cobra.Command{
		Use:   "reject ID --reason TEXT",
		Short: "Reject a proposed action, with a reason",
		Long: `Reject a proposed action. The daemon records the rejection (who — your
authenticated identity —, when, why) in the audit trail; it is final: the
action can no longer be approved. The ticket stays diagnosed.`,
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
			opts.OnBehalfOf = strings.TrimSpace(opts.OnBehalfOf)
			if cmd.Flags().Changed("as") && opts.OnBehalfOf == "" {
				return cmdutil.FlagErrorf("--as needs a name")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return rejectRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why the action is rejected (required)")
	cmd.Flags().StringVar(&opts.OnBehalfOf, "as", "", "admins only: reject on behalf of this person (both names are recorded)")
	return cmd
}

func rejectRun(ctx context.Context, opts *RejectOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	gate, err := opts.NewGate(cfg)
	if err != nil {
		return err
	}
	p, err := gate.Reject(ctx, opts.ID, api.DecisionRequest{Reason: opts.Reason, OnBehalfOf: opts.OnBehalfOf})
	if err != nil {
		return cmdutil.Clean("action", opts.ID, err)
	}
	if opts.Format == cmdutil.FormatJSON {
		return cmdutil.PrintJSON(opts.IO.Out, p)
	}
	who := safetext.Line(p.RejectedBy, 0)
	if opts.OnBehalfOf != "" {
		who += " on behalf of " + opts.OnBehalfOf
	}
	fmt.Fprintf(opts.IO.Out, "Rejected action #%d %s %s as %s: %s\n", p.ID, p.ActionType, cmdutil.CompactJSON(p.Params),
		who, safetext.Line(p.RejectionReason, safetext.MaxText))
	return nil
}
