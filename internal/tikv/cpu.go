package tikv

import (
	"context"
	"time"
)

// SourceStoreCPU names the Prometheus read of StoreCPUQuery in
// Snapshot.Errors.
const SourceStoreCPU = "prometheus/store-cpu"

// StoreCPUQuery is the PromQL WithStoreCPU reads: the CPU (cores) of each
// TiKV instance's write-path thread pools — raftstore (rs_ in TiKV >= 6.x
// store pools), apply, scheduler workers and gRPC — from TiKV's
// tikv_thread_cpu_seconds_total{name,tid} (thread names with '-' turned
// into '_'). The pools are those of PingCAP's tikv.rules.yml
// (TiKV_raftstore_thread_cpu_seconds_total: name=~"(raftstore|rs)_.*";
// apply_.*) and of the TiKV-Details dashboard's thread CPU panels.
const StoreCPUQuery = `sum(rate(tikv_thread_cpu_seconds_total{name=~"(raftstore|rs|apply|sched|grpc)_.*"}[1m])) by (instance)`

// storeCPUTimeout bounds the Prometheus read of one cycle.
const storeCPUTimeout = 5 * time.Second

// WithStoreCPU returns collect extended with the per-store write-path CPU
// from Prometheus (Snapshot.StoreCPU): StoreCPUQuery evaluated at
// Prometheus' own clock, mapped to stores by status_address (then
// address). With a nil p (no Prometheus configured) it returns collect
// unchanged. A failed query is recorded in Snapshot.Errors under
// SourceStoreCPU and leaves StoreCPU nil; it never fails the collection.
func WithStoreCPU(collect func(ctx context.Context) (*Snapshot, error), p *Prom) func(ctx context.Context) (*Snapshot, error) {
	if p == nil {
		return collect
	}
	return func(ctx context.Context) (*Snapshot, error) {
		s, err := collect(ctx)
		if err != nil || s == nil {
			return s, err
		}
		qctx, cancel := context.WithTimeout(ctx, storeCPUTimeout)
		defer cancel()
		cpu, err := p.ByStore(qctx, StoreCPUQuery, time.Time{}, s.Stores)
		if err != nil {
			if s.Errors == nil {
				s.Errors = map[string]error{}
			}
			s.Errors[SourceStoreCPU] = err
			return s, nil
		}
		s.StoreCPU = cpu
		return s, nil
	}
}
