// Package monitor is the operator's monitor loop: every Interval it
// collects a tikv.Snapshot from PD, evaluates every invariant against it,
// holds new violations pending for their `for` duration, reports firing
// ones to the ticket store (Sink) and lets the store resolve the tickets of
// invariants that hold again.
//
// It is modelled on Prometheus' rules package (rules/group.go,
// rules/alerting.go): time is passed in (RunOnce), so pending -> firing is
// tested step by step; one failing or panicking invariant records its
// error and never stops the others; the loop is a ticker with missed
// iterations counted, stopped by its context.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// DefaultInterval is the time between cycles when Options.Interval is 0.
const DefaultInterval = 5 * time.Second

// Sink receives the monitor's observations: the ticket store
// (internal/store.Store satisfies it).
type Sink interface {
	// Observe records one firing violation seen at now, opening a ticket
	// or updating the open one with the same obs.Key(); opened reports
	// whether a ticket was created.
	Observe(ctx context.Context, obs ticket.Observation, now time.Time) (t ticket.Ticket, opened bool, err error)
	// Sweep clears, and after quiet resolves, the open tickets of the
	// invariants in evaluated whose key is not in violated.
	Sweep(ctx context.Context, evaluated []string, violated map[string]bool, now time.Time, quiet time.Duration) ([]ticket.Ticket, error)
}

// CollectFunc reads one snapshot of the cluster (tikv.Collect bound to a
// PD client). A returned error means PD could not be read at all; sources
// that failed individually belong in Snapshot.Errors.
type CollectFunc func(ctx context.Context) (*tikv.Snapshot, error)

// Options configures a Monitor.
type Options struct {
	// Interval between cycles. 0 = DefaultInterval (5s).
	Interval time.Duration
	// Invariants are evaluated every cycle, in order; names must be unique
	// and must not be invariant.NamePDUnreachable. Pending durations come
	// from invariant.For (the Pender interface).
	Invariants []invariant.Invariant
	// Collect reads the snapshot. Required.
	Collect CollectFunc
	// Sink is the ticket store. Required.
	Sink Sink
	// Quiet is how long an invariant must hold again before its ticket is
	// resolved (passed to Sink.Sweep). 0 resolves at the first cycle that
	// sees it holding.
	Quiet time.Duration
	// UnreachableFor is the pending duration of pd_unreachable, the
	// violation the monitor raises when Collect fails (use
	// invariant.Config.ForOf(invariant.NamePDUnreachable)). 0 fires at
	// once.
	UnreachableFor time.Duration
	// CollectTimeout bounds Collect. 0 = Interval.
	CollectTimeout time.Duration
	// Clock gives the evaluation time of Run's cycles. nil = time.Now.
	Clock func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer receives the monitor's Prometheus metrics; nil registers
	// nothing (the metrics still work, e.g. for testutil).
	Registerer prometheus.Registerer
	// State persists the monitor's memory (active alerts with their `for`
	// timers, invariant histories) and tells which tickets are open. nil
	// = the Sink when it implements StateStore (internal/store.Store does),
	// else memory only.
	State StateStore
}

// StateStore is where the monitor keeps its memory across restarts
// (internal/store.Store satisfies it).
type StateStore interface {
	LoadMonitorState(ctx context.Context) (store.MonitorState, error)
	SaveMonitorState(ctx context.Context, st store.MonitorState, now time.Time) error
	// OpenTicketKeys maps the key of every non-resolved ticket to its id.
	OpenTicketKeys(ctx context.Context) (map[string]int64, error)
}

// IncidentSink is implemented by Sinks that link tickets into incidents
// (internal/store.Store does); without it no ticket is linked or
// escalated.
type IncidentSink interface {
	LinkTicket(ctx context.Context, childID, rootID int64, now time.Time) error
	EscalateTicket(ctx context.Context, id int64, sev ticket.Severity, reason string, now time.Time) (bool, error)
	RequestRediagnosis(ctx context.Context, id int64, reason string, now time.Time) error
	Ticket(ctx context.Context, id int64) (ticket.Ticket, error)
}

