package tikv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
)

// Action type names of the TiKV catalog.
const (
	ActionTransferLeader          = "transfer_leader"
	ActionSplitRegion             = "split_region"
	ActionAddPeer                 = "add_peer"
	ActionRemovePeer              = "remove_peer"
	ActionTransferPeer            = "transfer_peer"
	ActionSetLeaderScheduleLimit  = "set_leader_schedule_limit"
	ActionSetRegionScheduleLimit  = "set_region_schedule_limit"
	ActionSetReplicaScheduleLimit = "set_replica_schedule_limit"
	ActionSetLowSpaceThreshold    = "set_low_space_threshold"
	ActionDrainStore              = "drain_store"
	ActionCancelDrain             = "cancel_drain"
	ActionEvictLeader             = "evict_leader"
	ActionRemoveEvictLeader       = "remove_evict_leader"
	ActionResumeScheduler         = "resume_scheduler"
	ActionPauseScheduler          = "pause_scheduler"
	ActionAddScheduler            = "add_scheduler"
	ActionRemoveScheduler         = "remove_scheduler"
	ActionSetStoreLimit           = "set_store_limit"
	ActionRemoveTombstones        = "remove_tombstones"
	ActionMergeRegion             = "merge_region"
	ActionSetHotRegionConfig      = "set_hot_region_scheduler_config"
)

// Default verification bounds of the catalog's actions.
const (
	// DefaultVerifyTimeout bounds how long Execute waits for the effect
	// (PD's own admin operators time out after 10 minutes; a leader
	// transfer on a healthy cluster takes well under a second).
	DefaultVerifyTimeout = 2 * time.Minute
	// DefaultPollInterval is the pause between two verification reads.
	DefaultPollInterval = 250 * time.Millisecond
)

type catalogConfig struct {
	verifyTimeout     time.Duration
	pollInterval      time.Duration
	heartbeatInterval time.Duration
	log               *slog.Logger
}

// Option configures NewCatalog.
type Option func(*catalogConfig)

// WithVerifyTimeout bounds how long Execute waits for an action's effect
// (default DefaultVerifyTimeout; a deadline on Execute's context that comes
// earlier wins).
func WithVerifyTimeout(d time.Duration) Option {
	return func(c *catalogConfig) { c.verifyTimeout = d }
}

// WithPollInterval sets the pause between verification reads (default
// DefaultPollInterval).
func WithPollInterval(d time.Duration) Option {
	return func(c *catalogConfig) { c.pollInterval = d }
}

// WithStoreHeartbeatInterval sets the TiKV store heartbeat interval the
// target-store freshness check assumes (raftstore.pd-store-heartbeat-tick-interval;
// default StoreHeartbeatInterval, 10 s). A target store's last heartbeat
// must be younger than MaxHeartbeatIntervals of it.
func WithStoreHeartbeatInterval(d time.Duration) Option {
	return func(c *catalogConfig) { c.heartbeatInterval = d }
}

// WithLogger sets the actions' logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *catalogConfig) { c.log = l } }

