package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tikvops/operator/internal/alerting"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/monitor"
	"github.com/tikvops/operator/internal/notify"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// healthSnap is what /healthz reports, refreshed by a goroutine so that
// /healthz never waits on the monitor (whose lock is held for a cycle).
type healthSnap struct {
	LastCycle         time.Time
	FailingInvariants []string
}

// Health timings.
const (
	// HealthRefresh is how often the /healthz snapshot is refreshed.
	HealthRefresh = time.Second
	// ReadyTimeout bounds each /readyz check; ReadyCache is how long a
	// /readyz answer is reused.
	ReadyTimeout = time.Second
	ReadyCache   = 2 * time.Second
)

// refreshHealth keeps d.health current until ctx ends.
func (d *Daemon) refreshHealth(ctx context.Context, mon *monitor.Monitor) error {
	t := time.NewTicker(HealthRefresh)
	defer t.Stop()
	for {
		var h healthSnap
		for _, s := range mon.Status() {
			if s.LastEvaluated.After(h.LastCycle) {
				h.LastCycle = s.LastEvaluated
			}
			if s.Health == monitor.HealthBad {
				h.FailingInvariants = append(h.FailingInvariants, s.Name)
			}
		}
		d.health.Store(&h)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check is one /readyz dependency.
type Check struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Ms is how long the check took (milliseconds).
	Ms int64 `json:"ms"`
}

// Ready is the body of GET /readyz (200 when every check passed, 503
// otherwise).
type Ready struct {
	Ready     bool      `json:"ready"`
	CheckedAt time.Time `json:"checked_at"`
	Checks    []Check   `json:"checks"`
}

// readiness runs the /readyz checks (PD, database, model backend when
// one is configured) concurrently, each bounded by ReadyTimeout, and
// caches the answer for ReadyCache.
type readiness struct {
	checks []func(context.Context) error
	names  []string

	mu   sync.Mutex
	last *Ready
}

func newReadiness(cfg config.Config, pdc *pd.Client, st *store.Store) *readiness {
	r := &readiness{}
	r.add("pd", func(ctx context.Context) error { _, err := pdc.ClusterID(ctx); return err })
	r.add("database", st.Ping)
	var base string
	switch cfg.Diagnosis.Backend {
	case "anthropic":
		base = cfg.Diagnosis.Anthropic.BaseURL
		if base == "" {
			base = "https://api.anthropic.com"
		}
	case "openai":
		base = cfg.Diagnosis.OpenAI.BaseURL
	}
	if base != "" {
		r.add("model:"+cfg.Diagnosis.Backend, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodHead, base, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return nil // any other answer: reachable
		})
	}
	return r
}

func (r *readiness) add(name string, f func(context.Context) error) {
	r.names, r.checks = append(r.names, name), append(r.checks, f)
}

func (r *readiness) get(ctx context.Context) Ready {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last != nil && time.Since(r.last.CheckedAt) < ReadyCache {
		return *r.last
	}
	out := Ready{Ready: true, CheckedAt: time.Now(), Checks: make([]Check, len(r.checks))}
	var wg sync.WaitGroup
	for i, f := range r.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
			defer cancel()
			start := time.Now()
			err := f(cctx)
			c := Check{Name: r.names[i], OK: err == nil, Ms: time.Since(start).Milliseconds()}
			if err != nil {
				c.Error = err.Error()
			}
			out.Checks[i] = c
		}()
	}
	wg.Wait()
	for _, c := range out.Checks {
		out.Ready = out.Ready && c.OK
	}
	r.last = &out
	return out
}

// Metric names of the daemon's gauges (docs/alerting.md).
const (
	MetricOpenTickets      = "operator_open_tickets"
	MetricAwaiting         = "operator_proposals_awaiting_approval"
	MetricOldestAwaiting   = "operator_oldest_proposal_awaiting_approval_seconds"
	MetricOutboxBacklog    = "operator_outbox_backlog"
	MetricOutboxDead       = "operator_outbox_dead"
	MetricOutboxOldest     = "operator_outbox_oldest_pending_seconds"
	MetricLastPDCollection = "operator_pd_last_successful_collection_timestamp_seconds"
)

