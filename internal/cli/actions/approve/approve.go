// Package approve implements `operator actions approve ID [--dry-run]`.
package approve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/actions/show"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// Defaults of the command's waiting.
const (
	// DefaultWait is how long a real approval waits for the outcome.
	DefaultWait = 2 * time.Minute
	// PickupGrace is how long an approval may stay unclaimed before the
	// command checks whether a daemon answers on [server] listen and, if
	// none does, stops waiting. The executor claims an approval within a
	// second when it runs.
	PickupGrace = 5 * time.Second
	// pollInterval is the pause between two reads of the proposal.
	pollInterval = 200 * time.Millisecond
)

// Gate is the approval gate: executor.Executor.
type Gate interface {
	DryRun(ctx context.Context, id int64, by string) (action.DryRunResult, action.Record, error)
	Approve(ctx context.Context, id int64, by string) (action.Proposal, error)
}

// ApproveOptions are the parsed flags of `operator actions approve`.
type ApproveOptions struct {
	IO        *iostreams.IOStreams
	Config    func() (config.Config, error)
	OpenStore func(ctx context.Context, cfg config.Config) (*store.Store, error)
	// NewGate builds the gate over st.
	NewGate func(cfg config.Config, st *store.Store) (Gate, error)
	// DaemonAlive reports whether an `operator run` answers on cfg's
	// [server] listen address (true when unknown).
	DaemonAlive func(ctx context.Context, cfg config.Config) bool
	Now         func() time.Time
	Format      string

	ID int64
	// DryRun validates against live PD and records the dry run; nothing
	// is sent to PD.
	DryRun bool
	// As names the approver; the OS user when empty.
	As string
	// Wait bounds how long a real approval waits for the executor's
	// outcome; 0 returns right after the approval.
	Wait time.Duration
	// PollInterval between reads of the proposal; pollInterval when 0.
	PollInterval time.Duration
	// PickupGrace overrides PickupGrace when > 0 (tests).
	PickupGrace time.Duration
}

// NewCmdApprove returns the command; runF replaces approveRun in tests.
func NewCmdApprove(f *cmdutil.Factory, runF func(context.Context, *ApproveOptions) error) *cobra.Command {
	opts := &ApproveOptions{
		IO: f.IOStreams, Config: f.Config, OpenStore: f.OpenStore, Now: f.Now,
		NewGate: func(cfg config.Config, st *store.Store) (Gate, error) {
			return f.Executor(cfg, st)
		},
		DaemonAlive: DaemonAlive,
	}
	cmd := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve a proposed action (or dry-run it first)",
		Long: `Approve a proposed action so that the daemon's executor runs it.

With --dry-run nothing is approved and nothing is sent to PD: the action's
preconditions are checked against live PD state, the exact PD requests an
execution would send are printed, and the dry run is written to the audit
trail. The action stays awaiting approval.

Without --dry-run the approval is recorded (who: --as, else the OS user) and
the command waits up to --wait for the executor of ` + "`operator run`" + ` to
execute it, then prints the outcome. Exit status 9 when the action failed or
the dry run found it invalid, 10 when the outcome is not known yet.`,
		Example: `  operator actions approve 5 --dry-run
  operator actions approve 5 --as alice
  operator actions approve 5 --wait 0   # do not wait for the outcome`,
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
			return approveRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "check preconditions and print the PD requests without approving or sending anything")
	cmd.Flags().StringVar(&opts.As, "as", "", "approver name recorded in the audit trail (default: the OS user)")
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
	// Outcome is "valid", "invalid", "completed", "failed",
	// "not_picked_up", "executing" or "approved" (--wait 0).
	Outcome string `json:"outcome"`
	// TicketStatus is the ticket's status after a finished execution
	// (resolved when the daemon's re-evaluation found the invariant
	// holding).
	TicketStatus ticket.Status `json:"ticket_status,omitempty"`
}

