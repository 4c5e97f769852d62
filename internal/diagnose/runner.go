package diagnose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// TicketSource lists the tickets due for a diagnosis: open, and past their
// retry backoff (ticket store: TicketsToDiagnose).
type TicketSource interface {
	TicketsToDiagnose(ctx context.Context, now time.Time, limit int) ([]ticket.Ticket, error)
}

// Gatherer builds the Context of a ticket from the cluster (PD, and
// Prometheus when configured). An error means the cluster could not be
// read; the ticket is retried later.
type Gatherer interface {
	Gather(ctx context.Context, t ticket.Ticket) (*Context, error)
}

// GatherFunc adapts a function to Gatherer.
type GatherFunc func(ctx context.Context, t ticket.Ticket) (*Context, error)

// Gather calls f.
func (f GatherFunc) Gather(ctx context.Context, t ticket.Ticket) (*Context, error) { return f(ctx, t) }

// Result is what the runner stores for one diagnosed ticket.
type Result struct {
	// Diagnosis is the validated diagnosis.
	Diagnosis *Diagnosis
	// Markdown is Diagnosis.Markdown(); JSON is Diagnosis as JSON.
	Markdown string
	JSON     json.RawMessage
	// Proposal is the action proposal to create in status proposed, or nil
	// when the diagnosis proposes nothing (or its proposal was rejected).
	Proposal *action.Proposal
}

// Sink stores the runner's outcomes (ticket store: SaveDiagnosis,
// DiagnosisFailed, through a small adapter).
type Sink interface {
	// SaveDiagnosis stores r on the open ticket (open -> diagnosed) and
	// creates r.Proposal if any, in one transaction; it returns the
	// proposal id or 0.
	SaveDiagnosis(ctx context.Context, ticketID int64, r Result, now time.Time) (proposalID int64, err error)
	// DiagnosisFailed records a failed attempt that consumed spent model
	// tokens (diagnose.Spent of the error; zero for rules or when nothing
	// was sent); the sink adds them to the ticket's token totals. The
	// ticket stays open and is due again at next.
	DiagnosisFailed(ctx context.Context, ticketID int64, errMsg string, next time.Time, spent Usage) error
}

// Runner defaults.
const (
	DefaultProposalTTL = 24 * time.Hour
	DefaultMaxAttempts = 5
	DefaultBatch       = 10
)

// Runner diagnoses the tickets a TicketSource reports, one pass at a time:
// gather the Context, call the Backend, Validate the answer against the
// catalog, store markdown, JSON and (if any) the proposal. A failure
// (cluster unreadable, backend unavailable, invalid output, budget) leaves
// the ticket open with a backoff; after MaxAttempts failures the ticket
// gets a diagnosis without a proposal saying that a human must look, so it
// does not retry (and spend tokens) forever.
//
// With TicketBudget > 0 the token budget holds per ticket, across
// attempts: the tokens a ticket already consumed (ticket.Ticket
// InputTokens+OutputTokens, which the Sink accumulates from failed and
// successful attempts) are subtracted, the rest is passed to the backend
// as Context.Budget, and a ticket with nothing left is not sent to the
// backend again but gets a diagnosis without a proposal (BudgetSpent).
type Runner struct {
	Source  TicketSource
	Gather  Gatherer
	Backend Backend
	Catalog *action.Catalog
	Sink    Sink
	// Batch caps tickets per pass; DefaultBatch when 0.
	Batch int
	// ProposalTTL is how long a proposal may be approved;
	// DefaultProposalTTL when 0.
	ProposalTTL time.Duration
	// MaxAttempts is the failed attempts after which a ticket gets a
	// fallback diagnosis; DefaultMaxAttempts when 0.
	MaxAttempts int
	// TicketBudget, when > 0, caps the model tokens (input+output) spent on
	// one ticket over all its attempts (config [diagnosis] token-budget).
	// 0 means only the backend's own per-call budget applies.
	TicketBudget int64
	// Backoff is the wait before retry number attempt (1-based);
	// DefaultBackoff when nil.
	Backoff func(attempt int) time.Duration
	// Logger: slog.Default() when nil.
	Logger *slog.Logger
	// Allow is the per-invariant-family allow-list every proposal is
	// checked against (ValidateFor); nil checks no family. The daemon sets
	// rules.Allowed.
	Allow AllowList
	// Fallback, when not nil, diagnoses a ticket the Backend could not
	// (any error but a gather failure or an ended ctx: unavailable, budget,
	// invalid output) and a ticket whose TicketBudget is spent, instead of
	// leaving it undiagnosed; the diagnosis says so in FallbackFrom. The
	// daemon sets the rules backend when Backend is a model.
	Fallback Backend
	// Rejected, when not nil, lists the ticket's proposals people rejected.
	// A diagnosis never proposes again an action a person rejected on the
	// same ticket (same type and params, action.ActionDigest): the
	// proposal is dropped and the diagnosis says who rejected it and why.
	Rejected func(ctx context.Context, ticketID int64) ([]action.Proposal, error)
	// Silenced, when not nil, returns the note of the silence or
	// maintenance window that mutes proposals for t at now ("silenced by
	// #N until T (reason, by NAME)"), or "" (daemon: store.SilenceMatcher).
	// A muted ticket's diagnosis is stored without its proposal and says
	// "no action proposed: NOTE". Silences that cannot be read drop the
	// proposal too (fail closed) and the diagnosis names the missing input.
	Silenced func(ctx context.Context, t ticket.Ticket, now time.Time) (string, error)
}