// ErrInvalidOptions is returned by Run and RunOnce for unusable Options.
var ErrInvalidOptions = errors.New("monitor: invalid options")

// Health is an invariant's evaluation health, as in Prometheus rules.
type Health string

// Health values.
const (
	HealthUnknown Health = "unknown" // not evaluated yet
	HealthGood    Health = "ok"
	HealthBad     Health = "err"
	// HealthHeld: the invariant was not evaluated on purpose (an
	// *invariant.HeldError, e.g. right after a PD leader change); Err says
	// why and until when. Its alerts and tickets stay as they were.
	HealthHeld Health = "held"
)

// InvariantStatus is how an invariant's last evaluation went.
type InvariantStatus struct {
	Name   string        `json:"name"`
	For    time.Duration `json:"for"`
	Health Health        `json:"health"`
	// Err is the last evaluation error ("" when healthy).
	Err string `json:"error,omitempty"`
	// Violations is how many violations the last successful evaluation
	// returned (pending and firing).
	Violations    int           `json:"violations"`
	EvalDuration  time.Duration `json:"eval_duration"`
	LastEvaluated time.Time     `json:"last_evaluated"`
}

// Alert is an active violation: pending until it has lasted its
// invariant's For, firing afterwards.
type Alert struct {
	ticket.Observation
	// ActiveAt is when the violation was first seen in this run of the
	// monitor.
	ActiveAt time.Time `json:"active_at"`
	Firing   bool      `json:"firing"`
}

// CycleResult is what one cycle did.
type CycleResult struct {
	// Time is the evaluation time of the cycle.
	Time time.Time `json:"time"`
	// Duration is the cycle's wall time.
	Duration time.Duration `json:"duration"`
	// CollectErr is set when the snapshot could not be read; the cycle
	// then raised pd_unreachable and evaluated nothing else.
	CollectErr error `json:"-"`
	// Snapshot is what was collected (nil if CollectErr).
	Snapshot *tikv.Snapshot `json:"-"`
	// Invariants is the status of every invariant after this cycle.
	Invariants []InvariantStatus `json:"invariants"`
	// Evaluated lists the invariants evaluated successfully (what Sweep
	// received).
	Evaluated []string `json:"evaluated"`
	// Pending and Firing are the active alerts after this cycle, by key.
	Pending []Alert `json:"pending"`
	Firing  []Alert `json:"firing"`
	// Tickets are the tickets Observe returned for the firing alerts;
	// Opened the subset it created; Resolved what Sweep resolved.
	Tickets  []ticket.Ticket `json:"tickets"`
	Opened   []ticket.Ticket `json:"opened"`
	Resolved []ticket.Ticket `json:"resolved"`
}

// Monitor runs the cycle. Create it with New; it is safe for concurrent
// use (cycles are serialised).
type Monitor struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	optErr  error

	mu     sync.Mutex // held for a whole cycle
	active map[string]*alert
	status map[string]*InvariantStatus
	// ticketed holds the keys with an open ticket, with its id: read from
	// the State store at the start of every cycle when there is one
	// (so a ticket the executor resolved leaves it), else the keys this
	// Monitor saw opened and not resolved. A violation that comes back
	// on such a key fires at once: the ticket's problem is back within
	// its quiet period, and Observe must reset its cleared_at.
	ticketed map[string]int64
	// states are the invariants' persisted histories; loaded tells
	// whether the State store was read.
	states []invariant.Stateful
	loaded bool
	// saved is what persist last wrote.
	saved savedState
	// unreachableSince is when the current run of failed collections
	// began (zero while PD answers); reminded when it was last logged.
	unreachableSince, reminded time.Time
}

// UnreachableReminder is how often the monitor repeats "PD still
// unreachable" while collections keep failing: the change of state is
// logged at once (warn), then a reminder at this rate; the failures in
// between are logged at debug level.
const UnreachableReminder = 5 * time.Minute

