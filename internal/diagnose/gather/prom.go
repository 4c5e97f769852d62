package gather

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// Recurring PromQL of DefaultQueries. Metric names are TiKV's and PD's own
// (TiKV v8.5 and PD v8.5 Grafana dashboards and alert rules, see
// /work/shared/pd-api.md section 3).
const (
	qPDClusterStatus = `max(pd_cluster_status) by (type)`
	qPDRegionsStatus = `max(pd_regions_status) by (type)`
	qOperators       = `sum(increase(pd_schedule_operators_count{event="create"}[10m])) by (type)`
	qLeaders         = `sum(tikv_raftstore_region_count{type="leader"}) by (instance)`
	qRegions         = `sum(tikv_raftstore_region_count{type="region"}) by (instance)`
	qStoreSize       = `sum(tikv_store_size_bytes) by (instance, type)`
	qTiKVUp          = `up{job=~".*tikv.*"}`
	qTiKVRestarts    = `changes(process_start_time_seconds{job=~".*tikv.*"}[30m])`
)

// DefaultQueries are the instant queries Gather runs, by invariant name,
// when a Prometheus is configured; the "" entry runs for every ticket.
var DefaultQueries = map[string][]string{
	"":                            {qPDClusterStatus},
	invariant.NameLeaderImbalance: {qLeaders, qOperators},
	invariant.NameRegionImbalance: {qRegions, qStoreSize, qOperators},
	invariant.NameStoreNoLeaders:  {qLeaders, qOperators},
	invariant.NameHotWriteStore: {
		`sum(rate(tikv_grpc_msg_duration_seconds_count{type=~"kv_prewrite|kv_commit|kv_pessimistic_lock|raw_put|raw_batch_put"}[1m])) by (instance)`,
		`sum(rate(tikv_engine_flow_bytes{db="kv",type="wal_file_bytes"}[1m])) by (instance)`,
	},
	invariant.NameRegionOversized: {
		`histogram_quantile(0.99, sum(rate(tikv_raftstore_region_size_bucket[1m])) by (le))`,
	},
	invariant.NameStoreLowSpace:        {qStoreSize},
	invariant.NameClusterSpaceUsed:     {qStoreSize},
	invariant.NameStoreCapacitySuspect: {qStoreSize},
	invariant.NameStoreSlow: {
		`max(tikv_raftstore_slow_score) by (instance)`,
		`histogram_quantile(0.99, sum(rate(tikv_raftstore_append_log_duration_seconds_bucket[1m])) by (le, instance))`,
		`histogram_quantile(0.99, sum(rate(tikv_raftstore_apply_log_duration_seconds_bucket[1m])) by (le, instance))`,
	},
	invariant.NameStoreDisconnected: {qTiKVUp, qTiKVRestarts},
	invariant.NameStoreUnhealthy:    {qTiKVUp, qTiKVRestarts},
	invariant.NameStoreDown:         {qTiKVUp, qTiKVRestarts, qPDRegionsStatus},
	invariant.NameStoreOfflineStuck: {
		qRegions, qOperators,
		`histogram_quantile(0.99, sum(rate(tikv_raftstore_snapshot_duration_seconds_bucket[5m])) by (le, instance, type))`,
	},
	invariant.NameUpStoresBelowReplicas: {qTiKVUp, qPDRegionsStatus},
	invariant.NameRegionMissPeer:        {qPDRegionsStatus, qOperators},
	invariant.NameRegionExtraPeer:       {qPDRegionsStatus, qOperators},
	invariant.NameRegionOfflinePeer:     {qPDRegionsStatus, qOperators},
	invariant.NameRegionDownPeer: {
		qPDRegionsStatus,
		`sum(rate(tikv_server_report_failure_msg_total{type="unreachable"}[10m])) by (store_id)`,
	},
	invariant.NameRegionPendingPeer: {
		qPDRegionsStatus,
		`histogram_quantile(0.99, sum(rate(tikv_raftstore_log_lag_bucket[1m])) by (le, instance))`,
	},
	invariant.NamePDUnhealthy: {`etcd_server_has_leader`, `up{job=~".*pd.*"}`,
		`histogram_quantile(0.99, sum(rate(etcd_disk_wal_fsync_duration_seconds_bucket[1m])) by (instance, le))`},
	invariant.NamePDNoLeader:    {`etcd_server_has_leader`, `up{job=~".*pd.*"}`},
	invariant.NamePDUnreachable: {`up{job=~".*pd.*"}`},
}

// prometheus runs the ticket's queries at the snapshot's time and renders
// them into c.Prometheus; failures are noted in the text and in
// c.SourceErrors["prometheus"].
func (g *Gatherer) prometheus(ctx context.Context, t ticket.Ticket, snap *tikv.Snapshot, c *diagnose.Context) {
	queries := append(append([]string(nil), g.opts.Queries[""]...), g.opts.Queries[t.Invariant]...)
	var b strings.Builder
	var failed []string
	for _, q := range queries {
		qctx, cancel := context.WithTimeout(ctx, g.opts.PromTimeout)
		v, err := g.opts.Prom.Query(qctx, q, snap.Time)
		cancel()
		fmt.Fprintf(&b, "# %s\n", q)
		if err != nil {
			fmt.Fprintf(&b, "# error: %v\n", err)
			failed = append(failed, err.Error())
			continue
		}
		b.WriteString(renderValue(v))
		if b.Len() > maxPromBytes {
			break
		}
	}
	text := b.String()
	if len(text) > maxPromBytes {
		text = text[:maxPromBytes] + "\n# (truncated)\n"
	}
	c.Prometheus = text
	if len(failed) > 0 {
		if c.SourceErrors == nil {
			c.SourceErrors = map[string]string{}
		}
		c.SourceErrors["prometheus"] = strings.Join(failed, "; ")
		g.log.Warn("prometheus queries failed", "ticket", t.ID, "failed", len(failed), "of", len(queries))
	}
}

// renderValue renders a query result as "metric{labels} value" lines,
// sorted, at most maxPromSeries of them.
func renderValue(v model.Value) string {
	switch val := v.(type) {
	case model.Vector:
		lines := make([]string, 0, len(val))
		for _, s := range val {
			lines = append(lines, fmt.Sprintf("%s %s", s.Metric, s.Value))
		}
		return joinLines(lines)
	case model.Matrix:
		lines := make([]string, 0, len(val))
		for _, s := range val {
			if n := len(s.Values); n > 0 {
				lines = append(lines, fmt.Sprintf("%s %s", s.Metric, s.Values[n-1].Value))
			}
		}
		return joinLines(lines)
	case nil:
		return "# (no data)\n"
	default:
		return v.String() + "\n"
	}
}

func joinLines(lines []string) string {
	if len(lines) == 0 {
		return "# (no series)\n"
	}
	sort.Strings(lines)
	extra := 0
	if len(lines) > maxPromSeries {
		extra = len(lines) - maxPromSeries
		lines = lines[:maxPromSeries]
	}
	out := strings.Join(lines, "\n") + "\n"
	if extra > 0 {
		out += fmt.Sprintf("# (%d more series)\n", extra)
	}
	return out
}
