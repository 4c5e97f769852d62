// Package executor runs approved action proposals through a subject's
// action catalog, at most once each, and records every dry run and
// execution in the store's hash-chained audit trail.
//
// The lifecycle (the transition table is action.CanTransition; every move
// is a compare-and-swap in the store):
//
//	proposed|dry_run --DryRun--> dry_run        (audit record, dry_run=true)
//	proposed|dry_run --Approve--> approved      (policy: distinct approver, hourly cap)
//	proposed|dry_run --Reject--> rejected
//	proposed|dry_run --(ExpiresAt passed)--> expired
//	approved --claim (durable before any PD request)--> executing
//	executing --Finish--> completed | failed    (audit record, same transaction)
//
// Crash semantics: a proposal found executing when Run starts (its executor
// died between the claim and the record) is never run again. Recover looks
// at PD, finishes it as failed with a result starting with Interrupted and
// an audit record of what PD shows, and leaves it to a human. See
// docs/executor.md.
package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// Defaults for zero Options fields.
const (
	// DefaultPollInterval is how often Run looks for approved proposals.
	// It bounds the delay from an approval made by another process (the
	// CLI) to the claim; approvals through Executor.Approve wake Run at
	// once.
	DefaultPollInterval = 200 * time.Millisecond
	// DefaultTimeout bounds one execution's effect: Execute gets a context
	// with this deadline (the action's own verification deadline applies
	// when earlier).
	DefaultTimeout = 60 * time.Second
	// DefaultConcurrency is how many proposals Run executes at once (never
	// two touching the same region or store).
	DefaultConcurrency = 4
	// DefaultStepTimeout bounds each PD read the executor makes itself
	// (precondition re-check, state capture) and each store write.
	DefaultStepTimeout = 15 * time.Second
	// ExpireInterval is how often Run moves proposals past their
	// ExpiresAt to expired (approval checks expiry itself anyway).
	ExpireInterval = 5 * time.Second
)

// Interrupted starts the Result of every proposal Recover finishes: the
// executor that claimed it stopped before recording an outcome, so whether
// PD applied the request is unknown.
const Interrupted = "interrupted; outcome unknown"

// ErrPolicy is wrapped by the errors Approve returns when the approval
// gate's policy refuses: the approver proposed the action themselves
// (Options.RequireDistinctApprover), the hourly execution cap is reached,
// or the catalog cannot execute the proposal (unknown action type, invalid
// params; those errors also wrap action.ErrUnknownAction or
// action.ErrInvalidParams).
var ErrPolicy = errors.New("refused by approval policy")

// ErrForbidden is wrapped by the errors of ApproveAs, RejectAs and
// DryRunAs when the person's role does not allow the decision (a viewer,
// or a non-admin acting on behalf of someone).
var ErrForbidden = errors.New("not allowed for this role")

// CaptureFunc reads the cluster state an action with params may change and
// returns it as JSON, for the audit record (tikv.CaptureState).
type CaptureFunc func(ctx context.Context, params json.RawMessage) (json.RawMessage, error)

// ReevaluateFunc re-runs the invariant behind t against live state and
// reports whether it holds now.
type ReevaluateFunc func(ctx context.Context, t ticket.Ticket) (held bool, err error)

// Options configure New. Store and Catalog are required.
type Options struct {
	// Store is the operator database.
	Store *store.Store
	// Catalog holds the actions proposals name (tikv.NewCatalog).
	Catalog *action.Catalog
	// Capture records cluster state before and after an execution and at
	// recovery; nil records no state.
	Capture CaptureFunc
	// Reevaluate, when not nil, is called after an execution finished: if
	// the invariant holds the ticket is resolved, otherwise a diagnosed
	// ticket is reopened for a fresh diagnosis.
	Reevaluate ReevaluateFunc
	// SettleCheck is how often a ticket is re-evaluated while PD's
	// schedulers work on it after an action with a Spec.Settle
	// (DefaultSettleCheck when 0).
	SettleCheck time.Duration
	// Holds, when not nil, is asked right before an approved action is
	// sent whether the ticket's invariant holds again on fresh PD state
	// (one read, no settle window): then the approval no longer applies and
	// the action ends expired with nothing sent. An error refuses the
	// execution (fail closed).
	Holds ReevaluateFunc
	// Name identifies this executor in ExecutedBy; default "host:pid".
	Name string
	// PollInterval between looks for approved proposals; default
	// DefaultPollInterval.
	PollInterval time.Duration
	// Timeout bounds one execution's effect; default DefaultTimeout.
	Timeout time.Duration
	// Concurrency caps simultaneous executions; default DefaultConcurrency.
	Concurrency int
	// MaxPerHour caps executions started in any trailing hour, counted
	// from the claims in the store (all executors); 0 means no cap.
	// Approve refuses once approved-but-waiting plus started executions
	// reach it; Run leaves approved proposals waiting until the window
	// frees a slot.
	MaxPerHour int
	// Policy is the approval policy (approval TTL, approvers per risk),
	// applied when a person approves and again at claim time.
	Policy Policy
	// Verifier checks the audit-key signature of approval records at claim
	// time; nil skips the signature check (tests). The daemon always sets
	// it: an approval it did not sign never executes.
	Verifier *auditkey.PublicKey
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Logger; default discards.
	Logger *slog.Logger
	// Registerer, when not nil, receives the executor's metrics
	// (operator_executor_*).
	Registerer prometheus.Registerer
	// Crash is fault injection for tests: it kills the process at one step
	// of an execution (see CrashPoint). nil (production) injects nothing.
	Crash *Crasher
	// Fence, when not nil (several replicas, internal/ha), is asked right
	// before every claim and right before an execution sends to PD whether
	// this process may still act as the leader of the term Run's context
	// carries (store.WithTerm); an error claims nothing, or ends the
	// execution refused with nothing sent. With a term in Run's context,
	// Recover goes by the claim's term instead of host:pid, and every store
	// write of the executor is fenced by the term (store.ErrStaleTerm).
	Fence func(ctx context.Context) error
}

