package executor

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the executor's Prometheus series.
type metrics struct {
	executions *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	claimDelay prometheus.Histogram
}

// newMetrics creates the series and registers them with reg when not nil:
//
//   - operator_executor_executions_total{action,result}: finished
//     executions; result is completed, failed (sent; PD refused or the
//     effect was not verified), refused (nothing sent), unknown (the
//     request's fate is unknown) or interrupted (found executing at start).
//   - operator_executor_execution_duration_seconds{action}: claim to
//     outcome, in seconds.
//   - operator_executor_approval_to_claim_seconds: from the approval's
//     commit time to the claim, in seconds.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "operator", Subsystem: "executor", Name: "executions_total",
			Help: "Finished action executions by action type and result (completed, failed, refused, unknown, interrupted).",
		}, []string{"action", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "operator", Subsystem: "executor", Name: "execution_duration_seconds",
			Help:    "Time from claim to recorded outcome of an action execution, in seconds.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"action"}),
		claimDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "operator", Subsystem: "executor", Name: "approval_to_claim_seconds",
			Help:    "Time from an action's approval to its claim by the executor, in seconds.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 10, 60},
		}),
	}
	if reg != nil {
		m.executions = register(reg, m.executions)
		m.duration = register(reg, m.duration)
		m.claimDelay = register(reg, m.claimDelay)
	}
	return m
}

// register registers c with reg and returns it, or the collector already
// registered under the same name (a second executor on one registry).
// Another registration error leaves c unregistered (its values are then
// simply not exported).
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
