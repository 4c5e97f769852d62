// Package list implements `operator actions list`.
package list

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/store"
)

// ListOptions are the parsed flags of `operator actions list`.
type ListOptions struct {
	IO     *iostreams.IOStreams
	Store  func(ctx context.Context) (*store.Store, error)
	Now    func() time.Time
	Format string
	// Statuses keeps proposals in these statuses; empty means all.
	Statuses []action.Status
	// TicketID keeps one ticket's proposals; 0 means all.
	TicketID int64
	Limit    int
	// Wide prints every column in full; otherwise the table fits the
	// terminal's width.
	Wide bool
	// Watch refreshes the table every Watch.Interval until Ctrl-C.
	Watch cmdutil.WatchFlags
	// Title is the command line shown in --watch's header.
	Title string
	// Scheduled lists the scheduled reverts of temporary changes instead
	// (status scheduled or running): what will revert and when.
	Scheduled bool
	// After is time.After (tests replace it).
	After func(time.Duration) <-chan time.Time
	// Cluster is --cluster: a cluster's name; "" means every cluster.
	Cluster string
}

// NewCmdList returns the command; runF replaces listRun in tests.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Store: f.Store, Now: f.Now}
	var statuses []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List proposed actions, newest first",
		Example: `  operator actions list
  operator actions list --status proposed
  operator actions list --ticket 3 -o json
  operator actions list --status pending --watch   # refresh every 2s until Ctrl-C
  operator actions list --wide                     # every column in full
  operator actions list --scheduled                # temporary changes: what reverts when`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Format = f.Format()
			st, err := ParseStatuses(statuses)
			if err != nil {
				return err
			}
			opts.Statuses = st
			if opts.Limit < 0 || opts.TicketID < 0 {
				return cmdutil.FlagErrorf("--limit and --ticket must not be negative")
			}
			if err := opts.Watch.Validate(opts.Format); err != nil {
				return err
			}
			opts.Title = cmdutil.CommandLine(cmd)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringSliceVar(&statuses, "status", nil,
		"only actions in these statuses: proposed, dry_run, approved, rejected, executing, completed, failed, expired, pending (proposed+dry_run)")
	cmd.Flags().Int64Var(&opts.TicketID, "ticket", 0, "only the actions proposed for this ticket")
	cmd.Flags().IntVar(&opts.Limit, "limit", 50, "show at most this many actions (0: all)")
	cmd.Flags().BoolVar(&opts.Scheduled, "scheduled", false, "list the scheduled reverts of temporary changes (what will revert and when) instead")
	cmd.Flags().BoolVar(&opts.Wide, "wide", false, "print every column in full (default: fit the terminal width)")
	cmdutil.AddClusterFlag(cmd, &opts.Cluster)
	cmdutil.AddWatchFlags(cmd, &opts.Watch)
	return cmd
}

var allStatuses = []action.Status{action.Proposed, action.DryRun, action.Approved, action.Rejected,
	action.Executing, action.Completed, action.Failed, action.Expired}

// ParseStatuses validates --status values; "pending" means proposed and
// dry_run (awaiting a human), "all" (or nothing) every status.
func ParseStatuses(in []string) ([]action.Status, error) {
	var out []action.Status
	for _, s := range in {
		v := action.Status(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_"))
		switch {
		case v == "pending":
			out = append(out, action.Proposed, action.DryRun)
			continue
		case v == "all":
			return nil, nil
		}
		ok := false
		for _, a := range allStatuses {
			ok = ok || a == v
		}
		if !ok {
			return nil, cmdutil.FlagErrorf("invalid --status %q: want proposed, dry_run, approved, rejected, executing, completed, failed, expired, pending or all", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func listRun(ctx context.Context, opts *ListOptions) error {
	if !opts.Watch.Watch {
		return listOnce(ctx, opts)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmdutil.Watch(ctx, opts.IO, opts.Title, opts.Watch.Interval, opts.Now, opts.After,
		func(ctx context.Context) error { return listOnce(ctx, opts) })
}

func listOnce(ctx context.Context, opts *ListOptions) error {
	st, err := opts.Store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if opts.Scheduled {
		return listScheduled(ctx, opts, st)
	}
	scope, err := cmdutil.ResolveCluster(ctx, st, opts.Cluster)
	if err != nil {
		return err
	}
	ps, err := st.Proposals(ctx, store.ProposalFilter{Statuses: opts.Statuses, TicketID: opts.TicketID, Limit: opts.Limit, Cluster: scope.ID})
	if err != nil {
		return err
	}
	if opts.Format == cmdutil.FormatJSON {
		if ps == nil {
			ps = []action.Proposal{}
		}
		return cmdutil.PrintJSON(opts.IO.Out, ps)
	}
	if len(ps) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "no actions")
		return nil
	}
	now := opts.Now()
	header := []string{"ID", "TICKET", "STATUS", "ACTION", "PARAMS", "URGENCY", "PROPOSED", "BY", "DECIDED BY"}
	shift := 0
	if scope.Column {
		header, shift = append([]string{"ID", "CLUSTER"}, header[1:]...), 1
	}
	tw := cmdutil.NewTableIO(opts.IO, opts.Wide, header...)
	tw.Color(2+shift, cmdutil.StatusColor)
	for _, p := range ps {
		decided := "-"
		switch {
		case p.ApprovedBy != "":
			decided = p.ApprovedBy
		case p.RejectedBy != "":
			decided = p.RejectedBy + " (rejected)"
		}
		cells := []string{strconv.FormatInt(p.ID, 10), "#" + strconv.FormatInt(p.TicketID, 10), string(p.Status), p.ActionType,
			cmdutil.CompactJSON(p.Params), string(p.Urgency), cmdutil.Ago(p.ProposedAt, now), p.ProposedBy, decided}
		if scope.Column {
			cells = append([]string{cells[0], scope.Name(p.ClusterID)}, cells[1:]...)
		}
		tw.Row(cells...)
	}
	return tw.Flush()
}

// listScheduled prints the scheduled reverts (store.FollowUps in status
// scheduled or running), soonest due first.
func listScheduled(ctx context.Context, opts *ListOptions, st *store.Store) error {
	fs, err := st.FollowUps(ctx, store.FollowUpFilter{Statuses: []store.FollowUpStatus{store.FollowUpScheduled, store.FollowUpRunning}, ProposalID: 0})
	if err != nil {
		return err
	}
	if opts.Format == cmdutil.FormatJSON {
		if fs == nil {
			fs = []store.FollowUp{}
		}
		return cmdutil.PrintJSON(opts.IO.Out, fs)
	}
	if len(fs) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "no scheduled reverts")
		return nil
	}
	now := opts.Now()
	tw := cmdutil.NewTableIO(opts.IO, opts.Wide, "REVERT", "ACTION", "STATUS", "REVERT ACTION", "PARAMS", "DUE", "IN", "ONLY IF PD SHOWS")
	for _, f := range fs {
		in := f.DueAt.Sub(now).Round(time.Second).String()
		if !f.DueAt.After(now) {
			in = "due"
		}
		tw.Row(strconv.FormatInt(f.ID, 10), "#"+strconv.FormatInt(f.ProposalID, 10), string(f.Status), f.ActionType,
			cmdutil.CompactJSON(f.Params), f.DueAt.UTC().Format(time.RFC3339), in, cmdutil.CompactJSON(f.Expect))
	}
	return tw.Flush()
}