// Executor claims approved proposals and executes them. Create it with
// New; its methods are safe for concurrent use.
type Executor struct {
	// bg tracks the delayed re-checks after a settle time (recheckAfter).
	bg          sync.WaitGroup
	settleCheck time.Duration
	st          *store.Store
	cat         *action.Catalog
	capture     CaptureFunc
	reevaluate  ReevaluateFunc
	holds       ReevaluateFunc
	name        string
	poll        time.Duration
	timeout     time.Duration
	conc        int
	maxPerHour  int
	policy      Policy
	verifier    *auditkey.PublicKey
	now         func() time.Time
	log         *slog.Logger
	m           *metrics
	crash       *Crasher
	fence       func(ctx context.Context) error

	wake chan struct{}
	// running is Run's context (nil before Run): executions detach from it
	// but stop following a slow PD operator when it ends.
	running atomic.Pointer[context.Context]
}

// runCtx returns Run's context, or a context that never ends outside Run.
func (e *Executor) runCtx() context.Context {
	if p := e.running.Load(); p != nil {
		return *p
	}
	return context.Background()
}

// New returns an executor. It does no I/O. A nil Store or Catalog is a
// programming error reported by Run, Approve and DryRun.
func New(opts Options) *Executor {
	e := &Executor{
		st: opts.Store, cat: opts.Catalog, capture: opts.Capture, reevaluate: opts.Reevaluate, holds: opts.Holds,
		name: opts.Name, poll: opts.PollInterval, timeout: opts.Timeout, conc: opts.Concurrency,
		maxPerHour: opts.MaxPerHour, policy: opts.Policy, verifier: opts.Verifier, now: opts.Clock,
		log: opts.Logger, crash: opts.Crash, fence: opts.Fence, wake: make(chan struct{}, 1),
		settleCheck: opts.SettleCheck,
	}
	if e.settleCheck <= 0 {
		e.settleCheck = DefaultSettleCheck
	}
	if e.name == "" {
		e.name = DefaultName()
	}
	if e.poll <= 0 {
		e.poll = DefaultPollInterval
	}
	if e.timeout <= 0 {
		e.timeout = DefaultTimeout
	}
	if e.conc <= 0 {
		e.conc = DefaultConcurrency
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "executor", "executor", e.name)
	e.m = newMetrics(opts.Registerer)
	return e
}

// DefaultName is "host:pid" of this process.
func DefaultName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}

// Name returns the identity recorded as ExecutedBy.
func (e *Executor) Name() string { return e.name }

func (e *Executor) ready() error {
	if e.st == nil || e.cat == nil {
		return errors.New("executor: Options.Store and Options.Catalog are required")
	}
	return nil
}

