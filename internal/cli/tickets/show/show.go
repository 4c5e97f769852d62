// Package show implements `operator tickets show ID`.
package show

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// ShowOptions are the parsed flags of `operator tickets show`.
type ShowOptions struct {
	IO     *iostreams.IOStreams
	Store  func(ctx context.Context) (*store.Store, error)
	Now    func() time.Time
	Format string
	ID     int64
}

// NewCmdShow returns the command; runF replaces showRun in tests.
func NewCmdShow(f *cmdutil.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{IO: f.IOStreams, Store: f.Store, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a ticket: evidence, diagnosis, proposed actions and audit records",
		Example: `  operator tickets show 3
  operator tickets show 3 -o json`,
		Args: cmdutil.ExactID("ticket"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			id, err := cmdutil.ParseID("ticket", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return showRun(cmd.Context(), opts)
		},
	}
	return cmd
}

// View is what `tickets show -o json` prints.
type View struct {
	Ticket    ticket.Ticket     `json:"ticket"`
	Proposals []action.Proposal `json:"proposals"`
	Records   []action.Record   `json:"records"`
}

func showRun(ctx context.Context, opts *ShowOptions) error {
	st, err := opts.Store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := st.Ticket(ctx, opts.ID)
	if err != nil {
		return cmdutil.Clean("ticket", opts.ID, err)
	}
	v := View{Ticket: t}
	if v.Proposals, err = st.Proposals(ctx, store.ProposalFilter{TicketID: t.ID}); err != nil {
		return err
	}
	if v.Records, err = st.Records(ctx, store.RecordFilter{TicketID: t.ID}); err != nil {
		return err
	}
	if opts.Format == cmdutil.FormatJSON {
		return cmdutil.PrintJSON(opts.IO.Out, v)
	}
	return render(opts.IO.Out, v, opts.Now())
}

func render(w io.Writer, v View, now time.Time) error {
	t := v.Ticket
	fmt.Fprintf(w, "Ticket #%d  %s  [%s]  %s\n", t.ID, t.Key, t.Status, t.Severity)
	fmt.Fprintf(w, "%s\n\n", t.Summary)
	fmt.Fprintf(w, "First seen:   %s\n", cmdutil.Stamp(t.FirstSeen, now))
	fmt.Fprintf(w, "Last seen:    %s; seen %d times\n", cmdutil.Stamp(t.LastSeen, now), t.Occurrences)
	if t.ClearedAt != nil && t.Status != ticket.Resolved {
		fmt.Fprintf(w, "Holding since: %s (resolves after the quiet period)\n", cmdutil.Stamp(*t.ClearedAt, now))
	}
	if t.ResolvedAt != nil {
		fmt.Fprintf(w, "Resolved:     %s\n", cmdutil.Stamp(*t.ResolvedAt, now))
	}
	if t.RootID != nil {
		fmt.Fprintf(w, "Incident:     root #%d (this ticket is a symptom of it)\n", *t.RootID)
	}
	if t.PreviousID != nil {
		fmt.Fprintf(w, "Previous:     ticket #%d (same problem, resolved earlier)\n", *t.PreviousID)
	}

	fmt.Fprintln(w, "\n== Evidence (latest) ==")
	fmt.Fprintln(w, cmdutil.IndentJSON(t.Evidence, ""))

	fmt.Fprintln(w, "\n== Diagnosis ==")
	switch {
	case t.DiagnosisMarkdown != "":
		by := t.DiagnosisBackend
		if t.InputTokens+t.OutputTokens > 0 {
			by += fmt.Sprintf(", %d+%d tokens", t.InputTokens, t.OutputTokens)
		}
		when := "-"
		if t.DiagnosedAt != nil {
			when = cmdutil.Stamp(*t.DiagnosedAt, now)
		}
		fmt.Fprintf(w, "(by %s, %s)\n\n", by, when)
		fmt.Fprintln(w, strings.TrimRight(t.DiagnosisMarkdown, "\n"))
	case t.LastDiagnosisErr != "":
		next := "soon"
		if t.NextDiagnosisAt != nil {
			next = cmdutil.Stamp(*t.NextDiagnosisAt, now)
		}
		fmt.Fprintf(w, "not diagnosed yet: %d failed attempt(s), last error: %s; next attempt %s\n", t.DiagnosisAttempts, t.LastDiagnosisErr, next)
	default:
		fmt.Fprintln(w, "not diagnosed yet (the daemon's diagnosis runner picks up open tickets)")
	}

	fmt.Fprintln(w, "\n== Proposed actions ==")
	if len(v.Proposals) == 0 {
		fmt.Fprintln(w, "none")
	} else {
		tw := cmdutil.NewTable(w, "ID", "STATUS", "ACTION", "PARAMS", "URGENCY", "PROPOSED", "BY")
		for _, p := range v.Proposals {
			tw.Row(strconv.FormatInt(p.ID, 10), string(p.Status), p.ActionType, cmdutil.CompactJSON(p.Params),
				string(p.Urgency), cmdutil.Ago(p.ProposedAt, now), p.ProposedBy)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\n== Audit records ==")
	if len(v.Records) == 0 {
		fmt.Fprintln(w, "none")
	} else if err := cmdutil.RecordTable(w, v.Records, now); err != nil {
		return err
	}
	if len(v.Proposals) > 0 && (v.Proposals[0].Status == action.Proposed || v.Proposals[0].Status == action.DryRun) {
		id := v.Proposals[0].ID
		b := cmdutil.Bin()
		fmt.Fprintf(w, "\nNext: %s actions show %d   %s actions approve %d --dry-run   %s actions approve %d\n", b, id, b, id, b, id)
	}
	return nil
}
