// Package show implements `operator actions show ID`.
package show

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// ShowOptions are the parsed flags of `operator actions show`.
type ShowOptions struct {
	IO    *iostreams.IOStreams
	Store func(ctx context.Context) (*store.Store, error)
	// Specs returns the action catalog's entries; nil or an error leaves
	// the risk and rollback lines out.
	Specs  func() ([]action.Spec, error)
	Now    func() time.Time
	Format string
	ID     int64
}

// NewCmdShow returns the command; runF replaces showRun in tests.
func NewCmdShow(f *cmdutil.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{IO: f.IOStreams, Store: f.Store, Now: f.Now}
	opts.Specs = func() ([]action.Spec, error) {
		cfg, err := f.Config()
		if err != nil {
			return nil, err
		}
		return specs(f, cfg)
	}
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show an action: params, rationale, risks, status history, dry runs and audit records",
		Example: `  operator actions show 5
  operator actions show 5 -o json`,
		Args: cmdutil.ExactID("action"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			id, err := cmdutil.ParseID("action", args[0])
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

func specs(f *cmdutil.Factory, cfg config.Config) ([]action.Spec, error) {
	if f.Catalog == nil {
		return nil, nil
	}
	c, err := f.Catalog(cfg)
	if err != nil {
		return nil, err
	}
	return c.Specs(), nil
}

// Event is one step of an action's status history.
type Event struct {
	Time   time.Time     `json:"time"`
	Status action.Status `json:"status"`
	By     string        `json:"by,omitempty"`
	Detail string        `json:"detail,omitempty"`
}

// TicketRef is the ticket an action was proposed for.
type TicketRef struct {
	ID      int64         `json:"id"`
	Key     string        `json:"key"`
	Status  ticket.Status `json:"status"`
	Summary string        `json:"summary"`
}

// View is what `actions show -o json` prints.
type View struct {
	Action action.Proposal `json:"action"`
	Ticket *TicketRef      `json:"ticket,omitempty"`
	// Spec is the catalog entry of the action type (risk, rollback).
	Spec *action.Spec `json:"spec,omitempty"`
	// History is the status history, oldest first.
	History []Event `json:"history"`
	// DiagnosisDryRun is the dry run made when the diagnosis validated the
	// proposal (from the ticket's diagnosis).
	DiagnosisDryRun *action.DryRunResult `json:"diagnosis_dry_run,omitempty"`
	// Records are the audit records of this action, newest first.
	Records []action.Record `json:"records"`
}

func showRun(ctx context.Context, opts *ShowOptions) error {
	st, err := opts.Store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := Load(ctx, st, opts.ID)
	if err != nil {
		return cmdutil.Clean("action", opts.ID, err)
	}
	if opts.Specs != nil {
		if specs, err := opts.Specs(); err == nil {
			for i := range specs {
				if specs[i].Name == v.Action.ActionType {
					v.Spec = &specs[i]
				}
			}
		}
	}
	if opts.Format == cmdutil.FormatJSON {
		return cmdutil.PrintJSON(opts.IO.Out, v)
	}
	return Render(opts.IO.Out, v, opts.Now())
}

// Load reads an action, its ticket, records and history from st.
// Errors: store.ErrNotFound (wrapped) for an unknown id.
func Load(ctx context.Context, st *store.Store, id int64) (*View, error) {
	p, err := st.Proposal(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &View{Action: p}
	if t, err := st.Ticket(ctx, p.TicketID); err == nil {
		v.Ticket = &TicketRef{ID: t.ID, Key: t.Key, Status: t.Status, Summary: t.Summary}
		if len(t.DiagnosisJSON) > 0 {
			var d diagnose.Diagnosis
			if json.Unmarshal(t.DiagnosisJSON, &d) == nil && d.DryRun != nil && d.ProposedAction != nil &&
				d.ProposedAction.ActionType == p.ActionType {
				v.DiagnosisDryRun = d.DryRun
			}
		}
	}
	if v.Records, err = st.Records(ctx, store.RecordFilter{ProposalID: id}); err != nil {
		return nil, err
	}
	if v.Records == nil {
		v.Records = []action.Record{}
	}
	v.History = History(p, v.Records)
	return v, nil
}

// History rebuilds an action's status history from its timestamps and its
// dry-run records, oldest first. The approval and rejection events name
// their audit record when there is one.
func History(p action.Proposal, recs []action.Record) []Event {
	ev := []Event{{Time: p.ProposedAt, Status: action.Proposed, By: p.ProposedBy}}
	var approval, rejection string
	for _, r := range recs {
		switch r.Event {
		case action.EventApproval:
			approval = fmt.Sprintf("record %d", r.ID)
		case action.EventRejection:
			rejection = fmt.Sprintf(" (record %d)", r.ID)
		}
		if !r.DryRun {
			continue
		}
		res := cmdutil.RecordResult(r)
		by := r.ApprovedBy
		if by == "" {
			by = r.ExecutedBy
		}
		ev = append(ev, Event{Time: r.FinishedAt, Status: action.DryRun, By: by,
			Detail: fmt.Sprintf("%s (record %d): %s", res, r.ID, r.Message)})
	}
	if p.ApprovedAt != nil {
		ev = append(ev, Event{Time: *p.ApprovedAt, Status: action.Approved, By: p.ApprovedBy, Detail: approval})
	}
	if p.RejectedAt != nil {
		ev = append(ev, Event{Time: *p.RejectedAt, Status: action.Rejected, By: p.RejectedBy, Detail: p.RejectionReason + rejection})
	}
	if p.ExecutedAt != nil {
		ev = append(ev, Event{Time: *p.ExecutedAt, Status: action.Executing, By: p.ExecutedBy})
	}
	switch p.Status {
	case action.Completed, action.Failed:
		at := p.UpdatedAt
		if p.FinishedAt != nil {
			at = *p.FinishedAt
		}
		ev = append(ev, Event{Time: at, Status: p.Status, By: p.ExecutedBy, Detail: p.Result})
	case action.Expired:
		detail := "not approved before " + p.ExpiresAt.UTC().Format(time.RFC3339)
		if p.Result != "" { // the reason the store or the executor recorded
			detail = p.Result
		}
		ev = append(ev, Event{Time: p.UpdatedAt, Status: action.Expired, Detail: detail})
	case action.Refused:
		ev = append(ev, Event{Time: p.UpdatedAt, Status: action.Refused, By: p.ExecutedBy, Detail: p.Result})
	}
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].Time.Before(ev[j].Time) })
	return ev
}