func approveRun(ctx context.Context, opts *ApproveOptions) error {
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
	if opts.DryRun {
		return dryRun(ctx, opts, st, gate)
	}

	p, err := gate.Approve(ctx, opts.ID, opts.As)
	if err != nil {
		return cmdutil.Clean("action", opts.ID, err)
	}
	out := opts.IO.Out
	jsonOut := opts.Format == cmdutil.FormatJSON
	if !jsonOut {
		fmt.Fprintf(out, "Approved action #%d %s %s as %s.\n", p.ID, p.ActionType, cmdutil.CompactJSON(p.Params), opts.As)
	}
	if opts.Wait == 0 {
		if jsonOut {
			return cmdutil.PrintJSON(out, Result{Action: p, Outcome: "approved"})
		}
		fmt.Fprintf(out, "The executor of `operator run` will execute it; follow it with: operator actions show %d\n", p.ID)
		return nil
	}
	if !jsonOut {
		fmt.Fprintf(opts.IO.ErrOut, "Waiting up to %s for the executor...\n", opts.Wait)
	}
	return wait(ctx, opts, cfg, st, p)
}

func dryRun(ctx context.Context, opts *ApproveOptions, st *store.Store, gate Gate) error {
	res, rec, err := gate.DryRun(ctx, opts.ID, opts.As)
	if err != nil {
		return cmdutil.Clean("action", opts.ID, err)
	}
	p, err := st.Proposal(ctx, opts.ID)
	if err != nil {
		return err
	}
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
		fmt.Fprintf(w, "Recorded as audit record %d. Nothing was sent to PD; the action is still awaiting approval.\n", rec.ID)
		if res.Valid {
			fmt.Fprintf(w, "Next: operator actions approve %d\n", p.ID)
		}
	}
	if !res.Valid {
		return fmt.Errorf("%w: dry run of action %d is invalid: %s", cmdutil.ErrActionFailed, p.ID, res.Message)
	}
	return nil
}

func wait(ctx context.Context, opts *ApproveOptions, cfg config.Config, st *store.Store, p action.Proposal) error {
	interval := opts.PollInterval
	if interval <= 0 {
		interval = pollInterval
	}
	grace := opts.PickupGrace
	if grace <= 0 {
		grace = PickupGrace
	}
	// Waiting uses the monotonic clock; opts.Now is for what is shown.
	start := time.Now()
	deadline := start.Add(opts.Wait)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	checkedDaemon := false
	for {
		cur, err := st.Proposal(ctx, p.ID)
		if err != nil {
			return err
		}
		p = cur
		if p.Status.Final() {
			return finished(ctx, opts, st, p)
		}
		now := time.Now()
		if p.Status == action.Approved && !checkedDaemon && now.Sub(start) >= grace && opts.DaemonAlive != nil {
			checkedDaemon = true
			if !opts.DaemonAlive(ctx, cfg) {
				return notPickedUp(opts, p, fmt.Sprintf(" (nothing answers on http://%s/healthz)", cfg.Server.Listen))
			}
		}
		if !now.Before(deadline) {
			if p.Status == action.Approved {
				return notPickedUp(opts, p, "")
			}
			return pending(opts, p)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for action %d: %w (it stays %s)", p.ID, ctx.Err(), p.Status)
		case <-tick.C:
		}
	}
}

func notPickedUp(opts *ApproveOptions, p action.Proposal, why string) error {
	if opts.Format == cmdutil.FormatJSON {
		_ = cmdutil.PrintJSON(opts.IO.Out, Result{Action: p, Outcome: "not_picked_up"})
	}
	return fmt.Errorf("%w: approved; no executor has picked it up yet — is `operator run` running?%s "+
		"Action %d stays approved and runs when the daemon starts (or expires at %s).",
		cmdutil.ErrPending, why, p.ID, p.ExpiresAt.Local().Format("2006-01-02 15:04:05"))
}

func pending(opts *ApproveOptions, p action.Proposal) error {
	if opts.Format == cmdutil.FormatJSON {
		_ = cmdutil.PrintJSON(opts.IO.Out, Result{Action: p, Outcome: string(p.Status)})
	}
	return fmt.Errorf("%w: action %d is still %s after %s (executor %s); follow it with: operator actions show %d",
		cmdutil.ErrPending, p.ID, p.Status, opts.Wait, p.ExecutedBy, p.ID)
}