// logUnreachable logs a failed collection: the change to unreachable at
// once, then a reminder every UnreachableReminder.
func (m *Monitor) logUnreachable(err error, now time.Time) {
	switch {
	case m.unreachableSince.IsZero():
		m.unreachableSince, m.reminded = now, now
		m.log.Warn("PD unreachable: collect failed; logging a reminder every "+UnreachableReminder.String()+" until it answers", "err", err)
	case now.Sub(m.reminded) >= UnreachableReminder:
		m.reminded = now
		m.log.Warn("PD still unreachable", "for", now.Sub(m.unreachableSince).Round(time.Second), "err", err)
	default:
		m.log.Debug("collect failed: PD unreachable", "err", err)
	}
}

// logReachable logs the change back to reachable after failures.
func (m *Monitor) logReachable(now time.Time) {
	if m.unreachableSince.IsZero() {
		return
	}
	m.log.Info("PD reachable again", "unreachable_for", now.Sub(m.unreachableSince).Round(time.Second))
	m.unreachableSince, m.reminded = time.Time{}, time.Time{}
}

type alert struct {
	invariant string
	activeAt  time.Time
	firing    bool
	obs       ticket.Observation
}

// New returns a Monitor; it performs no I/O. Invalid options (no Collect,
// no Sink, duplicate invariant names) are reported by Run and RunOnce.
func New(opts Options) *Monitor {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.CollectTimeout <= 0 {
		opts.CollectTimeout = opts.Interval
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		opts:     opts,
		log:      log.With("component", "monitor"),
		metrics:  newMetrics(opts.Registerer),
		active:   map[string]*alert{},
		status:   map[string]*InvariantStatus{},
		ticketed: map[string]int64{},
	}
	if opts.State == nil {
		if ss, ok := opts.Sink.(StateStore); ok {
			m.opts.State = ss
		}
	}
	m.states = invariant.StatesOf(opts.Invariants)
	m.optErr = m.validate()
	names := []string{invariant.NamePDUnreachable}
	fors := []time.Duration{opts.UnreachableFor}
	for _, inv := range opts.Invariants {
		if inv != nil {
			names = append(names, inv.Name())
			fors = append(fors, invariant.For(inv))
		}
	}
	for i, n := range names {
		m.status[n] = &InvariantStatus{Name: n, For: fors[i], Health: HealthUnknown}
		m.metrics.violations.WithLabelValues(n, "pending").Set(0)
		m.metrics.violations.WithLabelValues(n, "firing").Set(0)
		m.metrics.invariantErrors.WithLabelValues(n)
	}
	return m
}

func (m *Monitor) validate() error {
	var errs []error
	if m.opts.Collect == nil {
		errs = append(errs, errors.New("no Collect function"))
	}
	if m.opts.Sink == nil {
		errs = append(errs, errors.New("no Sink"))
	}
	seen := map[string]bool{invariant.NamePDUnreachable: true}
	for i, inv := range m.opts.Invariants {
		if inv == nil {
			errs = append(errs, fmt.Errorf("invariant %d is nil", i))
			continue
		}
		if seen[inv.Name()] {
			errs = append(errs, fmt.Errorf("duplicate or reserved invariant name %q", inv.Name()))
		}
		seen[inv.Name()] = true
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return nil
}

// Run runs a cycle at once and then every Interval until ctx is done, then
// returns nil. A cycle that overruns the interval makes the ticker drop
// ticks; they are counted in operator_monitor_missed_iterations_total.
// Cycle errors (ticket store failures) are logged and counted, never fatal.
// Run returns ErrInvalidOptions at once for unusable Options. It starts no
// goroutine.
func (m *Monitor) Run(ctx context.Context) error {
	if m.optErr != nil {
		return m.optErr
	}
	m.log.Info("monitor started", "interval", m.opts.Interval, "invariants", len(m.opts.Invariants))
	defer m.log.Info("monitor stopped")
	m.runCycle(ctx)
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case tick := <-t.C:
			if missed := int64(tick.Sub(last)/m.opts.Interval) - 1; missed > 0 {
				m.metrics.missed.Add(float64(missed))
				m.log.Warn("monitor cycle overran its interval", "missed_iterations", missed)
			}
			last = tick
			if ctx.Err() != nil {
				return nil
			}
			m.runCycle(ctx)
		}
	}
}

