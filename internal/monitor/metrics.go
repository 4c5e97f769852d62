package monitor

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tikvops/operator/internal/pd"
)

// Metric names, all in the "operator" namespace.
const (
	MetricCycleDuration   = "operator_monitor_cycle_duration_seconds"
	MetricCycles          = "operator_monitor_cycles_total"
	MetricCollectErrors   = "operator_monitor_collect_errors_total"
	MetricViolations      = "operator_monitor_violations"
	MetricInvariantErrors = "operator_monitor_invariant_errors_total"
	MetricMissed          = "operator_monitor_missed_iterations_total"
	MetricSinkErrors      = "operator_monitor_sink_errors_total"
	MetricLastCycle       = "operator_monitor_last_cycle_timestamp_seconds"
	MetricPDDuration      = "operator_pd_request_duration_seconds"
	MetricPDBytes         = "operator_pd_response_bytes_total"
)

type metrics struct {
	cycleDuration   prometheus.Histogram
	cycles          prometheus.Counter
	collectErrors   prometheus.Counter
	violations      *prometheus.GaugeVec   // invariant, state (pending|firing)
	invariantErrors *prometheus.CounterVec // invariant
	missed          prometheus.Counter
	sinkErrors      prometheus.Counter
	lastCycle       prometheus.Gauge
	pdDuration      *prometheus.HistogramVec // method, path, status
	pdBytes         *prometheus.CounterVec   // method, path
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		cycleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricCycleDuration,
			Help:    "Wall time of one monitor cycle (collect, evaluate, write tickets), in seconds.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		cycles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricCycles, Help: "Monitor cycles run.",
		}),
		collectErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricCollectErrors, Help: "Cycles whose snapshot could not be collected from PD (pd_unreachable).",
		}),
		violations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricViolations,
			Help: "Current violations by invariant and state (pending: waiting for the invariant's for duration; firing: reported to the ticket store).",
		}, []string{"invariant", "state"}),
		invariantErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricInvariantErrors, Help: "Invariant evaluations that failed (error, missing snapshot source or panic).",
		}, []string{"invariant"}),
		missed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricMissed, Help: "Monitor iterations missed because a cycle took longer than the interval.",
		}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricSinkErrors, Help: "Ticket store calls (Observe, Sweep) that failed.",
		}),
		lastCycle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricLastCycle, Help: "Unix time of the last completed monitor cycle.",
		}),
		pdDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricPDDuration,
			Help:    "PD HTTP request latency per attempt, by method, route template and status (0 = no response).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "path", "status"}),
		pdBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricPDBytes, Help: "Bytes of PD HTTP response bodies read, by method and route template.",
		}, []string{"method", "path"}),
	}
	if reg != nil {
		m.cycleDuration = register(reg, m.cycleDuration)
		m.cycles = register(reg, m.cycles)
		m.collectErrors = register(reg, m.collectErrors)
		m.violations = register(reg, m.violations)
		m.invariantErrors = register(reg, m.invariantErrors)
		m.missed = register(reg, m.missed)
		m.sinkErrors = register(reg, m.sinkErrors)
		m.lastCycle = register(reg, m.lastCycle)
		m.pdDuration = register(reg, m.pdDuration)
		m.pdBytes = register(reg, m.pdBytes)
	}
	return m
}

// register registers c on reg; if an identical collector is already
// registered (a second Monitor on the same registry) the existing one is
// shared instead.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// ObservePDRequest records one PD HTTP attempt; its signature is
// pd.Observer, so pass m.ObservePDRequest to pd.WithObserver. path should
// be the route template (bounded cardinality), status 0 when no response
// arrived, d the attempt's wall time and bytesRead the response body size.
// Safe for concurrent use.
func (m *Monitor) ObservePDRequest(method, path string, status int, d time.Duration, bytesRead int64) {
	m.metrics.pdDuration.WithLabelValues(method, path, strconv.Itoa(status)).Observe(d.Seconds())
	m.metrics.pdBytes.WithLabelValues(method, path).Add(float64(max(bytesRead, 0)))
}

// PDObserver returns m.ObservePDRequest as a pd.Observer.
func (m *Monitor) PDObserver() pd.Observer { return m.ObservePDRequest }