// NewCatalog returns every TiKV remediation action, each acting through
// PD's HTTP API with c.
func NewCatalog(c *pd.Client, opts ...Option) *action.Catalog {
	cfg := &catalogConfig{verifyTimeout: DefaultVerifyTimeout, pollInterval: DefaultPollInterval}
	for _, o := range opts {
		o(cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if cfg.pollInterval <= 0 {
		cfg.pollInterval = DefaultPollInterval
	}
	if cfg.verifyTimeout <= 0 {
		cfg.verifyTimeout = DefaultVerifyTimeout
	}
	if cfg.heartbeatInterval <= 0 {
		cfg.heartbeatInterval = StoreHeartbeatInterval
	}
	defs := []*pdAction{
		transferLeader(), splitRegion(), addPeer(), removePeer(), transferPeer(),
		scheduleLimit(ActionSetLeaderScheduleLimit, "leader-schedule-limit", "concurrent leader-transfer operators PD schedules (default 4)"),
		scheduleLimit(ActionSetRegionScheduleLimit, "region-schedule-limit", "concurrent region (peer-moving) operators PD schedules (default 2048)"),
		scheduleLimit(ActionSetReplicaScheduleLimit, "replica-schedule-limit", "concurrent replica-repair operators PD schedules (default 64)"),
		lowSpaceThreshold(), drainStore(), cancelDrain(), evictLeader(), removeEvictLeader(),
		resumeScheduler(), pauseScheduler(), addScheduler(), removeScheduler(),
		setStoreLimit(), setAllStoresLimit(), removeTombstones(), mergeRegion(), setHotRegionConfig(),
	}
	actions := make([]action.Action, 0, len(defs))
	for _, d := range defs {
		d.c, d.cfg = c, cfg
		actions = append(actions, d)
	}
	return action.NewCatalog(actions...)
}

// pdAction is one catalog entry: a spec and a planner that checks
// preconditions on live PD state and prepares the exact requests and the
// verification of their effect.
type pdAction struct {
	spec action.Spec
	// plan decodes params into the action's typed struct and evaluates the
	// preconditions. It returns an error only when PD could not be read.
	plan func(ctx context.Context, c *pd.Client, raw json.RawMessage) (*plan, error)
	c    *pd.Client
	cfg  *catalogConfig
}

// plan is what an action would do now: checks, warnings, the requests with
// the functions sending them, and how to verify the effect.
type plan struct {
	checks   []action.Check
	warnings []string
	steps    []step
	previous map[string]any
	// verify is polled after the requests were sent until it reports done
	// or failed, or the deadline passes.
	verify func(ctx context.Context) (verdict, error)
	// summary says what execution does, for a valid dry run.
	summary string
}

type step struct {
	req  action.Request
	send func(ctx context.Context) error
}

// verdict is one verification read.
type verdict struct {
	done     bool   // the effect is visible
	failed   bool   // the effect can no longer happen (operator timed out, ...)
	running  bool   // PD's operator for it is still running (created or started)
	msg      string // what was seen
	observed map[string]any
}

// check records a precondition and reports whether it passed.
func (p *plan) check(name string, ok bool, format string, args ...any) bool {
	p.checks = append(p.checks, action.Check{Name: name, Passed: ok, Detail: fmt.Sprintf(format, args...)})
	return ok
}

func (p *plan) warn(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
}

func (p *plan) valid() bool {
	for _, c := range p.checks {
		if !c.Passed {
			return false
		}
	}
	return len(p.steps) > 0
}

func (p *plan) failures() string {
	var f []string
	for _, c := range p.checks {
		if !c.Passed {
			f = append(f, c.Detail)
		}
	}
	if len(f) == 0 && len(p.steps) == 0 {
		return "nothing to send"
	}
	return strings.Join(f, "; ")
}

func (p *plan) requests() []action.Request {
	out := make([]action.Request, 0, len(p.steps))
	for _, s := range p.steps {
		out = append(out, s.req)
	}
	return out
}

// invalidParams is the plan of unusable params: one failed check.
func invalidParams(err error) *plan {
	p := &plan{}
	p.check("params", false, "%v", err)
	return p
}

// Spec implements action.Action.
func (a *pdAction) Spec() action.Spec { return a.spec }

// DryRun implements action.Action: it validates params, checks every
// precondition against PD and returns the exact requests Execute would
// send. It changes nothing.
func (a *pdAction) DryRun(ctx context.Context, raw json.RawMessage) (action.DryRunResult, error) {
	ctx = withConfig(ctx, a.cfg)
	p, err := a.plan(ctx, a.c, raw)
	if err != nil {
		return action.DryRunResult{}, fmt.Errorf("%s: checking preconditions: %w", a.spec.Name, err)
	}
	res := action.DryRunResult{
		Valid:         p.valid(),
		Preconditions: p.checks,
		Warnings:      p.warnings,
		Requests:      p.requests(),
	}
	if res.Requests == nil {
		res.Requests = []action.Request{}
	}
	if res.Valid {
		res.Message = p.summary
	} else {
		res.Message = "refused: " + p.failures()
	}
	return res, nil
}

// Execute implements action.Action: it re-checks the preconditions, sends
// the requests and polls PD until the effect is visible, the effect became
// impossible, or the deadline passes. Failed preconditions, PD refusals and
// unverified effects are Success=false with nil error; the error is kept
// for a request whose fate is unknown (connection lost after sending).
func (a *pdAction) Execute(ctx context.Context, raw json.RawMessage) (action.Outcome, error) {
	log := a.cfg.log.With("action", a.spec.Name)
	ctx = withConfig(ctx, a.cfg)
	p, err := a.plan(ctx, a.c, raw)
	if err != nil {
		return action.Outcome{Message: fmt.Sprintf("preconditions could not be checked, nothing sent: %v", err), Requests: []action.Request{}}, nil
	}
	out := action.Outcome{Requests: []action.Request{}, Previous: p.previous}
	if !p.valid() {
		out.Message = "refused, nothing sent: " + p.failures()
		return out, nil
	}
	for _, s := range p.steps {
		log.Info("sending", "request", s.req.String())
		out.Requests = append(out.Requests, s.req)
		if err := s.send(ctx); err != nil {
			var apiErr *pd.APIError
			if errors.As(err, &apiErr) {
				out.Message = fmt.Sprintf("PD refused %s: %s", s.req.String(), apiErr.Message)
				return out, nil
			}
			if errors.Is(err, pd.ErrNotSent) && len(out.Requests) == 1 {
				out.Requests = out.Requests[:0]
				out.Message = fmt.Sprintf("PD unreachable, nothing sent: %v", err)
				return out, nil
			}
			out.Message = fmt.Sprintf("effect unknown: %s: %v", s.req.String(), err)
			return out, fmt.Errorf("%s: %w", a.spec.Name, err)
		}
	}
	if p.verify == nil {
		out.Success = true
		out.Message = "sent: " + p.summary
		return out, nil
	}
	v, err := a.poll(ctx, p.verify)
	out.Observed = v.observed
	switch {
	case v.done:
		out.Success = true
		out.Message = "verified: " + v.msg
	case v.failed:
		out.Message = "failed: " + v.msg
	case v.running:
		// PD's operator has not finished: undecided, not failed (PD's admin
		// operators may run up to 10 minutes a step).
		out.Running = true
		out.Message = "still running at the execution deadline: " + v.msg
	default:
		msg := v.msg
		if err != nil {
			msg = fmt.Sprintf("%s (last read error: %v)", msg, err)
		}
		out.Message = "sent but not verified: " + msg
	}
	log.Info("outcome", "success", out.Success, "message", out.Message)
	return out, nil
}

// poll calls verify until it reports done or failed, or the verification
// deadline (the earlier of the context's and the catalog's) passes. It
// returns the last verdict and the last read error.
func (a *pdAction) poll(ctx context.Context, verify func(context.Context) (verdict, error)) (verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.verifyTimeout)
	defer cancel()
	start := time.Now()
	var last verdict
	var lastErr error
	t := time.NewTicker(a.cfg.pollInterval)
	defer t.Stop()
	for {
		v, err := verify(ctx)
		if err == nil {
			last, lastErr = v, nil
			if v.done || v.failed {
				return v, nil
			}
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if last.msg == "" {
				last.msg = "no verification read succeeded"
			}
			last.msg = fmt.Sprintf("effect not visible within %v: %s", time.Since(start).Round(time.Millisecond), last.msg)
			return last, lastErr
		case <-t.C:
		}
	}
}

func floatPtr(f float64) *float64 { return &f }

// idParam is a positive integer param naming a region or store.
func idParam(name, desc string) action.Param {
	return action.Param{Name: name, Type: action.ParamInteger, Required: true, Description: desc, Min: floatPtr(1)}
}

// jsonBody renders a request body exactly as the pd client will send it.
func jsonBody(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Bodies are maps of numbers and strings built here; this cannot
		// fail, but never panic on it.
		return json.RawMessage(`null`)
	}
	return b
}