// Render prints v for humans.
func Render(w io.Writer, v *View, now time.Time) error {
	p := v.Action
	fmt.Fprintf(w, "Action #%d  %s  [%s]\n", p.ID, p.ActionType, p.Status)
	if v.Ticket != nil {
		fmt.Fprintf(w, "Ticket:     #%d %s [%s]: %s\n", v.Ticket.ID, v.Ticket.Key, v.Ticket.Status, v.Ticket.Summary)
	} else {
		fmt.Fprintf(w, "Ticket:     #%d\n", p.TicketID)
	}
	fmt.Fprintf(w, "Params:     %s\n", cmdutil.CompactJSON(p.Params))
	if v.Spec != nil {
		rev := "no"
		if v.Spec.Reversible {
			rev = "yes"
		}
		fmt.Fprintf(w, "Risk:       %s; reversible: %s", v.Spec.Risk, rev)
		if v.Spec.Rollback != "" {
			fmt.Fprintf(w, " (%s)", v.Spec.Rollback)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Urgency:    %s\n", p.Urgency)
	fmt.Fprintf(w, "Proposed:   %s by %s\n", cmdutil.Stamp(p.ProposedAt, now), p.ProposedBy)
	if p.Status == action.Proposed || p.Status == action.DryRun {
		fmt.Fprintf(w, "Expires:    %s\n", p.ExpiresAt.Local().Format("2006-01-02 15:04:05 -0700"))
	}
	if p.Result != "" {
		fmt.Fprintf(w, "Result:     %s\n", p.Result)
	}

	fmt.Fprintln(w, "\n== Rationale ==")
	fmt.Fprintln(w, orNone(strings.TrimSpace(p.Rationale)))
	fmt.Fprintln(w, "\n== Risks ==")
	if len(p.Risks) == 0 {
		fmt.Fprintln(w, "none stated")
	}
	for _, r := range p.Risks {
		fmt.Fprintf(w, "- %s\n", r)
	}

	fmt.Fprintln(w, "\n== Status history ==")
	tw := cmdutil.NewTable(w, "TIME", "STATUS", "BY", "DETAIL")
	for _, e := range v.History {
		tw.Row(e.Time.Local().Format("2006-01-02 15:04:05"), string(e.Status), orDash(e.By), cmdutil.Truncate(e.Detail, 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if v.DiagnosisDryRun != nil {
		fmt.Fprintln(w, "\n== Dry run made by the diagnosis ==")
		RenderDryRun(w, *v.DiagnosisDryRun)
	}

	fmt.Fprintln(w, "\n== Audit records ==")
	if len(v.Records) == 0 {
		fmt.Fprintln(w, "none")
	} else {
		if err := cmdutil.RecordTable(w, v.Records, now); err != nil {
			return err
		}
		for _, r := range v.Records {
			var reqs []action.Request
			if json.Unmarshal(r.Requests, &reqs) != nil || len(reqs) == 0 {
				continue
			}
			verb := "sent"
			if r.DryRun {
				verb = "would send"
			}
			fmt.Fprintf(w, "record %d %s:\n", r.ID, verb)
			for _, q := range reqs {
				fmt.Fprintf(w, "  %s\n", q)
			}
		}
	}
	if p.Status == action.Proposed || p.Status == action.DryRun {
		b := cmdutil.Bin()
		fmt.Fprintf(w, "\nNext: %s actions approve %d --dry-run   %s actions approve %d   %s actions reject %d --reason TEXT\n", b, p.ID, b, p.ID, b, p.ID)
	}
	return nil
}

// RenderDryRun prints a dry run: verdict, preconditions, warnings and the
// exact PD requests (shared with `actions approve --dry-run`).
func RenderDryRun(w io.Writer, d action.DryRunResult) {
	verdict := "VALID"
	if !d.Valid {
		verdict = "INVALID"
	}
	fmt.Fprintf(w, "Result: %s: %s\n", verdict, d.Message)
	if len(d.Preconditions) > 0 {
		fmt.Fprintln(w, "Preconditions:")
		for _, c := range d.Preconditions {
			mark := "[ok]  "
			if !c.Passed {
				mark = "[FAIL]"
			}
			fmt.Fprintf(w, "  %s %s: %s\n", mark, c.Name, c.Detail)
		}
	}
	if len(d.Warnings) > 0 {
		fmt.Fprintln(w, "Warnings:")
		for _, x := range d.Warnings {
			fmt.Fprintf(w, "  - %s\n", x)
		}
	}
	if !d.Valid {
		// An invalid action is refused before any request: listing the
		// requests would read as if they would go out.
		fmt.Fprintf(w, "Nothing would be sent: %s\n", invalidWhy(d))
		return
	}
	fmt.Fprintln(w, "PD requests an execution would send:")
	if len(d.Requests) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, q := range d.Requests {
		fmt.Fprintf(w, "  %s\n", q)
	}
}

// invalidWhy names what makes the dry run invalid: the failed
// preconditions, else its message.
func invalidWhy(d action.DryRunResult) string {
	var failed []string
	for _, c := range d.Preconditions {
		if !c.Passed {
			failed = append(failed, c.Name)
		}
	}
	if len(failed) > 0 {
		return "the action is invalid (failed: " + strings.Join(failed, ", ") + "); executing it would be refused"
	}
	if d.Message != "" {
		return "the action is invalid (" + d.Message + "); executing it would be refused"
	}
	return "the action is invalid; executing it would be refused"
}

func orNone(s string) string {
	if s == "" {
		return "none given"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
