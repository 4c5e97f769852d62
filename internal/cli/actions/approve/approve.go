// Package approve implements `operator actions approve ID [--dry-run]`.
package approve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/cli/actions/show"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/ticket"
)

// Defaults of the command's waiting.
const (
	// DefaultWait is how long a real approval waits for the outcome.
	DefaultWait = 2 * time.Minute
	// pollInterval is the pause between two reads of the proposal.
	pollInterval = 200 * time.Millisecond
)

// Gate is the daemon's API (api.Client): decisions are made by the
// daemon, which knows who is asking.
type Gate interface {
	DryRun(ctx context.Context, id int64) (api.DryRunResponse, error)
	Approve(ctx context.Context, id int64, req api.DecisionRequest) (api.ApproveResponse, error)
	Action(ctx context.Context, id int64) (api.ActionView, error)
	Where() string
}

// ApproveOptions are the parsed flags of `operator actions approve`.
type ApproveOptions struct {
	IO     *iostreams.IOStreams
	Config func() (config.Config, error)
	// NewGate returns the daemon's API client for cfg.
	NewGate func(cfg config.Config) (Gate, error)
	Now     func() time.Time
	Format  string

	ID int64
	// DryRun validates against live PD and records the dry run; nothing
	// is sent to PD.
	DryRun bool
	// OnBehalfOf (--as) names the person an admin approves for.
	OnBehalfOf string
	// Evidence is the hash of the dry-run record the approver looked at
	// (--evidence); "" binds the latest one.
	Evidence string
	// Wait bounds how long a real approval waits for the executor's
	// outcome; 0 returns right after the approval.
	Wait time.Duration
	// PollInterval between reads of the proposal; pollInterval when 0.
	PollInterval time.Duration
	// Bin is how the user ran the operator, for the hints printed.
	Bin string
}

