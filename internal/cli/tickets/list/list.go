// Package list implements `operator tickets list`.
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
	"github.com/tikvops/operator/internal/ticket"
)

// ListOptions are the parsed flags of `operator tickets list`.
type ListOptions struct {
	IO    *iostreams.IOStreams
	Store func(ctx context.Context) (*store.Store, error)
	Now   func() time.Time
	// Format is the global -o (table or json).
	Format string
	// Statuses keeps tickets in these statuses; empty means all.
	Statuses []ticket.Status
	// Limit caps the rows (newest first); 0 means no limit.
	Limit int
	// Wide prints every column in full; otherwise the table fits the
	// terminal's width.
	Wide bool
	// Watch refreshes the table every Watch.Interval until Ctrl-C.
	Watch cmdutil.WatchFlags
	// Title is the command line shown in --watch's header.
	Title string
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
		Short: "List tickets, newest first",
		Long: `List tickets, newest first: one per violated invariant and subject
(for example leader_imbalance/cluster or store_disconnected/store:4).

The ACTION column shows the ticket's latest action proposal, if any.`,
		Example: `  operator tickets list
  operator tickets list --status open,diagnosed
  operator tickets list --cluster east   # one cluster of a database holding several
  operator tickets list --wide      # every column in full, whatever the terminal width
  operator tickets list --watch     # refresh every 2s until Ctrl-C
  operator tickets list -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Format = f.Format()
			st, err := ParseStatuses(statuses)
			if err != nil {
				return err
			}
			opts.Statuses = st
			if opts.Limit < 0 {
				return cmdutil.FlagErrorf("--limit must not be negative, got %d", opts.Limit)
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
	cmd.Flags().StringSliceVar(&statuses, "status", nil, "only tickets in these statuses: open, diagnosed, resolved, active (open+diagnosed)")
	cmd.Flags().IntVar(&opts.Limit, "limit", 50, "show at most this many tickets (0: all)")
	cmd.Flags().BoolVar(&opts.Wide, "wide", false, "print every column in full (default: fit the terminal width)")
	cmdutil.AddWatchFlags(cmd, &opts.Watch)
	cmdutil.AddClusterFlag(cmd, &opts.Cluster)
	return cmd
}

// ParseStatuses validates --status values; "active" means open and
// diagnosed, "all" (or nothing) every status.
func ParseStatuses(in []string) ([]ticket.Status, error) {
	var out []ticket.Status
	for _, s := range in {
		switch v := ticket.Status(strings.ToLower(strings.TrimSpace(s))); v {
		case ticket.Open, ticket.Diagnosed, ticket.Resolved:
			out = append(out, v)
		case "active":
			out = append(out, ticket.Open, ticket.Diagnosed)
		case "all":
			return nil, nil
		default:
			return nil, cmdutil.FlagErrorf("invalid --status %q: want open, diagnosed, resolved, active or all", s)
		}
	}
	return out, nil
}

// Row is one ticket as `-o json` prints it: the ticket plus its latest
// proposal's id and status.
type Row struct {
	ticket.Ticket
	ActionID     int64         `json:"action_id,omitempty"`
	ActionType   string        `json:"action_type,omitempty"`
	ActionStatus action.Status `json:"action_status,omitempty"`
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
	scope, err := cmdutil.ResolveCluster(ctx, st, opts.Cluster)
	if err != nil {
		return err
	}
	ts, err := st.Tickets(ctx, store.TicketFilter{Statuses: opts.Statuses, Limit: opts.Limit, Cluster: scope.ID})
	if err != nil {
		return err
	}
	ids := make([]int64, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	latest, err := st.LatestProposals(ctx, ids) // one query, not one per row
	if err != nil {
		return err
	}
	rows := make([]Row, len(ts))
	for i, t := range ts {
		rows[i].Ticket = t
		if p, ok := latest[t.ID]; ok {
			rows[i].ActionID, rows[i].ActionType, rows[i].ActionStatus = p.ID, p.ActionType, p.Status
		}
	}
	if opts.Format == cmdutil.FormatJSON {
		return cmdutil.PrintJSON(opts.IO.Out, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "no tickets")
		return nil
	}
	now := opts.Now()
	header := []string{"ID", "STATUS", "SEVERITY", "INVARIANT", "SUBJECT", "SEEN", "LAST SEEN", "ACTION", "SUMMARY"}
	shift := 0
	if scope.Column {
		header, shift = append([]string{"ID", "CLUSTER"}, header[1:]...), 1
	}
	tw := cmdutil.NewTableIO(opts.IO, opts.Wide, header...)
	tw.Color(1+shift, cmdutil.StatusColor)
	tw.Color(2+shift, cmdutil.SeverityColor)
	for _, r := range rows {
		act := "-"
		if r.ActionID != 0 {
			act = fmt.Sprintf("#%d %s (%s)", r.ActionID, r.ActionType, r.ActionStatus)
		}
		cells := []string{strconv.FormatInt(r.ID, 10), string(r.Status), string(r.Severity), r.Invariant, r.Subject,
			fmt.Sprintf("%dx", r.Occurrences), cmdutil.Ago(r.LastSeen, now), act, rootMark(r.RootID) + summary(r.Summary, opts.Wide)}
		if scope.Column {
			cells = append([]string{cells[0], scope.Name(r.ClusterID)}, cells[1:]...)
		}
		tw.Row(cells...)
	}
	return tw.Flush()
}

// summary is the summary cut to 80 runes, or in full with --wide.
func summary(s string, wide bool) string {
	if wide {
		return s
	}
	return cmdutil.Truncate(s, 80)
}

// rootMark is "root #N " for a ticket linked to an incident root.
func rootMark(root *int64) string {
	if root == nil {
		return ""
	}
	return fmt.Sprintf("root #%d ", *root)
}