func (m *Monitor) runCycle(ctx context.Context) {
	res, err := m.RunOnce(ctx, m.opts.Clock())
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		m.log.Error("monitor cycle failed", "err", err)
		return
	}
	m.log.Debug("monitor cycle", "duration", res.Duration, "pending", len(res.Pending), "firing", len(res.Firing),
		"opened", len(res.Opened), "resolved", len(res.Resolved))
}

// RunOnce runs one cycle evaluated at now: collect, evaluate every
// invariant, apply pending durations, Observe the firing alerts and Sweep
// the invariants evaluated successfully. If Collect fails, pd_unreachable
// (subject "cluster") is the only violation and nothing is swept; it is
// resolved by the first cycle whose Collect succeeds (after Quiet).
//
// The error is ErrInvalidOptions, ctx's error if it ended during the
// cycle, or the joined Sink errors; the CycleResult is filled as far as
// the cycle got. Invariant errors are not errors of RunOnce: they are in
// CycleResult.Invariants.
func (m *Monitor) RunOnce(ctx context.Context, now time.Time) (res CycleResult, err error) {
	if m.optErr != nil {
		return CycleResult{Time: now}, m.optErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	start := time.Now()
	// res is a named result: the deferred Duration reaches the caller.
	res = CycleResult{Time: now}
	defer func() {
		res.Duration = time.Since(start)
		m.metrics.cycleDuration.Observe(res.Duration.Seconds())
		m.metrics.cycles.Inc()
	}()

	m.restore(ctx)
	m.refreshTicketed(ctx, now)

	cctx, cancel := context.WithTimeout(ctx, m.opts.CollectTimeout)
	snap, err := m.collect(cctx)
	cancel()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if err != nil {
		res.CollectErr = err
		m.metrics.collectErrors.Inc()
		m.logUnreachable(err, now)
		m.updateAlerts(invariant.NamePDUnreachable, []ticket.Observation{unreachableObservation(err, now)}, now, m.opts.UnreachableFor)
		m.setStatus(invariant.NamePDUnreachable, 1, 0, nil, now)
	} else {
		m.logReachable(now)
		res.Snapshot = snap
		m.updateAlerts(invariant.NamePDUnreachable, nil, now, m.opts.UnreachableFor)
		m.setStatus(invariant.NamePDUnreachable, 0, 0, nil, now)
		res.Evaluated = append(res.Evaluated, invariant.NamePDUnreachable)
		for _, inv := range m.opts.Invariants {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if m.evaluate(ctx, inv, snap, now) {
				res.Evaluated = append(res.Evaluated, inv.Name())
			}
		}
	}

	// Only invariants evaluated this cycle report to the Sink: the alerts of
	// one that failed (or of every invariant when PD is unreachable) are
	// kept, but not seen again, so their tickets' last_seen and
	// occurrences stay true.
	seenNow := slices.Clone(res.Evaluated)
	if res.CollectErr != nil {
		seenNow = append(seenNow, invariant.NamePDUnreachable)
	}
	violated := map[string]bool{}
	var sinkErrs []error
	// Escalation: an earlier stage whose ticket is open stays violated
	// while a later stage of its family violates on the same subject.
	roots := m.escalationRoots()
	for k := range roots {
		violated[k] = true
	}
	for _, key := range m.sortedKeys() {
		a := m.active[key]
		violated[key] = true
		al := Alert{Observation: a.obs, ActiveAt: a.activeAt, Firing: a.firing}
		if !a.firing {
			res.Pending = append(res.Pending, al)
			continue
		}
		res.Firing = append(res.Firing, al)
		if !slices.Contains(seenNow, a.invariant) {
			continue
		}
		t, opened, err := m.opts.Sink.Observe(ctx, a.obs, now)
		if err != nil {
			m.metrics.sinkErrors.Inc()
			sinkErrs = append(sinkErrs, fmt.Errorf("observe %s: %w", key, err))
			continue
		}
		res.Tickets = append(res.Tickets, t)
		if t.Status != ticket.Resolved {
			m.ticketed[key] = t.ID
		}
		if opened {
			res.Opened = append(res.Opened, t)
			m.log.Info("ticket opened", "ticket", t.ID, "key", t.Key, "severity", t.Severity, "summary", t.Summary)
		}
	}
	if err := m.incidents(ctx, res.Tickets, res.Opened, now); err != nil {
		m.metrics.sinkErrors.Inc()
		sinkErrs = append(sinkErrs, err)
	}
	if len(res.Evaluated) > 0 {
		resolved, err := m.opts.Sink.Sweep(ctx, res.Evaluated, violated, now, m.opts.Quiet)
		if err != nil {
			m.metrics.sinkErrors.Inc()
			sinkErrs = append(sinkErrs, fmt.Errorf("sweep: %w", err))
		}
		res.Resolved = resolved
		for _, t := range resolved {
			delete(m.ticketed, t.Key)
			m.log.Info("ticket resolved", "ticket", t.ID, "key", t.Key)
		}
	}
	if err := m.persist(ctx, now); err != nil {
		m.metrics.sinkErrors.Inc()
		sinkErrs = append(sinkErrs, err)
	}
	m.updateGauges()
	res.Invariants = m.statuses()
	if len(sinkErrs) == 0 {
		m.metrics.lastCycle.Set(float64(now.UnixNano()) / 1e9)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, errors.Join(sinkErrs...)
}

// collect calls Collect, turning a panic or a nil snapshot into an error.
func (m *Monitor) collect(ctx context.Context) (s *tikv.Snapshot, err error) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("collect panicked", "panic", r, "stack", string(debug.Stack()))
			s, err = nil, fmt.Errorf("collect panicked: %v", r)
		}
	}()
	s, err = m.opts.Collect(ctx)
	if err == nil && s == nil {
		err = errors.New("collect returned no snapshot")
	}
	return s, err
}

