// Package notify delivers the store's outbox (events written in the same
// transaction as the change they tell about) to the configured sinks:
// a generic JSON webhook signed with HMAC-SHA256, Slack (Block Kit, with
// Approve and Reject buttons handled by Interactions) and Alertmanager's
// v2 API. Delivery is at least once with exponential backoff; a delivery
// out of attempts, or refused permanently (HTTP 4xx other than 408 and
// 429), is dead: `operator notifications list --dead` and the metric
// operator_notify_deliveries_total{result="dead"} show it. Every event has
// an idempotency key (its "id"), sent with each delivery.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// Defaults of Options.
const (
	DefaultMaxAttempts = 8
	DefaultBackoff     = 2 * time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultInterval    = 500 * time.Millisecond
	// SendTimeout bounds one delivery attempt.
	SendTimeout = 10 * time.Second
)

// Sink delivers one event. inDoubt says that an earlier attempt may have
// reached the sink before the process stopped (a sink that can, checks
// before sending again). ref is the sink's id of what it posted (kept for
// later updates).
type Sink interface {
	Name() string
	Deliver(ctx context.Context, d store.Delivery) (ref string, err error)
}

// PermanentError is an error retrying cannot fix (the delivery is dead at
// once).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError.
func Permanent(err error) error { return &PermanentError{Err: err} }

// Router decides which sinks receive an event.
type Router struct{ routes map[string]config.Route }

// Sinks returns the names of the sinks ev goes to, in configuration order.
func (r *Router) Sinks(ev store.OutboxEvent, order []string) []string {
	var out []string
	for _, name := range order {
		if Matches(r.routes[name], ev) {
			out = append(out, name)
		}
	}
	return out
}

func sevRank(s string) int {
	switch ticket.Severity(strings.ToLower(s)) {
	case ticket.Warning:
		return 1
	case ticket.Critical:
		return 2
	case ticket.Emergency:
		return 3
	}
	return 0
}

// Matches reports whether route r selects ev.
func Matches(r config.Route, ev store.OutboxEvent) bool {
	if len(r.Kinds) > 0 && !contains(r.Kinds, ev.Kind) {
		return false
	}
	if r.MinSeverity != "" && ev.Severity != "" && sevRank(string(ev.Severity)) < sevRank(r.MinSeverity) {
		return false
	}
	if len(r.Invariants) > 0 && ev.Invariant != "" && !contains(r.Invariants, ev.Invariant) {
		return false
	}
	return true
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), v) {
			return true
		}
	}
	return false
}

// Options configure a Deliverer.
type Options struct {
	Store       *store.Store
	Sinks       []Sink
	Routes      map[string]config.Route // by sink name; missing = all events
	MaxAttempts int
	Backoff     time.Duration
	MaxBackoff  time.Duration
	Interval    time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	// Silences, when not nil, mutes deliveries: an event store.Silenceable
	// says a silence may mute (ticket opened, escalated, resolved; the
	// diagnosis' approval requests) about a ticket a silence matches when
	// the delivery is due is marked silenced, not sent. When no silence
	// matches any more and the ticket is still open, the delivery is sent
	// after all (ReleaseSilenced); for a ticket that resolved inside the
	// window, never. A silence that cannot be read does not mute (the
	// message is sent: telling is the safe side).
	Silences Silencer
	// ReleaseEvery is how often Once looks for silenced deliveries to
	// release (DefaultReleaseEvery when 0).
	ReleaseEvery time.Duration
}

// Silencer finds the silence muting a ticket of invariant about subject
// at now, or nil (store.SilenceMatcher).
type Silencer interface {
	Match(ctx context.Context, invariant, subject string, now time.Time) (*store.Silence, error)
}

// DefaultReleaseEvery is how often silenced deliveries are checked for
// release.
const DefaultReleaseEvery = 5 * time.Second

// Deliverer moves outbox events to the sinks.
type Deliverer struct {
	o       Options
	order   []string
	sinks   map[string]Sink
	router  *Router
	wake    chan struct{}
	results *prometheus.CounterVec
	// lastRelease is when Once last ran ReleaseSilenced (Run's goroutine).
	lastRelease time.Time
}

// MetricDeliveries counts delivery attempts by sink and result
// (delivered, retry, dead).
const MetricDeliveries = "operator_notify_deliveries_total"

// New returns a Deliverer.
func New(o Options) *Deliverer {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ReleaseEvery <= 0 {
		o.ReleaseEvery = DefaultReleaseEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Deliverer{o: o, sinks: map[string]Sink{}, router: &Router{routes: o.Routes}, wake: make(chan struct{}, 1)}
	for _, s := range o.Sinks {
		d.order = append(d.order, s.Name())
		d.sinks[s.Name()] = s
	}
	d.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricDeliveries, Help: "Notification delivery attempts by sink and result (delivered, retry, dead, silenced).",
	}, []string{"sink", "result"})
	for _, n := range d.order {
		for _, r := range []string{"delivered", "retry", "dead", "silenced"} {
			d.results.WithLabelValues(n, r)
		}
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(d.results)
	}
	return d
}

// Poke makes Run look at the outbox now.
func (d *Deliverer) Poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Backoff returns the delay before attempt n+1 after n failed attempts.
func (d *Deliverer) Backoff(n int) time.Duration {
	b := d.o.Backoff
	for i := 1; i < n && b < d.o.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, d.o.MaxBackoff)
}