// DefaultBackoff waits 1 minute after the first failure, doubling up to 1
// hour.
func DefaultBackoff(attempt int) time.Duration {
	d := time.Minute
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// Stats counts what one pass did.
type Stats struct {
	Diagnosed int // stored with or without a proposal
	Proposals int // proposals created
	Rejected  int // proposals Validate refused
	Failed    int // attempts recorded as failed (ticket stays open)
	GaveUp    int // tickets given the fallback diagnosis after MaxAttempts
	// OverBudget counts tickets whose TicketBudget was spent: given the
	// no-action diagnosis, or the Fallback's (also counted in Diagnosed).
	OverBudget int
	// Fallbacks counts tickets the Fallback diagnosed because the Backend
	// failed.
	Fallbacks int
}

// RunOnce runs one pass at time now (tickets due at now). It returns an
// error only when the source cannot be read; per-ticket failures are
// recorded on the ticket and counted in Stats.
func (r *Runner) RunOnce(ctx context.Context, now time.Time) (Stats, error) {
	var st Stats
	batch := r.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	tickets, err := r.Source.TicketsToDiagnose(ctx, now, batch)
	if err != nil {
		return st, fmt.Errorf("diagnose: list tickets: %w", err)
	}
	for _, t := range tickets {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		r.one(ctx, t, now, &st)
	}
	return st, nil
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Runner) one(ctx context.Context, t ticket.Ticket, now time.Time, st *Stats) {
	log := r.logger().With("component", "diagnose", "ticket", t.ID, "key", t.Key, "backend", r.Backend.Name())
	spent := t.InputTokens + t.OutputTokens
	if r.TicketBudget > 0 && spent >= r.TicketBudget {
		if r.Fallback == nil {
			log.Warn("token budget for this ticket spent; a human must look", "spent_tokens", spent, "budget", r.TicketBudget)
			r.save(ctx, log, t, now, BudgetSpent(t, r.Backend.Name(), spent, r.TicketBudget), st)
			st.OverBudget++
			return
		}
		why := fmt.Sprintf("the token budget for this ticket is spent (%d of %d tokens)", spent, r.TicketBudget)
		log.Warn("token budget for this ticket spent; the fallback backend diagnoses it", "fallback", r.Fallback.Name(), "spent_tokens", spent)
		d, err := r.diagnoseWith(ctx, t, func(ctx context.Context, c *Context) (*Diagnosis, error) {
			return r.fallback(ctx, c, why, Usage{})
		})
		if err != nil {
			r.failed(ctx, log, t, now, err, st)
			return
		}
		st.OverBudget++
		r.save(ctx, log, t, now, d, st)
		return
	}
	d, err := r.diagnose(ctx, t)
	if err != nil {
		r.failed(ctx, log, t, now, err, st)
		return
	}
	if d.FallbackFrom != "" {
		st.Fallbacks++
		log.Warn("diagnosed by the fallback backend", "fallback", d.Backend, "why", d.FallbackFrom)
	}
	if d.ProposedAction == nil && d.RejectedAction != nil {
		st.Rejected++
		log.Warn("proposed action rejected", "reason", d.NoActionReason)
	}
	r.save(ctx, log, t, now, d, st)
}

// diagnose gathers, asks the backend (the fallback when the backend
// fails) and validates.
func (r *Runner) diagnose(ctx context.Context, t ticket.Ticket) (*Diagnosis, error) {
	return r.diagnoseWith(ctx, t, func(ctx context.Context, c *Context) (*Diagnosis, error) {
		d, err := r.Backend.Diagnose(ctx, c)
		if err == nil || r.Fallback == nil || ctx.Err() != nil || r.Fallback.Name() == r.Backend.Name() {
			return d, err
		}
		why := fmt.Sprintf("%s could not diagnose it: %v", r.Backend.Name(), err)
		return r.fallback(ctx, c, why, Spent(err))
	})
}

// fallback runs the Fallback backend on c and labels its diagnosis.
func (r *Runner) fallback(ctx context.Context, c *Context, why string, spent Usage) (*Diagnosis, error) {
	d, err := r.Fallback.Diagnose(ctx, c)
	if err != nil {
		return nil, WithSpent(fmt.Errorf("%s; fallback %s failed too: %w", why, r.Fallback.Name(), err), spent)
	}
	d.Backend = r.Fallback.Name()
	d.FallbackFrom = why
	d.Usage = spent
	return d, nil
}

// diagnoseWith gathers t's context, runs diag on it, then sanitizes and
// validates the result against the catalog and t's family allow-list.
func (r *Runner) diagnoseWith(ctx context.Context, t ticket.Ticket, diag func(context.Context, *Context) (*Diagnosis, error)) (*Diagnosis, error) {
	c, err := r.Gather.Gather(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("gather context: %w", err)
	}
	c.SourceErrors = CleanSourceErrors(c.SourceErrors)
	if c.Actions == nil && r.Catalog != nil {
		c.Actions = r.Catalog.Specs()
	}
	if r.TicketBudget > 0 {
		left := r.TicketBudget - (t.InputTokens + t.OutputTokens)
		if c.Budget <= 0 || left < c.Budget {
			c.Budget = left
		}
	}
	d, err := diag(ctx, c)
	if err != nil {
		return nil, err
	}
	if d.Backend == "" {
		d.Backend = r.Backend.Name()
	}
	Sanitize(d)
	if err := ValidateFor(ctx, d, r.Catalog, t.Invariant, r.Allow); err != nil {
		return nil, WithSpent(err, d.Usage)
	}
	return d, nil
}

func (r *Runner) save(ctx context.Context, log *slog.Logger, t ticket.Ticket, now time.Time, d *Diagnosis, st *Stats) {
	ttl := r.ProposalTTL
	if ttl <= 0 {
		ttl = DefaultProposalTTL
	}
	Sanitize(d)
	js, err := json.Marshal(d)
	if err != nil {
		r.failed(ctx, log, t, now, WithSpent(fmt.Errorf("encode diagnosis: %w", err), d.Usage), st)
		return
	}
	if d.ProposedAction != nil && r.Rejected != nil {
		if p := r.rejectedBefore(ctx, log, t.ID, d.ProposedAction); p != nil {
			d.RejectedAction, d.ProposedAction, d.DryRun = d.ProposedAction, nil, nil
			d.NoActionReason = fmt.Sprintf("no action: %s %s was proposed before on this ticket and rejected by %s: %s; a human decides what to do instead",
				p.ActionType, string(p.Params), p.RejectedBy, p.RejectionReason)
			Sanitize(d)
			if js, err = json.Marshal(d); err != nil {
				r.failed(ctx, log, t, now, WithSpent(fmt.Errorf("encode diagnosis: %w", err), d.Usage), st)
				return
			}
		}
	}
	if d.ProposedAction != nil && r.Silenced != nil {
		note, err := r.Silenced(ctx, t, now)
		if err != nil {
			log.Warn("silences unreadable; no proposal", "err", err)
			note = fmt.Sprintf("the silences could not be read (%v), so none can be ruled out; rediagnose the ticket", err)
		}
		if note != "" {
			pa := d.ProposedAction
			d.ProposedAction, d.DryRun = nil, nil
			d.NoActionReason = fmt.Sprintf("no action proposed: %s; without it the diagnosis would propose %s %s", note, pa.ActionType, string(pa.Params))
			Sanitize(d)
			if js, err = json.Marshal(d); err != nil {
				r.failed(ctx, log, t, now, WithSpent(fmt.Errorf("encode diagnosis: %w", err), d.Usage), st)
				return
			}
			log.Info("proposal muted by a silence", "note", note)
		}
	}
	res := Result{Diagnosis: d, Markdown: d.Markdown(), JSON: js, Proposal: d.Proposal(t.ID, now, ttl)}
	id, err := r.Sink.SaveDiagnosis(ctx, t.ID, res, now)
	var te *ticket.ErrTransition
	switch {
	case errors.As(err, &te):
		log.Info("ticket changed while diagnosing; diagnosis dropped", "status", te.From)
		return
	case err != nil:
		log.Error("store diagnosis", "err", err)
		return
	}
	st.Diagnosed++
	if id != 0 {
		st.Proposals++
	}
	log.Info("ticket diagnosed", "proposal", id, "confidence", d.Confidence,
		"input_tokens", d.Usage.InputTokens, "output_tokens", d.Usage.OutputTokens)
}

func (r *Runner) failed(ctx context.Context, log *slog.Logger, t ticket.Ticket, now time.Time, err error, st *Stats) {
	attempt := t.DiagnosisAttempts + 1
	maxAttempts := r.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	if attempt >= maxAttempts {
		log.Warn("diagnosis failed too often; a human must look", "attempts", attempt, "err", err)
		d := GaveUp(t, r.Backend.Name(), attempt, err)
		r.save(ctx, log, t, now, d, st)
		st.GaveUp++
		return
	}
	backoff := r.Backoff
	if backoff == nil {
		backoff = DefaultBackoff
	}
	next := now.Add(backoff(attempt))
	log.Warn("diagnosis failed; will retry", "attempt", attempt, "next", next, "err", err)
	if err := r.Sink.DiagnosisFailed(ctx, t.ID, err.Error(), next, Spent(err)); err != nil {
		log.Error("record diagnosis failure", "err", err)
		return
	}
	st.Failed++
}

// GaveUp is the diagnosis stored when a ticket could not be diagnosed after
// attempts tries: no proposal, low confidence, the last error as the
// reason.
func GaveUp(t ticket.Ticket, backend string, attempts int, last error) *Diagnosis {
	summary := t.Summary
	if summary == "" {
		summary = t.Key
	}
	return &Diagnosis{
		Summary:    summary,
		RootCause:  "Not diagnosed: the diagnosis backend failed on every attempt.",
		Evidence:   []string{fmt.Sprintf("%d failed attempts; last error: %v", attempts, last)},
		Confidence: ConfidenceLow,
		Risks:      []string{},
		NoActionReason: fmt.Sprintf("no action: a human must look (diagnosis failed %d times: %v)",
			attempts, last),
		Backend: backend,
		Usage:   Spent(last),
	}
}

// BudgetSpent is the diagnosis stored instead of calling the backend when
// a ticket has consumed spent tokens of its per-ticket budget (both
// input+output tokens): no proposal, low confidence, zero usage (no model
// was called).
func BudgetSpent(t ticket.Ticket, backend string, spent, budget int64) *Diagnosis {
	summary := t.Summary
	if summary == "" {
		summary = t.Key
	}
	return &Diagnosis{
		Summary:   summary,
		RootCause: "Not diagnosed: the token budget for this ticket is spent.",
		Evidence: []string{fmt.Sprintf("%d tokens spent on this ticket (%d input, %d output), budget %d",
			spent, t.InputTokens, t.OutputTokens, budget)},
		Confidence:     ConfidenceLow,
		Risks:          []string{},
		NoActionReason: fmt.Sprintf("no action: a human must look — token budget for this ticket spent (%d tokens)", spent),
		Backend:        backend,
	}
}

// Run calls RunOnce every interval until ctx ends, logging pass errors.
// It returns ctx's error, or an error at once for a non-positive interval.
func (r *Runner) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("diagnose: runner interval %v must be positive", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.RunOnce(ctx, time.Now()); err != nil && ctx.Err() == nil {
			r.logger().Error("diagnosis pass failed", "component", "diagnose", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// rejectedBefore returns the ticket's rejected proposal with the same type
// and params as pa, or nil. A failed read keeps the proposal (the person
// rejects it again; nothing executes without approval).
func (r *Runner) rejectedBefore(ctx context.Context, log *slog.Logger, ticketID int64, pa *ProposedAction) *action.Proposal {
	rejected, err := r.Rejected(ctx, ticketID)
	if err != nil {
		log.Warn("read rejected proposals", "err", err)
		return nil
	}
	want := action.ActionDigest(pa.ActionType, pa.Params)
	for i := range rejected {
		if action.ActionDigest(rejected[i].ActionType, rejected[i].Params) == want {
			return &rejected[i]
		}
	}
	return nil
}