// Run waits for the store's cluster binding (waitCluster), recovers
// interrupted executions of that cluster (Recover), then claims and executes
// approved proposals until ctx ends: every PollInterval (or at once after
// Executor.Approve) it claims the oldest approved proposal whose targets
// do not overlap an executing one, within the hourly cap and Concurrency.
// On ctx's end it claims nothing more, lets executions in flight finish
// with their own deadline, records them, and returns nil; no proposal is
// left executing by a clean shutdown. Store and PD errors inside the loop
// are logged and retried; Run returns an error only when Recover fails or
// the executor is misconfigured.
func (e *Executor) Run(ctx context.Context) error {
	if err := e.ready(); err != nil {
		return err
	}
	if !e.waitCluster(ctx) {
		return nil
	}
	if _, err := e.Recover(ctx); err != nil {
		return err
	}
	if err := e.requeueFollowUps(ctx); err != nil {
		return err
	}
	e.running.Store(&ctx)
	e.log.Info("executor running", "poll_interval", e.poll, "timeout", e.timeout,
		"concurrency", e.conc, "max_per_hour", e.maxPerHour)

	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, e.conc)
		done = make(chan struct{}, e.conc)
	)
	defer func() {
		wg.Wait()
		e.bg.Wait() // delayed re-checks (recheckAfter) end with ctx
		e.log.Info("executor stopped")
	}()
	ticker := time.NewTicker(e.poll)
	defer ticker.Stop()
	var reverting atomic.Bool // one goroutine carries out due reverts
	var lastExpire time.Time
	capLogged := false
	for {
		if ctx.Err() != nil {
			return nil
		}
		now := e.now()
		if now.Sub(lastExpire) >= ExpireInterval {
			lastExpire = now
			if n, err := e.st.ExpireProposals(ctx, now); err != nil {
				if ctx.Err() == nil {
					e.log.Warn("expire proposals", "err", err)
				}
			} else if n > 0 {
				e.log.Info("proposals expired", "count", n)
			}
		}
		if reverting.CompareAndSwap(false, true) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer reverting.Store(false)
				e.followUps(ctx)
			}()
		}
		// Claim as many as the free slots allow.
		for len(sem) < cap(sem) && ctx.Err() == nil {
			p, err := e.claim(ctx)
			if errors.Is(err, store.ErrCapReached) {
				if !capLogged {
					e.log.Warn("approved actions wait for the hourly execution cap", "err", err)
					capLogged = true
				}
				break
			}
			capLogged = false
			if err != nil {
				if ctx.Err() == nil {
					e.log.Error("claim", "err", err)
				}
				break
			}
			if p == nil {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func(p action.Proposal) {
				defer wg.Done()
				defer func() {
					<-sem
					select { // wake the loop to fill the slot; never block
					case done <- struct{}{}:
					default:
					}
				}()
				// The execution outlives ctx: once claimed it is carried
				// through and recorded, within its own deadlines.
				e.execute(context.WithoutCancel(ctx), p)
			}(*p)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-e.wake:
		case <-done:
		}
	}
}