// gauges reads the store when scraped (cheap indexed queries, bounded by
// a 2 s timeout).
type gauges struct {
	st          *store.Store
	lastCollect *atomic.Int64 // unix nanoseconds
	open        *prometheus.Desc
	awaiting    *prometheus.Desc
	oldest      *prometheus.Desc
	backlog     *prometheus.Desc
	dead        *prometheus.Desc
	outOld      *prometheus.Desc
	lastPD      *prometheus.Desc
	sinks       []string
}

func newGauges(st *store.Store, last *atomic.Int64, sinks []string) *gauges {
	return &gauges{st: st, lastCollect: last, sinks: sinks,
		open:     prometheus.NewDesc(MetricOpenTickets, "Tickets not resolved, by severity and invariant.", []string{"severity", "invariant"}, nil),
		awaiting: prometheus.NewDesc(MetricAwaiting, "Action proposals awaiting a decision (proposed or dry_run, not expired).", nil, nil),
		oldest:   prometheus.NewDesc(MetricOldestAwaiting, "Age of the oldest proposal awaiting a decision, in seconds (0 when none).", nil, nil),
		backlog:  prometheus.NewDesc(MetricOutboxBacklog, "Notification deliveries not yet delivered nor dead, by sink (\"\" = events not yet routed).", []string{"sink"}, nil),
		dead:     prometheus.NewDesc(MetricOutboxDead, "Dead notification deliveries (out of attempts or refused), by sink.", []string{"sink"}, nil),
		outOld:   prometheus.NewDesc(MetricOutboxOldest, "Age of the oldest undelivered notification event, in seconds (0 when none).", nil, nil),
		lastPD:   prometheus.NewDesc(MetricLastPDCollection, "Unix time of the last successful collection of PD's state (0 before the first).", nil, nil),
	}
}

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.open, g.awaiting, g.oldest, g.backlog, g.dead, g.outOld, g.lastPD} {
		ch <- d
	}
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	now := time.Now()
	ch <- prometheus.MustNewConstMetric(g.lastPD, prometheus.GaugeValue, float64(g.lastCollect.Load())/1e9)
	if cs, err := g.st.OpenTicketCounts(ctx); err == nil {
		for _, c := range cs {
			ch <- prometheus.MustNewConstMetric(g.open, prometheus.GaugeValue, float64(c.N), string(c.Severity), c.Invariant)
		}
	} else {
		ch <- prometheus.NewInvalidMetric(g.open, err)
	}
	if n, oldest, err := g.st.AwaitingApproval(ctx, now); err == nil {
		ch <- prometheus.MustNewConstMetric(g.awaiting, prometheus.GaugeValue, float64(n))
		age := 0.0
		if !oldest.IsZero() {
			age = now.Sub(oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(g.oldest, prometheus.GaugeValue, age)
	} else {
		ch <- prometheus.NewInvalidMetric(g.awaiting, err)
	}
	if s, err := g.st.OutboxState(ctx); err == nil {
		seen := map[string]bool{}
		for _, sink := range append([]string{""}, g.sinks...) {
			seen[sink] = true
			ch <- prometheus.MustNewConstMetric(g.backlog, prometheus.GaugeValue, float64(s.Backlog[sink]), sink)
			ch <- prometheus.MustNewConstMetric(g.dead, prometheus.GaugeValue, float64(s.Dead[sink]), sink)
		}
		for sink, n := range s.Backlog {
			if !seen[sink] {
				ch <- prometheus.MustNewConstMetric(g.backlog, prometheus.GaugeValue, float64(n), sink)
			}
		}
		age := 0.0
		if !s.OldestPending.IsZero() {
			age = now.Sub(s.OldestPending).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(g.outOld, prometheus.GaugeValue, age)
	} else {
		ch <- prometheus.NewInvalidMetric(g.backlog, err)
	}
}

// notifier is the deliverer and the Slack interaction handlers built from
// [notify].
type notifier struct {
	deliverer *notify.Deliverer
	sinks     []string
	slack     map[string]*notify.Interactions // by sink name
	// alerts is the Alertmanager receiver (set by routes); its RunRelink
	// runs as a daemon part.
	alerts *alerting.Receiver
}

func newNotifier(cfg config.Config, st *store.Store, ex *executor.Executor, reg prometheus.Registerer, log *slog.Logger) *notifier {
	n := &notifier{slack: map[string]*notify.Interactions{}}
	var sinks []notify.Sink
	routes := map[string]config.Route{}
	for _, w := range cfg.Notify.Webhooks {
		sinks = append(sinks, notify.NewWebhook(w.Name, w.URL, w.Secret, nil))
		routes[w.Name] = w.Route
	}
	for _, s := range cfg.Notify.Slack {
		sk := notify.NewSlack(s, cfg.Notify.ConsoleURL, st)
		sinks = append(sinks, sk)
		routes[s.Name] = s.Route
		if s.SigningSecret != "" {
			n.slack[s.Name] = notify.NewInteractions(sk, ex, log.With("component", "slack", "sink", s.Name))
		}
	}
	for _, a := range cfg.Notify.Alertmanager {
		sinks = append(sinks, notify.NewAlertmanager(a.Name, a.URL, cfg.Notify.ConsoleURL, nil))
		routes[a.Name] = a.Route
	}
	for _, s := range sinks {
		n.sinks = append(n.sinks, s.Name())
	}
	n.deliverer = notify.New(notify.Options{Store: st, Sinks: sinks, Routes: routes,
		MaxAttempts: cfg.Notify.MaxAttempts, Backoff: cfg.Notify.Backoff.Duration, MaxBackoff: cfg.Notify.MaxBackoff.Duration,
		Logger: log.With("component", "notify"), Registerer: reg, Silences: silenceMatcher(cfg, st)})
	return n
}

// initAlerts builds the Alertmanager receiver ([alerting]).
func (n *notifier) initAlerts(cfg config.Config, st *store.Store, apiSrv *api.Server, log *slog.Logger) {
	n.alerts = alerting.New(alerting.Options{Store: st, Identify: apiSrv.Identify,
		Token: cfg.Alerting.WebhookToken, RequireToken: cfg.Alerting.RequireToken, Logger: log.With("component", "alerting")})
}

// routes mounts the alerting routes on mux: the Alertmanager receiver
// and the Slack interaction callbacks (one per Slack sink with a signing
// secret; the first one also on the short path).
func (n *notifier) routes(mux *http.ServeMux, cfg config.Config) {
	mux.Handle("POST /api/v1/alerts/alertmanager", n.alerts)
	first := true
	for _, s := range cfg.Notify.Slack {
		h := n.slack[s.Name]
		if h == nil {
			continue
		}
		mux.Handle("POST /api/v1/slack/interactions/"+strings.ToLower(s.Name), h)
		if first {
			mux.Handle("POST /api/v1/slack/interactions", h)
			first = false
		}
	}
}

// enqueueVerifyFailure tells the team that the audit chain failed
// verification (one event per distinct head and outcome).
func enqueueVerifyFailure(ctx context.Context, st *store.Store, rep store.VerifyReport, log *slog.Logger) {
	b, _ := json.Marshal(rep)
	sum := sha256.Sum256(b)
	ev := store.OutboxEvent{Key: "audit/verify_failed/" + hex.EncodeToString(sum[:8]), Kind: store.KindAuditFailed,
		Severity: ticket.Critical, Time: time.Now(),
		Text: fmt.Sprintf("audit verification FAILED after %d records (head %d): %s", rep.Records, rep.HeadID, string(b))}
	if err := st.Enqueue(context.WithoutCancel(ctx), ev); err != nil {
		log.Error("enqueue audit verification failure", "err", err)
	}
}