func finished(ctx context.Context, opts *ApproveOptions, st *store.Store, p action.Proposal) error {
	var rec *action.Record
	recs, err := st.Records(ctx, store.RecordFilter{ProposalID: p.ID})
	if err != nil {
		return err
	}
	for i := range recs { // newest first; the execution, not a dry run or the approval
		if recs[i].IsExecution() {
			rec = &recs[i]
			break
		}
	}
	// After an execution the daemon re-evaluates the ticket's invariant
	// (resolved, or reopened for a new diagnosis); wait briefly for it so
	// that the outcome printed is the ticket's too.
	t, tErr := ticketAfter(ctx, opts, st, p)
	if opts.Format == cmdutil.FormatJSON {
		res := Result{Action: p, Record: rec, Outcome: string(p.Status)}
		if tErr == nil {
			res.TicketStatus = t.Status
		}
		if err := cmdutil.PrintJSON(opts.IO.Out, res); err != nil {
			return err
		}
	} else {
		renderOutcome(opts.IO.Out, p, rec)
		if tErr == nil {
			renderTicket(opts.IO.Out, t)
		}
	}
	if p.Status != action.Completed {
		return fmt.Errorf("%w: action %d %s: %s", cmdutil.ErrActionFailed, p.ID, p.Status, p.Result)
	}
	return nil
}

func renderOutcome(w io.Writer, p action.Proposal, rec *action.Record) {
	took := ""
	if p.ExecutedAt != nil && p.FinishedAt != nil {
		took = fmt.Sprintf(" in %s", p.FinishedAt.Sub(*p.ExecutedAt).Round(time.Millisecond))
	}
	fmt.Fprintf(w, "Action #%d %s%s (approved by %s, executed by %s): %s\n", p.ID, p.Status, took, p.ApprovedBy, p.ExecutedBy, p.Result)
	if rec == nil {
		return
	}
	var reqs []action.Request
	if json.Unmarshal(rec.Requests, &reqs) == nil && len(reqs) > 0 {
		fmt.Fprintln(w, "PD requests sent:")
		for _, q := range reqs {
			fmt.Fprintf(w, "  %s\n", q)
		}
	}
	fmt.Fprintf(w, "Audit record %d (hash %s).\n", rec.ID, shortHash(rec.Hash))
}

// ReevaluateWait bounds how long a completed approval waits for the
// daemon to re-evaluate the ticket.
const ReevaluateWait = 10 * time.Second

// ticketAfter returns p's ticket once it left diagnosed (the daemon's
// re-evaluation resolved or reopened it), or as it is after
// ReevaluateWait. Only completed executions are waited for.
func ticketAfter(ctx context.Context, opts *ApproveOptions, st *store.Store, p action.Proposal) (ticket.Ticket, error) {
	interval := opts.PollInterval
	if interval <= 0 {
		interval = pollInterval
	}
	deadline := time.Now().Add(ReevaluateWait)
	for {
		t, err := st.Ticket(ctx, p.TicketID)
		if err != nil || p.Status != action.Completed || t.Status != ticket.Diagnosed || !time.Now().Before(deadline) {
			return t, err
		}
		select {
		case <-ctx.Done():
			return t, nil
		case <-time.After(interval):
		}
	}
}

func renderTicket(w io.Writer, t ticket.Ticket) {
	switch t.Status {
	case ticket.Resolved:
		fmt.Fprintf(w, "Ticket #%d %s: resolved (the invariant holds again).\n", t.ID, t.Key)
	case ticket.Open:
		fmt.Fprintf(w, "Ticket #%d %s: still violated; reopened for a new diagnosis (operator tickets show %d).\n", t.ID, t.Key, t.ID)
	default:
		fmt.Fprintf(w, "Ticket #%d %s: %s; see operator tickets show %d\n", t.ID, t.Key, t.Status, t.ID)
	}
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// DaemonAlive reports whether something answers GET /healthz on cfg's
// [server] listen address within a second. It returns true when no address
// is configured, since it then cannot tell.
func DaemonAlive(ctx context.Context, cfg config.Config) bool {
	addr := cfg.Server.Listen
	if addr == "" {
		return true
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return true
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}