// waitCluster waits until the store is bound to PD's cluster
// (store.BindCluster; the daemon's monitor binds it in its first cycle):
// recovery, claims and reverts are scoped to that cluster, so that the
// daemon of another cluster sharing the database never touches them. It
// returns false when ctx ends first.
func (e *Executor) waitCluster(ctx context.Context) bool {
	if e.st.ClusterID() != "" {
		return true
	}
	e.log.Info("executor waits for the cluster identity (the monitor's first cycle)")
	t := time.NewTicker(min(e.poll, 200*time.Millisecond))
	defer t.Stop()
	for e.st.ClusterID() == "" {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// claim takes the next approved proposal that may run now, or nil. With a
// Fence (HA), it claims nothing unless this process still leads the term
// of ctx; the store refuses a stale term in the claim's transaction.
func (e *Executor) claim(ctx context.Context) (*action.Proposal, error) {
	if e.fence != nil {
		if err := e.fence(ctx); err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
	}
	now := e.now()
	o := store.ClaimOptions{Conflicts: e.conflicts, Eligible: e.eligible, Term: store.TermFrom(ctx)}
	if e.maxPerHour > 0 {
		o.Max, o.Since = e.maxPerHour, now.Add(-time.Hour)
	}
	p, ended, err := e.st.ClaimNextChecked(ctx, e.name, now, o)
	for _, x := range ended {
		label := resultRefused
		if x.Proposal.Status == action.Expired {
			label = "expired"
		}
		e.m.executions.WithLabelValues(x.Proposal.ActionType, label).Inc()
		e.log.Warn("approved action not executed", "action_id", x.Proposal.ID, "action", x.Proposal.ActionType,
			"status", x.Proposal.Status, "reason", x.Reason.Error(), "record_id", x.Record.ID)
	}
	return p, err
}

// poke wakes Run's loop (non-blocking).
func (e *Executor) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Recover finishes every proposal found executing whose executor is not a
// live process on this host (the executor that claimed it crashed or was
// killed between the claim and the record). It never re-runs one: it
// captures what PD shows now, asks the action's dry run what it would do
// now (which tells whether the effect seems in place), and finishes the
// proposal as failed with a result starting with Interrupted and an audit
// record (success=false, requests unknown, state_after = PD now). It
// returns the finished proposals. A proposal claimed by another live
// process on this host (another daemon) is left alone and logged.
//
// With a leader term in ctx (store.WithTerm; several replicas), it goes by
// terms, not host:pid: a proposal claimed under an older term than ctx's
// (or without one) was claimed by a previous leader and is finished as
// interrupted whatever its executed_by says; one claimed under this term
// is in flight here and left alone.
func (e *Executor) Recover(ctx context.Context) ([]action.Proposal, error) {
	if err := e.ready(); err != nil {
		return nil, err
	}
	stuck, err := e.st.Executing(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover interrupted actions: %w", err)
	}
	term := store.TermFrom(ctx)
	var terms map[int64]store.ProposalTerms
	if term > 0 && len(stuck) > 0 {
		ids := make([]int64, len(stuck))
		for i, p := range stuck {
			ids[i] = p.ID
		}
		if terms, err = e.st.Terms(ctx, ids...); err != nil {
			return nil, fmt.Errorf("recover interrupted actions: %w", err)
		}
	}
	var out []action.Proposal
	for _, p := range stuck {
		if term > 0 {
			if claimed := terms[p.ID].Claim; claimed >= term {
				e.log.Info("action executing under this leader's term; not recovering it",
					"action_id", p.ID, "executed_by", p.ExecutedBy, "term", claimed)
				continue
			}
		} else if p.ExecutedBy != e.name && processAlive(p.ExecutedBy) {
			e.log.Warn("action executing in another live process; not recovering it",
				"action_id", p.ID, "executed_by", p.ExecutedBy)
			continue
		}
		np, err := e.recoverOne(ctx, p)
		if err != nil {
			return out, fmt.Errorf("recover interrupted action %d: %w", p.ID, err)
		}
		out = append(out, np)
	}
	return out, nil
}

func (e *Executor) recoverOne(ctx context.Context, p action.Proposal) (action.Proposal, error) {
	log := e.log.With("action_id", p.ID, "action", p.ActionType)
	seen := []string{fmt.Sprintf("executor %s claimed it", p.ExecutedBy)}
	if p.ExecutedAt != nil {
		seen[0] += " at " + p.ExecutedAt.UTC().Format(time.RFC3339)
	}
	seen[0] += fmt.Sprintf(" and stopped before recording an outcome; found executing by %s at start and not re-run: check the cluster and decide", e.name)
	if term := store.TermFrom(ctx); term > 0 { // HA: a previous leader claimed it
		seen[0] += fmt.Sprintf(" (recovered by the leader of term %d)", term)
	}
	var state json.RawMessage
	if e.capture != nil {
		cctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
		s, err := e.capture(cctx, p.Params)
		cancel()
		if err != nil {
			seen = append(seen, fmt.Sprintf("PD state could not be read: %v", err))
		} else {
			state = s
			seen = append(seen, "PD state now recorded in state_after")
		}
	}
	if a, err := e.cat.Lookup(p.ActionType); err == nil {
		dctx, cancel := context.WithTimeout(ctx, DefaultStepTimeout)
		res, err := a.DryRun(dctx, p.Params)
		cancel()
		switch {
		case err != nil:
			seen = append(seen, fmt.Sprintf("dry run now failed: %v", err))
		case res.Valid:
			seen = append(seen, "a dry run now still finds it applicable (the effect does not seem to be in place): "+res.Message)
		default:
			seen = append(seen, "a dry run now refuses it (the effect may be in place): "+failedChecks(res))
		}
	}
	result := Interrupted + ": " + strings.Join(seen, "; ")
	now := e.now()
	rec := action.Record{ExecutedBy: p.ExecutedBy, StateAfter: state, Message: result}
	if _, err := e.st.Finish(ctx, p.ID, action.Failed, result, rec, now); err != nil {
		return action.Proposal{}, err
	}
	e.m.executions.WithLabelValues(p.ActionType, resultInterrupted).Inc()
	log.Warn("interrupted action marked failed", "result", result)
	np, err := e.st.Proposal(ctx, p.ID)
	if err != nil {
		return action.Proposal{}, err
	}
	return np, nil
}

// processAlive reports whether name ("host:pid") names a live process on
// this host other than this one. Names of another form, or of another
// host, are not live as far as this host can tell.
func processAlive(name string) bool {
	i := strings.LastIndexByte(name, ':')
	if i < 0 {
		return false
	}
	host, _ := os.Hostname()
	if name[:i] != host {
		return false
	}
	pid, err := strconv.Atoi(name[i+1:])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
