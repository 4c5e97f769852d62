package tikv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/tikvops/operator/internal/pd"
)

// ErrNoPrometheus is returned by every query of a nil *Prom: the subject
// was configured without a Prometheus URL. Everything else works without
// Prometheus; callers skip the metrics that need it.
var ErrNoPrometheus = errors.New("no Prometheus configured")

// Prom queries the Prometheus server that scrapes the cluster (TiUP's
// monitoring, or any server scraping PD's and TiKV's /metrics). A nil *Prom
// is valid and answers ErrNoPrometheus.
type Prom struct {
	api promv1.API
}

// NewProm returns a client for the Prometheus HTTP API at url
// ("http://127.0.0.1:9090"). An empty url returns (nil, nil): no
// Prometheus. hc may be nil (Go's default transport).
func NewProm(url string, hc *http.Client) (*Prom, error) {
	url = strings.TrimSpace(url)
	if url == "" {
		return nil, nil
	}
	cfg := api.Config{Address: url}
	if hc != nil {
		cfg.Client = hc
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("prometheus %q: %w", url, err)
	}
	return &Prom{api: promv1.NewAPI(c)}, nil
}

// Query evaluates promql at t (GET /api/v1/query). Warnings from
// Prometheus are dropped; errors name the query.
func (p *Prom) Query(ctx context.Context, promql string, t time.Time) (model.Value, error) {
	if p == nil {
		return nil, ErrNoPrometheus
	}
	v, _, _, err := p.api.Query(ctx, promql, t)
	if err != nil {
		return nil, fmt.Errorf("prometheus query %q: %w", promql, err)
	}
	return v, nil
}

// QueryRange evaluates promql over [start, end] every step (GET
// /api/v1/query_range) and returns a matrix.
func (p *Prom) QueryRange(ctx context.Context, promql string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	if p == nil {
		return nil, ErrNoPrometheus
	}
	if step <= 0 || end.Before(start) {
		return nil, fmt.Errorf("prometheus range query %q: need start <= end and step > 0", promql)
	}
	v, _, _, err := p.api.QueryRange(ctx, promql, promv1.Range{Start: start, End: end, Step: step})
	if err != nil {
		return nil, fmt.Errorf("prometheus range query %q: %w", promql, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("prometheus range query %q: got %s, want matrix", promql, v.Type())
	}
	return m, nil
}

// ByInstance evaluates an instant vector query at t and returns its samples
// keyed by the "instance" label (host:port of the scraped target). Samples
// without that label are keyed "".
func (p *Prom) ByInstance(ctx context.Context, promql string, t time.Time) (map[string]float64, error) {
	v, err := p.Query(ctx, promql, t)
	if err != nil {
		return nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus query %q: got %s, want vector", promql, v.Type())
	}
	out := make(map[string]float64, len(vec))
	for _, s := range vec {
		out[string(s.Metric["instance"])] = float64(s.Value)
	}
	return out, nil
}

// ByStore evaluates a per-instance TiKV query (e.g.
// `sum(rate(tikv_thread_cpu_seconds_total{name=~"raftstore_.*"}[1m])) by (instance)`)
// and maps the samples to store ids by matching the instance label against
// each store's status_address (TiKV's metrics port, 20180 by default), then
// its address. Samples of unknown instances are dropped.
func (p *Prom) ByStore(ctx context.Context, promql string, t time.Time, stores []pd.StoreInfo) (map[uint64]float64, error) {
	byInst, err := p.ByInstance(ctx, promql, t)
	if err != nil {
		return nil, err
	}
	out := map[uint64]float64{}
	for i := range stores {
		s := &stores[i].Store
		for _, addr := range []string{s.StatusAddress, s.Address} {
			if v, ok := byInst[addr]; ok && addr != "" {
				out[s.ID] = v
				break
			}
		}
	}
	return out, nil
}