// NewCmdApprove returns the command; runF replaces approveRun in tests.
func NewCmdApprove(f *cmdutil.Factory, runF func(context.Context, *ApproveOptions) error) *cobra.Command {
	opts := &ApproveOptions{
		IO: f.IOStreams, Config: f.Config, Now: f.Now,
		NewGate: func(cfg config.Config) (Gate, error) { return f.Daemon(cfg) },
		Bin:     cmdutil.Bin(),
	}
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve a proposed action (or dry-run it first)",
		Long: `Approve a proposed action so that the daemon's executor runs it.

The decision is made by the daemon (` + "`operator run`" + `), which knows who you are:
over its Unix socket your OS user (root and the daemon's user are admins,
[auth] unix-roles gives others a role), or with --server URL --token TOKEN
the token's name and role. The approval is recorded in the signed audit
trail, bound to this action's type and params, the cluster, the ticket, the
dry run you saw and an expiry ([actions] approval-ttl). High-risk actions
need a second approver ([actions] approvals-required).

With --dry-run nothing is approved and nothing is sent to PD: the action's
preconditions are checked against live PD state, the exact PD requests an
execution would send are printed, and the dry run is written to the audit
trail. The action stays awaiting approval.

Without --dry-run the command waits up to --wait for the executor to run
it, then prints the outcome. Exit status 9 when the action failed or the
dry run found it invalid, 10 when the outcome is not known yet, 12 when your
role does not allow approving, 13 when the daemon is not reachable.`,
		Example: `  operator actions approve 5 --dry-run
  operator actions approve 5
  operator actions approve 5 --as alice   # an admin approving on alice's behalf
  operator --server http://ops:9469 --token $OPERATOR_TOKEN actions approve 5`,
		Args: cmdutil.ExactID("action"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Format = f.Format()
			id, err := cmdutil.ParseID("action", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			if opts.Wait < 0 {
				return cmdutil.FlagErrorf("--wait must not be negative, got %s", opts.Wait)
			}
			opts.OnBehalfOf = strings.TrimSpace(opts.OnBehalfOf)
			if cmd.Flags().Changed("as") && opts.OnBehalfOf == "" {
				return cmdutil.FlagErrorf("--as needs a name")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return approveRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "check preconditions and print the PD requests without approving or sending anything")
	cmd.Flags().StringVar(&opts.OnBehalfOf, "as", "", "admins only: approve on behalf of this person (both names are recorded)")
	cmd.Flags().StringVar(&opts.Evidence, "evidence", "", "hash of the dry-run record you reviewed (default: the latest one)")
	cmd.Flags().DurationVar(&opts.Wait, "wait", DefaultWait, "how long to wait for the executor's outcome (0: do not wait)")
	return cmd
}

// Result is what `-o json` prints.
type Result struct {
	// DryRun is set for --dry-run.
	DryRun *action.DryRunResult `json:"dry_run,omitempty"`
	// Action is the proposal as last read.
	Action action.Proposal `json:"action"`
	// Record is the audit record of the dry run or the execution, when
	// there is one.
	Record *action.Record `json:"record,omitempty"`
	// Outcome is "valid", "invalid", "completed", "failed", "refused",
	// "expired", "executing", "approved" (--wait 0, or not picked up) or
	// "needs_approvals".
	Outcome string `json:"outcome"`
	// TicketStatus is the ticket's status after a finished execution
	// (resolved when the daemon's re-evaluation found the invariant
	// holding).
	TicketStatus ticket.Status `json:"ticket_status,omitempty"`
	// Approvals and Required: how many people approved so far, and how
	// many the policy requires (outcome "needs_approvals" until then).
	Approvals int `json:"approvals,omitempty"`
	Required  int `json:"required,omitempty"`
}

func approveRun(ctx context.Context, opts *ApproveOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	gate, err := opts.NewGate(cfg)
	if err != nil {
		return err
	}
	if opts.DryRun {
		return dryRun(ctx, opts, gate)
	}
	resp, err := gate.Approve(ctx, opts.ID, api.DecisionRequest{OnBehalfOf: opts.OnBehalfOf, EvidenceDigest: opts.Evidence})
	if err != nil {
		return cmdutil.Clean("action", opts.ID, err)
	}
	p := resp.Action
	out := opts.IO.Out
	jsonOut := opts.Format == cmdutil.FormatJSON
	if p.Status != action.Approved {
		// One of several approvals the policy requires.
		if jsonOut {
			return cmdutil.PrintJSON(out, Result{Action: p, Outcome: "needs_approvals", Approvals: resp.Approvals, Required: resp.Required})
		}
		fmt.Fprintf(out, "Approval %d of %d recorded for action #%d %s %s; it runs once %d more person(s) approve: %s actions approve %d\n",
			resp.Approvals, resp.Required, p.ID, p.ActionType, cmdutil.CompactJSON(p.Params), resp.Required-resp.Approvals, opts.Bin, p.ID)
		return nil
	}
	if !jsonOut {
		who := safetext.Line(p.ApprovedBy, 0)
		if opts.OnBehalfOf != "" {
			who += " on behalf of " + opts.OnBehalfOf
		}
		fmt.Fprintf(out, "Approved action #%d %s %s as %s (approval valid until %s).\n", p.ID, p.ActionType, cmdutil.CompactJSON(p.Params),
			who, approvalExpiry(p))
	}
	if opts.Wait == 0 {
		if jsonOut {
			return cmdutil.PrintJSON(out, Result{Action: p, Outcome: "approved", Approvals: resp.Approvals, Required: resp.Required})
		}
		fmt.Fprintf(out, "The executor of `operator run` will execute it; follow it with: %s actions show %d\n", opts.Bin, p.ID)
		return nil
	}
	if !jsonOut {
		fmt.Fprintf(opts.IO.ErrOut, "Waiting up to %s for the executor...\n", opts.Wait)
	}
	return wait(ctx, opts, gate, p)
}

func approvalExpiry(p action.Proposal) string {
	if p.ApprovalExpiresAt == nil {
		return "?"
	}
	return p.ApprovalExpiresAt.Local().Format("15:04:05")
}

func dryRun(ctx context.Context, opts *ApproveOptions, gate Gate) error {
	resp, err := gate.DryRun(ctx, opts.ID)
	if err != nil {
		return cmdutil.Clean("action", opts.ID, err)
	}
	res, p, rec := resp.DryRun, resp.Action, resp.Record
	outcome := "valid"
	if !res.Valid {
		outcome = "invalid"
	}
	if opts.Format == cmdutil.FormatJSON {
		if err := cmdutil.PrintJSON(opts.IO.Out, Result{DryRun: &res, Action: p, Record: &rec, Outcome: outcome}); err != nil {
			return err
		}
	} else {
		w := opts.IO.Out
		fmt.Fprintf(w, "Dry run of action #%d %s %s (ticket #%d)\n", p.ID, p.ActionType, cmdutil.CompactJSON(p.Params), p.TicketID)
		show.RenderDryRun(w, res)
		fmt.Fprintf(w, "Recorded as audit record %d (hash %s). Nothing was sent to PD; the action is still awaiting approval.\n", rec.ID, shortHash(rec.Hash))
		if res.Valid {
			fmt.Fprintf(w, "Next: %s actions approve %d --evidence %s\n", opts.Bin, p.ID, rec.Hash)
		}
	}
	if !res.Valid {
		return fmt.Errorf("%w: dry run of action %d is invalid: %s", cmdutil.ErrActionFailed, p.ID, safetext.Line(res.Message, safetext.MaxText))
	}
	return nil
}

func wait(ctx context.Context, opts *ApproveOptions, gate Gate, p action.Proposal) error {
	interval := opts.PollInterval
	if interval <= 0 {
		interval = pollInterval
	}
	deadline := time.Now().Add(opts.Wait)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		v, err := gate.Action(ctx, p.ID)
		if err != nil {
			return err
		}
		p = v.Action
		if p.Status.Final() {
			// After an execution the daemon re-evaluates the ticket
			// (resolved, or reopened for a new diagnosis): wait briefly so
			// the outcome printed is the ticket's too.
			if p.Status == action.Completed {
				v = ticketSettled(ctx, gate, v, interval)
			}
			return finished(opts, v)
		}
		if !time.Now().Before(deadline) {
			if opts.Format == cmdutil.FormatJSON {
				_ = cmdutil.PrintJSON(opts.IO.Out, Result{Action: p, Outcome: string(p.Status)})
			}
			if p.Status == action.Approved {
				return fmt.Errorf("%w: approved; the executor has not picked it up within %s. Action %d stays approved until %s, then expires.",
					cmdutil.ErrPending, opts.Wait, p.ID, approvalExpiry(p))
			}
			return fmt.Errorf("%w: action %d is still %s after %s (executor %s); follow it with: %s actions show %d",
				cmdutil.ErrPending, p.ID, p.Status, opts.Wait, p.ExecutedBy, opts.Bin, p.ID)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for action %d: %w (it stays %s)", p.ID, ctx.Err(), p.Status)
		case <-tick.C:
		}
	}
}

// ReevaluateWait bounds how long a completed approval waits for the
// daemon to re-evaluate the ticket. The daemon re-checks a ticket from its
// next monitor cycle's snapshot (issue 17: no extra full read of PD), up
// to an interval later; the command returns within this bound of the
// action's outcome (issue 17's target: 1 s) and says how to follow the
// ticket when it was not re-evaluated yet.
const ReevaluateWait = 500 * time.Millisecond

func ticketSettled(ctx context.Context, gate Gate, v api.ActionView, interval time.Duration) api.ActionView {
	deadline := time.Now().Add(ReevaluateWait)
	for v.TicketStatus == ticket.Diagnosed && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return v
		case <-time.After(interval):
		}
		nv, err := gate.Action(ctx, v.Action.ID)
		if err != nil {
			return v
		}
		v = nv
	}
	return v
}

