package daemon

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/monitor"
)

// Health is the body of GET /healthz.
type Health struct {
	Status    string    `json:"status"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	PD        []string  `json:"pd"`
	Database  string    `json:"database"`
	Diagnosis string    `json:"diagnosis"`
	// LastCycle is when the monitor last evaluated the invariants (zero
	// before the first cycle).
	LastCycle time.Time `json:"last_cycle,omitempty"`
	// FailingInvariants names the invariants whose last evaluation failed.
	FailingInvariants []string `json:"failing_invariants,omitempty"`
}

// handler serves /metrics from reg (a dedicated registry: no global state)
// and /healthz. /healthz answers 200 while the process runs: it is a
// liveness check; the body tells how the monitor is doing.
func (d *Daemon) handler(reg *prometheus.Registry, cfg config.Config, backend string, apiHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", apiHandler)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		h := Health{Status: "ok", Version: d.opts.Version, StartedAt: d.started, PD: cfg.Masked().PD.Endpoints,
			Database: cfg.Database.Path, Diagnosis: backend}
		mon := d.mon
		d.mu.Unlock()
		if mon != nil {
			for _, s := range mon.Status() {
				if s.LastEvaluated.After(h.LastCycle) {
					h.LastCycle = s.LastEvaluated
				}
				if s.Health == monitor.HealthBad {
					h.FailingInvariants = append(h.FailingInvariants, s.Name)
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h)
	})
	return mux
}