// Run recovers deliveries a previous process left in flight (in doubt),
// then routes and delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) error {
	if n, err := d.o.Store.RecoverDeliveries(ctx, d.o.Now()); err != nil {
		return fmt.Errorf("recover deliveries: %w", err)
	} else if n > 0 {
		d.o.Logger.Warn("deliveries interrupted by a stop are retried (in doubt)", "deliveries", n)
	}
	t := time.NewTicker(d.o.Interval)
	defer t.Stop()
	for {
		if err := d.Once(ctx); err != nil && ctx.Err() == nil {
			d.o.Logger.Warn("notification delivery", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// Once routes new events and makes one attempt for every due delivery.
func (d *Deliverer) Once(ctx context.Context) error {
	if _, err := d.o.Store.Route(ctx, func(ev store.OutboxEvent) []string { return d.router.Sinks(ev, d.order) }, d.o.Now()); err != nil {
		return err
	}
	if d.o.Silences != nil && d.o.Now().Sub(d.lastRelease) >= d.o.ReleaseEvery {
		if err := d.ReleaseSilenced(ctx); err != nil {
			d.o.Logger.Warn("release silenced notifications", "err", err)
		}
	}
	ds, err := d.o.Store.ClaimDeliveries(ctx, d.o.Now(), 50)
	if err != nil {
		return err
	}
	for _, dl := range ds {
		if d.silence(ctx, dl) {
			continue
		}
		d.deliver(ctx, dl)
	}
	return nil
}

// silenceOf returns the silence muting ev now, or nil (also when ev is
// not silenceable, or the silences cannot be read: then ev is sent).
func (d *Deliverer) silenceOf(ctx context.Context, ev store.OutboxEvent) (*store.Silence, error) {
	if d.o.Silences == nil || !store.Silenceable(ev) {
		return nil, nil
	}
	return d.o.Silences.Match(ctx, ev.Invariant, ev.Subject, d.o.Now())
}

// silence marks dl silenced when a silence mutes its event, and says so.
func (d *Deliverer) silence(ctx context.Context, dl store.Delivery) bool {
	s, err := d.silenceOf(ctx, dl.Event)
	if err != nil {
		d.o.Logger.Warn("silences unreadable; notification sent", "event", dl.Event.Key, "sink", dl.Sink, "err", err)
		return false
	}
	if s == nil {
		return false
	}
	if err := d.o.Store.SilenceDelivery(context.WithoutCancel(ctx), dl.Event.Seq, dl.Sink, s.Label(), s.Note(), d.o.Now()); err != nil {
		d.o.Logger.Warn("record silenced delivery", "err", err, "event", dl.Event.Key, "sink", dl.Sink)
		return true // left sending: retried (in doubt) at the next start
	}
	d.results.WithLabelValues(dl.Sink, "silenced").Inc()
	d.o.Logger.Info("notification silenced", "event", dl.Event.Key, "sink", dl.Sink, "silence", s.Label())
	return true
}

// ReleaseSilenced sends, after all, the silenced deliveries of tickets
// still open that no silence matches any more (store.ReleaseSilenced).
func (d *Deliverer) ReleaseSilenced(ctx context.Context) error {
	d.lastRelease = d.o.Now()
	n, err := d.o.Store.ReleaseSilenced(ctx, d.o.Now(), func(ev store.OutboxEvent) (bool, error) {
		s, err := d.silenceOf(ctx, ev)
		return s != nil, err
	})
	if n > 0 {
		d.o.Logger.Info("silence over: held notifications of open tickets are sent", "deliveries", n)
	}
	return err
}

func (d *Deliverer) deliver(ctx context.Context, dl store.Delivery) {
	sink := d.sinks[dl.Sink]
	var (
		ref string
		err error
	)
	if sink == nil {
		err = Permanent(fmt.Errorf("sink %q is no longer configured", dl.Sink))
	} else {
		sctx, cancel := context.WithTimeout(ctx, SendTimeout)
		ref, err = sink.Deliver(sctx, dl)
		cancel()
	}
	if ctx.Err() != nil && err != nil {
		// Stopping: leave it sending; the next start retries it in doubt.
		return
	}
	now := d.o.Now()
	var pe *PermanentError
	dead := err != nil && (errors.As(err, &pe) || dl.Attempts >= d.o.MaxAttempts)
	next := now.Add(d.Backoff(dl.Attempts))
	if derr := d.o.Store.DeliveryDone(context.WithoutCancel(ctx), dl.Event.Seq, dl.Sink, ref, err, dead, next, now); derr != nil {
		d.o.Logger.Warn("record delivery", "err", derr, "event", dl.Event.Key, "sink", dl.Sink)
	}
	switch {
	case err == nil:
		d.results.WithLabelValues(dl.Sink, "delivered").Inc()
	case dead:
		d.results.WithLabelValues(dl.Sink, "dead").Inc()
		d.o.Logger.Error("notification dead", "event", dl.Event.Key, "sink", dl.Sink, "attempts", dl.Attempts, "err", err)
	default:
		d.results.WithLabelValues(dl.Sink, "retry").Inc()
		d.o.Logger.Warn("notification failed; will retry", "event", dl.Event.Key, "sink", dl.Sink, "attempts", dl.Attempts, "next", next, "err", err)
	}
}
