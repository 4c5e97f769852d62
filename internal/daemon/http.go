package daemon

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tikvops/operator/internal/config"
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
	// Role is "leader" or "follower" with [ha] enabled (docs/ha.md), empty
	// otherwise; Term is the leader's term (election revision in PD's etcd).
	Role string `json:"role,omitempty"`
	Term int64  `json:"term,omitempty"`
}

// handler serves /metrics from reg (a dedicated registry: no global state)
// and /healthz. /healthz answers 200 while the process runs: it is a
// liveness check; the body tells how the monitor is doing.
func (d *Daemon) handler(reg *prometheus.Registry, cfg config.Config, backend string, apiHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	pds := cfg.Masked().PD.Endpoints
	if d.extra != nil {
		d.extra(mux) // alerting.go: Alertmanager receiver, Slack callbacks
	}
	mux.Handle("/api/v1/", apiHandler)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// From the process alone: a snapshot refreshed by refreshHealth,
		// never the monitor's lock (held for a whole cycle while PD hangs).
		h := Health{Status: "ok", Version: d.opts.Version, StartedAt: started, PD: pds,
			Database: cfg.Database.Display(), Diagnosis: backend}
		if s := d.health.Load(); s != nil {
			h.LastCycle, h.FailingInvariants = s.LastCycle, s.FailingInvariants
		}
		if d.ha != nil {
			h.Role, h.Term = d.ha.role()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if d.ready == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rd := d.ready.get(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !rd.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rd)
	})
	return mux
}
