// Package check implements `operator check`: one monitor cycle against the
// cluster, without a database.
package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/monitor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// DefaultTimeout bounds the whole check.
const DefaultTimeout = 30 * time.Second

// CheckOptions are the parsed flags of `operator check`.
type CheckOptions struct {
	IO       *iostreams.IOStreams
	Config   func() (config.Config, error)
	PDClient func(cfg config.Config) (*pd.Client, error)
	Now      func() time.Time
	Format   string
	Timeout  time.Duration
}

// NewCmdCheck returns the command; runF replaces checkRun in tests.
func NewCmdCheck(f *cmdutil.Factory, runF func(context.Context, *CheckOptions) error) *cobra.Command {
	opts := &CheckOptions{IO: f.IOStreams, Config: f.Config, PDClient: f.PDClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Evaluate every invariant once against the cluster; exit 7 when any is violated",
		Long: `Read the cluster from PD once, evaluate every enabled invariant and print the
violations. No database is used and no ticket is opened, so it fits cron jobs
and CI. The invariants' ` + "`for`" + ` durations are ignored: a check reports what one
look at the cluster shows.

Exit status: 0 when every invariant holds; 7 when any is violated; 15 when
none is violated but some could not be evaluated (they are listed on stderr:
an invariant that was not evaluated did not pass), or PD reports no store at
all; 6 when PD does not answer within --timeout or answers 503 (no PD
leader); 14 when the endpoint is an HTTP server that is not PD.`,
		Example: `  operator check --pd http://127.0.0.1:2379
  operator check -o json | jq '.violations[].key'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Format = f.Format()
			if opts.Timeout <= 0 {
				return cmdutil.FlagErrorf("--timeout must be positive, got %s", opts.Timeout)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return checkRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", DefaultTimeout, "how long to wait for PD")
	return cmd
}

// Violation is one violated invariant on one subject.
type Violation struct {
	ticket.Observation
	Key string `json:"key"`
}

// InvariantError is an invariant that could not be evaluated.
type InvariantError struct {
	Invariant string `json:"invariant"`
	Error     string `json:"error"`
}

// Report is what `check -o json` prints.
type Report struct {
	Time       time.Time        `json:"time"`
	PD         []string         `json:"pd"`
	Evaluated  []string         `json:"evaluated"`
	Violations []Violation      `json:"violations"`
	Errors     []InvariantError `json:"errors,omitempty"`
}

// discard is a monitor Sink that keeps nothing: check has no database.
type discard struct{}

func (discard) Observe(_ context.Context, obs ticket.Observation, now time.Time) (ticket.Ticket, bool, error) {
	return ticket.Ticket{Key: obs.Key(), Invariant: obs.Invariant, Subject: obs.Subject, Status: ticket.Open}, false, nil
}

func (discard) Sweep(context.Context, []string, map[string]bool, time.Time, time.Duration) ([]ticket.Ticket, error) {
	return nil, nil
}

func checkRun(ctx context.Context, opts *CheckOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	c, err := opts.PDClient(cfg)
	if err != nil {
		return err
	}
	inv := cfg.Invariants
	inv.DefaultFor = 0
	inv.For = nil
	m := monitor.New(monitor.Options{
		Invariants:     invariant.Default(inv),
		Collect:        func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, c) },
		Sink:           discard{},
		CollectTimeout: opts.Timeout,
		Logger:         slog.New(slog.DiscardHandler),
	})
	// The whole check gets a little more than the collection, so a PD
	// that accepts connections and never answers ends the collection
	// (and is reported as such), not the check.
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout+time.Second)
	defer cancel()
	eps := strings.Join(cfg.PD.Endpoints, ",")
	res, err := m.RunOnce(ctx, opts.Now())
	if err != nil {
		if parent.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return noAnswer(eps, opts.Timeout)
		}
		return fmt.Errorf("check: %w", err)
	}
	if res.CollectErr != nil {
		if errors.Is(res.CollectErr, context.DeadlineExceeded) && !errors.Is(res.CollectErr, pd.ErrUnreachable) {
			return noAnswer(eps, opts.Timeout)
		}
		return fmt.Errorf("check: cannot read the cluster from PD %s: %w", eps, res.CollectErr)
	}
	rep := Report{Time: res.Time, PD: cfg.PD.Endpoints, Evaluated: res.Evaluated, Violations: []Violation{}}
	for _, a := range append(res.Firing, res.Pending...) {
		rep.Violations = append(rep.Violations, Violation{Observation: a.Observation, Key: a.Key()})
	}
	for _, s := range res.Invariants {
		if s.Health == monitor.HealthBad {
			rep.Errors = append(rep.Errors, InvariantError{Invariant: s.Name, Error: s.Err})
		}
	}
	noStores := res.Snapshot != nil && len(res.Snapshot.Stores) == 0
	if noStores {
		// What the invariants found on no store is meaningless.
		rep.Violations = []Violation{}
		// GET /pd/api/v1/stores answered no store (`{"count":0}` or
		// `null`): there is nothing the invariants could hold on.
		rep.Errors = append(rep.Errors, InvariantError{Invariant: "(all)",
			Error: "PD reports no store (GET /pd/api/v1/stores listed none): nothing to evaluate"})
		rep.Evaluated = []string{}
	}
	if opts.Format == cmdutil.FormatJSON {
		if err := cmdutil.PrintJSON(opts.IO.Out, rep); err != nil {
			return err
		}
	} else {
		render(opts.IO, rep)
	}
	if len(rep.Violations) > 0 {
		return cmdutil.Silent(fmt.Errorf("%w: %d", cmdutil.ErrViolations, len(rep.Violations)))
	}
	if len(rep.Errors) > 0 {
		if noStores {
			return fmt.Errorf("%w: PD %s reports no store: no invariant could be evaluated", cmdutil.ErrNotEvaluated, eps)
		}
		return fmt.Errorf("%w: %d invariant(s) could not be evaluated on %s (listed above); an unevaluated invariant is not a pass",
			cmdutil.ErrNotEvaluated, len(rep.Errors), eps)
	}
	return nil
}

// noAnswer is PD accepting connections (or not) and not answering within
// the check's --timeout: PD unreachable (exit 6).
func noAnswer(eps string, timeout time.Duration) error {
	return fmt.Errorf("check: %w: PD %s did not answer within --timeout %s (an overloaded or stuck PD, or a port that accepts connections but is not PD's client URL)",
		pd.ErrUnreachable, eps, timeout)
}

func render(io *iostreams.IOStreams, rep Report) {
	for _, e := range rep.Errors {
		fmt.Fprintf(io.ErrOut, "warning: invariant %s could not be evaluated: %s\n", e.Invariant, e.Error)
	}
	if len(rep.Violations) == 0 {
		if len(rep.Errors) == 0 {
			fmt.Fprintf(io.Out, "OK: %d invariants hold on %s\n", len(rep.Evaluated), strings.Join(rep.PD, ","))
		}
		return
	}
	tw := cmdutil.NewTable(io.Out, "SEVERITY", "INVARIANT", "SUBJECT", "SUMMARY")
	for _, v := range rep.Violations {
		tw.Row(string(v.Severity), v.Invariant, v.Subject, v.Summary)
	}
	_ = tw.Flush()
	fmt.Fprintf(io.Out, "\n%d violation(s) of %d invariants evaluated.\n", len(rep.Violations), len(rep.Evaluated))
}