func finished(opts *ApproveOptions, v api.ActionView) error {
	p := v.Action
	var rec *action.Record
	for i := range v.Records { // newest first; the execution, not a dry run or the approval
		if v.Records[i].Event == action.EventExecution || v.Records[i].Event == action.EventRefusal || v.Records[i].Event == action.EventExpiry {
			rec = &v.Records[i]
			break
		}
	}
	if opts.Format == cmdutil.FormatJSON {
		if err := cmdutil.PrintJSON(opts.IO.Out, Result{Action: p, Record: rec, Outcome: string(p.Status), TicketStatus: v.TicketStatus}); err != nil {
			return err
		}
	} else {
		renderOutcome(opts.IO.Out, p, rec)
		renderTicket(opts.IO.Out, p.TicketID, v.TicketStatus, p.Status, opts.Bin)
	}
	if p.Status != action.Completed {
		return fmt.Errorf("%w: action %d %s: %s", cmdutil.ErrActionFailed, p.ID, p.Status, safetext.Line(p.Result, safetext.MaxText))
	}
	return nil
}

func renderOutcome(w io.Writer, p action.Proposal, rec *action.Record) {
	took := ""
	if p.ExecutedAt != nil && p.FinishedAt != nil {
		took = fmt.Sprintf(" in %s", p.FinishedAt.Sub(*p.ExecutedAt).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "Action #%d %s%s (approved by %s, executed by %s): %s\n", p.ID, p.Status, took,
		safetext.Line(p.ApprovedBy, 0), safetext.Line(p.ExecutedBy, 0), safetext.Line(p.Result, safetext.MaxText))
	if rec == nil {
		return
	}
	var reqs []action.Request
	if json.Unmarshal(rec.Requests, &reqs) == nil && len(reqs) > 0 {
		fmt.Fprintln(w, "PD requests sent:")
		for _, q := range reqs {
			fmt.Fprintf(w, "  %s\n", safetext.Line(q.String(), safetext.MaxText))
		}
	}
	fmt.Fprintf(w, "Audit record %d (hash %s).\n", rec.ID, shortHash(rec.Hash))
}

func renderTicket(w io.Writer, id int64, status ticket.Status, actionStatus action.Status, bin string) {
	switch {
	case status == ticket.Resolved && actionStatus == action.Completed:
		fmt.Fprintf(w, "Ticket #%d: resolved (the invariant holds again).\n", id)
	case status == ticket.Open && actionStatus == action.Completed:
		fmt.Fprintf(w, "Ticket #%d: still violated; reopened for a new diagnosis (%s tickets show %d).\n", id, bin, id)
	case status == ticket.Diagnosed && actionStatus == action.Completed:
		fmt.Fprintf(w, "Ticket #%d: the daemon re-checks it at its next monitor cycle; follow it with: %s tickets show %d\n", id, bin, id)
	case status == "":
	default:
		fmt.Fprintf(w, "Ticket #%d: %s; see %s tickets show %d\n", id, status, bin, id)
	}
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
