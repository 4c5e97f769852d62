package tikvsim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultCPUCores is the write-path CPU (cores) a store's status server
// reports until SetCPU changes it: a lightly loaded TiKV.
const DefaultCPUCores = 0.2

// Thread CPU as TiKV exports it (components/tikv_util/src/metrics/
// threads_linux.rs): tikv_thread_cpu_seconds_total{name, tid}, a counter
// of user+system CPU seconds per thread, the name being the thread's name
// with every character outside [A-Za-z0-9_] replaced by '_'
// ("raftstore-1-0" -> "raftstore_1_0", "grpc-server-0" -> "grpc_server_0").
var cpuDesc = prometheus.NewDesc("tikv_thread_cpu_seconds_total",
	"Total user and system CPU time spent in seconds by threads.", []string{"name", "tid"}, nil)

// writePathThreads split a store's SetCPU rate over TiKV's write-path
// thread pools (raftstore, apply, scheduler workers, gRPC); the shares
// sum to 1. Their names match the pools PingCAP's dashboards and alert
// rules select (name=~"(raftstore|rs)_.*", "apply_.*", "sched_.*",
// "grpc_.*").
var writePathThreads = []struct {
	name  string // %d = store id where present
	share float64
}{
	{"raftstore_%d_0", 0.35},
	{"apply_0", 0.25},
	{"sched_worker_pool_0", 0.15},
	{"grpc_server_0", 0.25},
}

// otherThreadCores is the fixed CPU of a thread outside the write path
// ("pd_worker"), so that a query selecting the write-path pools has
// something to leave out.
const otherThreadCores = 0.01

// cpuMeter integrates a CPU rate into a counter; guarded by Sim.mu.
type cpuMeter struct {
	cores float64   // current rate, CPU seconds per second
	base  float64   // CPU seconds accumulated up to since
	since time.Time // when cores last changed
}

func (c *cpuMeter) total(now time.Time) float64 {
	if c.since.IsZero() {
		return c.base
	}
	return c.base + c.cores*now.Sub(c.since).Seconds()
}

func (c *cpuMeter) set(cores float64, now time.Time) {
	c.base = c.total(now)
	c.cores, c.since = cores, now
}

// startStatusServer makes st's status_address a real loopback listener
// serving GET /metrics (TiKV's status server, port 20180 in production),
// with its CPU at DefaultCPUCores. Called before st registers with PD.
func (s *Sim) startStatusServer(st *store, now time.Time) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("status server of store %d: %w", st.meta.GetId(), err)
	}
	st.meta.StatusAddress = ln.Addr().String()
	st.cpu = &cpuMeter{}
	st.cpu.set(DefaultCPUCores, now)
	st.other = &cpuMeter{}
	st.other.set(otherThreadCores, now)
	reg := prometheus.NewRegistry()
	reg.MustRegister(storeCPUCollector{s: s, st: st})
	mux := http.NewServeMux()
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		down := !st.alive()
		s.mu.Unlock()
		if down {
			// A stopped TiKV serves nothing: the scrape fails.
			http.Error(w, "store stopped", http.StatusServiceUnavailable)
			return
		}
		metrics.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	st.status = srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// stopStatusServers closes every store's status server (Close).
func (s *Sim) stopStatusServers() {
	s.mu.Lock()
	var srvs []*http.Server
	for _, st := range s.stores {
		if st.status != nil {
			srvs = append(srvs, st.status)
		}
	}
	s.mu.Unlock()
	for _, srv := range srvs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
}

// storeCPUCollector exports one store's thread CPU counters at scrape time.
type storeCPUCollector struct {
	s  *Sim
	st *store
}

func (c storeCPUCollector) Describe(ch chan<- *prometheus.Desc) { ch <- cpuDesc }

func (c storeCPUCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	c.s.mu.Lock()
	total, other := c.st.cpu.total(now), c.st.other.total(now)
	id := c.st.meta.GetId()
	c.s.mu.Unlock()
	for i, t := range writePathThreads {
		name := t.name
		if i == 0 {
			name = fmt.Sprintf(t.name, id)
		}
		ch <- prometheus.MustNewConstMetric(cpuDesc, prometheus.CounterValue, total*t.share, name, strconv.Itoa(1000+i))
	}
	ch <- prometheus.MustNewConstMetric(cpuDesc, prometheus.CounterValue, other, "pd_worker", strconv.Itoa(1000+len(writePathThreads)))
}

// SetCPU sets the CPU rate, in cores (CPU seconds per second), that store
// storeID's write-path thread pools (raftstore, apply, scheduler, gRPC)
// burn from now on, as exported on its status server's /metrics in
// tikv_thread_cpu_seconds_total. It needs Config.StatusServer. Errors:
// ErrStoreNotFound, ErrInvalidArgument (negative, NaN or infinite cores, or
// no status server).
func (s *Sim) SetCPU(storeID uint64, cores float64) error {
	if cores < 0 || cores != cores || cores > 1e6 {
		return fmt.Errorf("%w: cpu cores %v, want >= 0", ErrInvalidArgument, cores)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return err
	}
	if st.cpu == nil {
		return fmt.Errorf("%w: store %d has no status server (Config.StatusServer)", ErrInvalidArgument, storeID)
	}
	st.cpu.set(cores, time.Now())
	return nil
}

// StatusAddress returns store storeID's status_address (host:port), the
// address its /metrics is served at with Config.StatusServer. Errors:
// ErrStoreNotFound.
func (s *Sim) StatusAddress(storeID uint64) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.storeLocked(storeID)
	if err != nil {
		return "", err
	}
	return st.meta.GetStatusAddress(), nil
}

// PauseStoreHeartbeats stops (paused) or resumes every store's store
// heartbeats; region heartbeats go on. TiKV sends one every 10 s
// (raftstore.pd-store-heartbeat-tick-interval); a pause freezes what PD
// knows of the stores, e.g. across a PD leader change, whose new leader
// shows the store records it loaded from storage (last_heartbeat persisted
// at most every 5 minutes, no stats) until stores heartbeat again. Resuming
// heartbeats at once.
func (s *Sim) PauseStoreHeartbeats(paused bool) {
	s.mu.Lock()
	s.hbPaused = paused
	s.mu.Unlock()
	if !paused {
		s.kickStoreHeartbeats()
	}
}