func unreachableObservation(err error, now time.Time) ticket.Observation {
	v := invariant.Violation{
		Subject:  invariant.SubjectCluster,
		Severity: ticket.Critical,
		Summary:  fmt.Sprintf("PD unreachable: %v", err),
		Evidence: map[string]any{"error": err.Error(), "time": now.UTC().Format(time.RFC3339Nano)},
	}
	obs, _ := v.Observation(invariant.NamePDUnreachable) // evidence is plain strings
	return obs
}

// evaluate runs one invariant, recovering a panic, and updates its alerts
// and status. It reports whether the evaluation succeeded.
func (m *Monitor) evaluate(ctx context.Context, inv invariant.Invariant, s *tikv.Snapshot, now time.Time) bool {
	name := inv.Name()
	start := time.Now()
	obs, err := m.evalOne(ctx, inv, s, now)
	d := time.Since(start)
	if errors.Is(err, invariant.ErrHeld) {
		if st := m.status[name]; st == nil || st.Health != HealthHeld {
			m.log.Info("invariant held", "invariant", name, "reason", err)
		}
		m.setStatus(name, -1, d, err, now)
		m.status[name].Health = HealthHeld
		return false // its alerts and tickets stay as they are
	}
	if err != nil {
		m.metrics.invariantErrors.WithLabelValues(name).Inc()
		m.log.Warn("invariant evaluation failed", "invariant", name, "err", err)
		m.setStatus(name, -1, d, err, now)
		return false // its alerts and tickets stay as they are
	}
	m.updateAlerts(name, obs, now, invariant.For(inv))
	m.setStatus(name, len(obs), d, nil, now)
	return true
}

