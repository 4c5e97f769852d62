// Package list implements `operator audit list`.
package list

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/store"
)

// ListOptions are the parsed flags of `operator audit list`.
type ListOptions struct {
	IO     *iostreams.IOStreams
	Store  func(ctx context.Context) (*store.Store, error)
	Now    func() time.Time
	Format string
	// ActionID and TicketID filter; 0 means all.
	ActionID, TicketID int64
	Limit              int
	// Wide prints every column in full; otherwise the table fits the
	// terminal's width.
	Wide bool
	// Cluster is --cluster: a cluster's name; "" means every cluster.
	Cluster string
}

// NewCmdList returns the command; runF replaces listRun in tests.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Store: f.Store, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit records (approvals, rejections, dry runs and executions), newest first",
		Long: `List the audit trail, newest first: one record per approval, rejection,
dry run and execution, each hash-chained to the one before it (verify the
chain with ` + "`operator audit verify`" + `). The table fits the terminal width; --wide
prints every column in full, -o json the full records.`,
		Example: `  operator audit list
  operator audit list --action 5
  operator audit list -o json   # full records: requests, states before and after, hashes`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Format = f.Format()
			if opts.ActionID < 0 || opts.TicketID < 0 || opts.Limit < 0 {
				return cmdutil.FlagErrorf("--action, --ticket and --limit must not be negative")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int64Var(&opts.ActionID, "action", 0, "only the records of this action")
	cmd.Flags().Int64Var(&opts.TicketID, "ticket", 0, "only the records of this ticket's actions")
	cmd.Flags().IntVar(&opts.Limit, "limit", 50, "show at most this many records (0: all)")
	cmd.Flags().BoolVar(&opts.Wide, "wide", false, "print every column in full (default: fit the terminal width)")
	cmdutil.AddClusterFlag(cmd, &opts.Cluster)
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	st, err := opts.Store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	scope, err := cmdutil.ResolveCluster(ctx, st, opts.Cluster)
	if err != nil {
		return err
	}
	recs, err := st.Records(ctx, store.RecordFilter{ProposalID: opts.ActionID, TicketID: opts.TicketID, Limit: opts.Limit, Cluster: scope.ID})
	if err != nil {
		return err
	}
	if opts.Format == cmdutil.FormatJSON {
		if recs == nil {
			recs = []action.Record{}
		}
		return cmdutil.PrintJSON(opts.IO.Out, recs)
	}
	if len(recs) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "no audit records")
		return nil
	}
	if scope.Column {
		return cmdutil.RecordTableClusters(opts.IO, opts.Wide, recs, opts.Now(), scope)
	}
	return cmdutil.RecordTableIO(opts.IO, opts.Wide, recs, opts.Now())
}