func (m *Monitor) evalOne(ctx context.Context, inv invariant.Invariant, s *tikv.Snapshot, now time.Time) (obs []ticket.Observation, err error) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("invariant panicked", "invariant", inv.Name(), "panic", r, "stack", string(debug.Stack()))
			obs, err = nil, fmt.Errorf("invariant %s panicked: %v", inv.Name(), r)
		}
	}()
	vs, err := inv.Eval(ctx, s, now)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, v := range vs {
		if v.Subject == "" {
			return nil, fmt.Errorf("invariant %s: violation without subject: %q", inv.Name(), v.Summary)
		}
		o, err := v.Observation(inv.Name())
		if err != nil {
			return nil, err
		}
		if seen[o.Key()] {
			continue // one alert per key; the first wins
		}
		seen[o.Key()] = true
		obs = append(obs, o)
	}
	return obs, nil
}

// updateAlerts replaces the active alerts of invariant name with obs: new
// keys become pending at now, known keys keep their ActiveAt, keys no
// longer reported are dropped; an alert fires once it has been active for
// forDur, or at once if its key still has an open ticket (m.ticketed).
func (m *Monitor) updateAlerts(name string, obs []ticket.Observation, now time.Time, forDur time.Duration) {
	seen := make(map[string]bool, len(obs))
	for _, o := range obs {
		k := o.Key()
		seen[k] = true
		a, ok := m.active[k]
		if !ok {
			a = &alert{invariant: name, activeAt: now}
			m.active[k] = a
		}
		a.obs = o
		_, open := m.ticketed[k]
		a.firing = a.firing || now.Sub(a.activeAt) >= forDur || open
	}
	for k, a := range m.active {
		if a.invariant == name && !seen[k] {
			delete(m.active, k)
		}
	}
}

func (m *Monitor) setStatus(name string, violations int, d time.Duration, err error, now time.Time) {
	st, ok := m.status[name]
	if !ok {
		st = &InvariantStatus{Name: name}
		m.status[name] = st
	}
	st.EvalDuration, st.LastEvaluated = d, now
	if err != nil {
		st.Health, st.Err = HealthBad, err.Error()
		return
	}
	st.Health, st.Err, st.Violations = HealthGood, "", violations
}

func (m *Monitor) updateGauges() {
	pending, firing := map[string]int{}, map[string]int{}
	for _, a := range m.active {
		if a.firing {
			firing[a.invariant]++
		} else {
			pending[a.invariant]++
		}
	}
	for name := range m.status {
		m.metrics.violations.WithLabelValues(name, "pending").Set(float64(pending[name]))
		m.metrics.violations.WithLabelValues(name, "firing").Set(float64(firing[name]))
	}
}

func (m *Monitor) sortedKeys() []string {
	keys := make([]string, 0, len(m.active))
	for k := range m.active {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// statuses returns a copy of every invariant's status, pd_unreachable
// first, then in Options.Invariants order.
func (m *Monitor) statuses() []InvariantStatus {
	out := []InvariantStatus{*m.status[invariant.NamePDUnreachable]}
	for _, inv := range m.opts.Invariants {
		if st, ok := m.status[inv.Name()]; ok && inv.Name() != invariant.NamePDUnreachable {
			out = append(out, *st)
		}
	}
	return out
}

// Status returns every invariant's last evaluation status.
func (m *Monitor) Status() []InvariantStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statuses()
}

// Alerts returns the active (pending and firing) alerts, by key.
func (m *Monitor) Alerts() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Alert, 0, len(m.active))
	for _, k := range m.sortedKeys() {
		a := m.active[k]
		out = append(out, Alert{Observation: a.obs, ActiveAt: a.activeAt, Firing: a.firing})
	}
	return out
}

// Interval returns the configured cycle interval.
func (m *Monitor) Interval() time.Duration { return m.opts.Interval }
