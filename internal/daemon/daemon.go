// Package daemon wires the operator's long-running parts into the process
// `operator run` starts: the monitor loop (invariants -> tickets), the
// diagnosis runner (tickets -> diagnoses and proposals), the executor
// (approved proposals -> PD -> audit records), and an HTTP server with
// /metrics (Prometheus) and /healthz. It owns no logic of its own besides
// the wiring, the re-evaluation of a ticket after an execution, and the
// graceful shutdown.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/gather"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/monitor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// Defaults of the daemon's own timings.
const (
	// DiagnoseInterval is how often the diagnosis runner looks for open
	// tickets (a cheap indexed query).
	DiagnoseInterval = 2 * time.Second
	// ShutdownTimeout bounds the HTTP server's graceful shutdown.
	ShutdownTimeout = 5 * time.Second
)

// Options configure a Daemon.
type Options struct {
	// Config is the effective configuration (config.Resolve).
	Config config.Config
	// Version is reported by /healthz and operator_build_info.
	Version string
	// Logger receives structured logs; nil logs text to stderr.
	Logger *slog.Logger
	// Getenv reads the environment for the executor's fault injection
	// (executor.CrashEnv, tests only) and the LLM keys; nil is os.Getenv.
	Getenv func(string) string
	// OnListen, when not nil, is called with the HTTP server's address once
	// it listens (useful with a ":0" port).
	OnListen func(addr string)
}

// Daemon is a configured `operator run`. Create it with New and start it
// with Run.
type Daemon struct {
	opts Options
	cfg  config.Config
	log  *slog.Logger

	// state for /healthz
	mu      sync.Mutex
	started time.Time
	mon     *monitor.Monitor
	// health is /healthz's lock-free snapshot (alerting.go); lastCollect
	// the unix nanoseconds of the last successful PD collection.
	health      atomic.Pointer[healthSnap]
	lastCollect atomic.Int64
	ready       *readiness
	extra       func(mux *http.ServeMux)
	ha          *haState // nil without [ha] enabled
}

// New checks the configuration and returns a Daemon. It does no I/O.
func New(opts Options) (*Daemon, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	return &Daemon{opts: opts, cfg: opts.Config, log: opts.Logger}, nil
}

// Run opens (creating if needed) the database, starts the monitor, the
// diagnosis runner, the executor and the HTTP server, and blocks until ctx
// ends or a part fails fatally. On ctx's end (SIGINT/SIGTERM in `operator
// run`) it stops looking for new work, lets an execution in flight finish
// and record its outcome (the executor's own deadline bounds it), stops the
// HTTP server and closes the database; it then returns nil. Errors: the
// database cannot be opened, the listen address is taken, the PD client or
// the diagnosis backend cannot be built, or the executor's start-up
// recovery fails.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.cfg
	log := d.log
	st, err := store.Open(ctx, cfg.Database.Target(), store.Options{Create: true, Logger: log})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer st.Close()

	// The audit key signs every record; the checkpoint keeps the chain
	// head outside the database.
	keyDir := cfg.AuditKeyDir()
	key, err := auditkey.LoadOrCreate(keyDir)
	if err != nil {
		return err
	}
	auditHead := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "operator_audit_head_id",
		Help: "Id of the newest audit record this daemon appended (the chain head; compare with audit.checkpoint and operator audit verify).",
	}, []string{})
	st.SetAuditKey(key, auditkey.NewReplicaCheckpoint(keyDir, checkpointReplica(cfg), key), func(rec action.Record) {
		auditHead.WithLabelValues().Set(float64(rec.ID))
		log.Info("audit record appended", "record_id", rec.ID, "event", rec.Event, "action_id", rec.ProposalID, "hash", rec.Hash)
	})

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(d.opts.Version),
		auditHead,
	)

	crash, err := executor.NewCrasherFromEnv()
	if err != nil {
		return fmt.Errorf("%s: %w", executor.CrashEnv, err)
	}
	if crash != nil {
		log.Warn("fault injection enabled: the process kills itself during an execution", "env", executor.CrashEnv, "point", crash.Point())
	}

	// The PD client reports every request to the monitor's metrics (and to
	// the crash hook in tests); the monitor exists before any request.
	var mon *monitor.Monitor
	crashObs := crash.Observer()
	observer := func(method, path string, status int, dur time.Duration, n int64) {
		mon.ObservePDRequest(method, path, status, dur, n)
		if crashObs != nil {
			crashObs(method, path, status, dur, n)
		}
	}
	pdc, err := NewPDClient(cfg, pd.WithObserver(observer), pd.WithLogger(log.With("component", "pd")))
	if err != nil {
		return err
	}
	cluster := clusterGate{name: cfg.Cluster.Name}
	// The last cycle's snapshot, shared with diagnoses and re-checks
	// after an execution (issue 17).
	feed := NewSnapshotFeed()
	// The monitor reads through a Collector, which reuses the heavy
	// /regions/check lists while PD's own counts (its /metrics) say they did
	// not change (docs/monitor.md); a re-evaluation falling back to PD
	// always reads fresh.
	collector := tikv.NewCollector(pdc)
	// With [prometheus], each snapshot also carries the stores' TiKV
	// write-path CPU (hot_write_cpu_imbalance).
	var prom *tikv.Prom
	if cfg.Prometheus.URL != "" {
		if prom, err = tikv.NewProm(cfg.Prometheus.URL, nil); err != nil {
			return fmt.Errorf("prometheus: %w", err)
		}
	}
	via := func(read func(context.Context) (*tikv.Snapshot, error)) monitor.CollectFunc {
		return func(ctx context.Context) (*tikv.Snapshot, error) {
			if err := cluster.ensure(ctx, pdc, st, log); err != nil {
				return nil, err
			}
			started := time.Now()
			snap, err := read(ctx)
			if err == nil {
				d.lastCollect.Store(time.Now().UnixNano())
				feed.Publish(snap, started)
			}
			return snap, err
		}
	}
	collect := via(tikv.WithStoreCPU(collector.Collect, prom))
	fresh := via(tikv.WithStoreCPU(func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, pdc) }, prom))
	recentSnapshot := func(context.Context) *tikv.Snapshot { return feed.Recent(cfg.Monitor.Interval.Duration) }
	mon = monitor.New(monitor.Options{
		Interval:   cfg.Monitor.Interval.Duration,
		Invariants: invariant.Default(cfg.Invariants),
		Collect:    collect,
		Sink: monitorSink{st, log, func(ctx context.Context) error {
			// Bounded like a collect: a hanging PD must not hold the cycle.
			ctx, cancel := context.WithTimeout(ctx, cfg.Monitor.Interval.Duration)
			defer cancel()
			return cluster.ensure(ctx, pdc, st, log)
		}},
		Quiet:          cfg.Monitor.Quiet.Duration,
		UnreachableFor: cfg.Invariants.ForOf(invariant.NamePDUnreachable),
		Logger:         log,
		Registerer:     reg,
	})

	// The database belongs to one PD cluster: the monitor's first cycle
	// binds it (or refuses another cluster's, which stops the daemon with
	// store.ErrWrongCluster) before it writes anything from PD; the
	// executor claims nothing until then. Doing it there, not here, keeps
	// /healthz answering while PD hangs at start.

	catalog := tikv.NewCatalog(pdc, tikv.WithLogger(log.With("component", "action")), tikv.WithVerifyTimeout(cfg.Actions.ExecutionTimeout.Duration))
	backend, err := NewBackend(cfg, pdc, prom, d.opts.Getenv, log)
	if err != nil {
		return err
	}
	backend = maskErrors(backend, cfg.Secrets())
	runner := &diagnose.Runner{
		Source:       st,
		Gather:       gather.New(pdc, gather.Options{Prom: prom, Catalog: catalog, Logger: log, Snapshot: recentSnapshot}),
		Backend:      backend,
		Catalog:      catalog,
		Sink:         storeSink{st},
		ProposalTTL:  cfg.Actions.Expiry.Duration,
		TicketBudget: cfg.Diagnosis.TokenBudget,
		Rejected:     st.RejectedSinceAsked,
		Silenced:     silenceNote(silenceMatcher(cfg, st)),
		Logger:       log,
		Allow:        Allowed(),
		Fallback:     Fallback(cfg, log),
	}
	reeval := NewReevaluator(fresh, cfg.Invariants, time.Now)
	reeval.Feed = feed
	reeval.FeedWait = min(cfg.Monitor.Interval.Duration+DefaultSettleLag, DefaultFeedWait)
	var haSt *haState // [ha] enabled: several replicas, one leader (ha.go)
	var fence func(context.Context) error
	if cfg.HA.Enabled {
		haSt = newHAState(reg)
		fence = haSt.fence
		d.ha = haSt
	}
	exec := executor.New(executor.Options{
		Store:   st,
		Catalog: catalog,
		Capture: func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
			return tikv.CaptureState(ctx, pdc, params)
		},
		Reevaluate: reeval.Reevaluate,
		Holds:      reeval.Holds,
		Timeout:    cfg.Actions.ExecutionTimeout.Duration,
		MaxPerHour: cfg.Actions.MaxExecutionsPerHour,
		Policy:     PolicyOf(cfg),
		Verifier:   key.Public(),
		Logger:     log,
		Registerer: reg,
		Crash:      crash,
		Fence:      fence,
	})

	var ln net.Listener
	if cfg.Server.Listen != "" {
		if ln, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
			return fmt.Errorf("listen on %s for /metrics and /healthz: %w", cfg.Server.Listen, err)
		}
	}
	d.mu.Lock()
	d.started, d.mon = time.Now(), mon
	d.mu.Unlock()

	log.Info("operator started", "version", d.opts.Version, "pd", config.RedactURLs(cfg.PD.Endpoints), "db", st.Path(),
		"interval", cfg.Monitor.Interval.Duration, "quiet", cfg.Monitor.Quiet.Duration,
		"diagnosis", backend.Name(), "listen", cfg.Server.Listen, "tls", cfg.PD.CAPath != "" || cfg.PD.CertPath != "")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		fatalMu  sync.Mutex
		fatalErr error
	)
	fail := func(part string, err error) {
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		fatalMu.Lock()
		if fatalErr == nil {
			fatalErr = fmt.Errorf("%s: %w", part, err)
		}
		fatalMu.Unlock()
		log.Error("part failed; shutting down", "part", part, "err", err)
		cancel()
	}
	cluster.onWrong = func(err error) { fail("cluster identity", err) }
	goPart := func(part string, run func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail(part, run())
		}()
	}
	parts := leaderParts{
		"monitor":   mon.Run,
		"diagnosis": func(ctx context.Context) error { return runner.Run(ctx, DiagnoseInterval) },
		"executor":  exec.Run,
		// Old resolved history, never the audit trail (retention.go).
		"retention": func(ctx context.Context) error { return runRetention(ctx, cfg.Retention, st, log) },
	}
	if haSt != nil {
		// Only the elected leader runs them, with its term (ha.go).
		goPart("leader election", func() error {
			return runHA(ctx, cfg, pdc, st, &cluster, exec.Name(), haSt, parts, log)
		})
	} else {
		for part, run := range parts {
			goPart(part, func() error { return run(ctx) })
		}
	}
	apiSrv, err := newAPI(cfg, st, exec, keyDir, d.opts.Version, log)
	if err != nil {
		return err
	}
	// Notifications out, alerts in, health (alerting.go).
	notifier := newNotifier(cfg, st, exec, reg, log)
	reg.MustRegister(newGauges(st, &d.lastCollect, notifier.sinks))
	d.ready = newReadiness(cfg, pdc, st)
	notifier.initAlerts(cfg, st, apiSrv, log)
	d.extra = func(mux *http.ServeMux) { notifier.routes(mux, cfg) }
	if d.extra, err = withConsole(d.extra, cfg, st, exec, catalog, pdc, apiSrv, keyDir, log); err != nil {
		return err
	}
	goPart("notify", func() error { return notifier.deliverer.Run(ctx) })
	goPart("alert links", func() error { return notifier.alerts.RunRelink(ctx) })
	goPart("health", func() error { return d.refreshHealth(ctx, mon) })
	var sock *http.Server
	if path := cfg.SocketPath(); path != "" {
		sln, err := listenUnix(path)
		if err != nil {
			return err
		}
		sock = &http.Server{Handler: apiSrv.Handler(), ReadHeaderTimeout: 5 * time.Second,
			ConnContext: api.UnixConnContext(auth.UnixPolicy{Roles: cfg.Auth.UnixRoles, Default: auth.Role(cfg.Auth.UnixDefaultRole), SelfUID: os.Getuid()})}
		log.Info("serving the API on the Unix socket", "socket", path)
		goPart("api socket", func() error {
			if err := sock.Serve(sln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		defer os.Remove(path)
	}
	var srv *http.Server
	if ln != nil {
		srv = &http.Server{Handler: d.handler(reg, cfg, backend.Name(), apiSrv.Handler()), ReadHeaderTimeout: 5 * time.Second}
		if d.opts.OnListen != nil {
			d.opts.OnListen(ln.Addr().String())
		}
		log.Info("serving /metrics and /healthz", "addr", ln.Addr().String())
		goPart("http", func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}

	<-ctx.Done()
	log.Info("shutting down: finishing work in flight")
	for _, hs := range []*http.Server{srv, sock} {
		if hs == nil {
			continue
		}
		sctx, scancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		if err := hs.Shutdown(sctx); err != nil {
			log.Warn("http shutdown", "err", err)
		}
		scancel()
	}
	wg.Wait()
	if left, err := st.Executing(context.Background()); err == nil && len(left) > 0 {
		// The executor records executions in flight before it returns;
		// anything left here is reported, and recovered as interrupted
		// at the next start.
		ids := make([]int64, len(left))
		for i, p := range left {
			ids[i] = p.ID
		}
		log.Warn("actions still executing at shutdown; the next start records them as interrupted", "action_ids", ids)
	}
	fatalMu.Lock()
	defer fatalMu.Unlock()
	if fatalErr != nil {
		return fatalErr
	}
	log.Info("operator stopped")
	return nil
}

// NewPDClient builds the daemon's PD client: endpoints, timeout, and the
// TLS files of [pd] when set.
func NewPDClient(cfg config.Config, opts ...pd.Option) (*pd.Client, error) {
	if cfg.PD.Timeout.Duration > 0 {
		opts = append(opts, pd.WithTimeout(cfg.PD.Timeout.Duration))
	}
	if cfg.PD.CAPath != "" || cfg.PD.CertPath != "" {
		opts = append(opts, pd.WithTLSFiles(cfg.PD.CAPath, cfg.PD.CertPath, cfg.PD.KeyPath))
	}
	c, err := pd.New(cfg.PD.Endpoints, opts...)
	if err != nil {
		return nil, fmt.Errorf("pd client: %w", err)
	}
	return c, nil
}

// monitorSink is the store as the monitor's Sink, plus one policy: when a
// ticket resolves, its proposals still awaiting approval expire, because
// they were made for a problem that is gone.
type monitorSink struct {
	*store.Store
	log *slog.Logger
	// bind binds the store to PD's cluster (clusterGate.ensure): the
	// monitor's memory is per cluster.
	bind func(context.Context) error
}

// LoadMonitorState binds the store to PD's cluster first (the memory is
// the cluster's), then reads it; while PD does not answer, the monitor
// retries at its next cycle.
func (s monitorSink) LoadMonitorState(ctx context.Context) (store.MonitorState, error) {
	if s.bind != nil {
		if err := s.bind(ctx); err != nil {
			return store.MonitorState{}, fmt.Errorf("cluster identity: %w", err)
		}
	}
	return s.Store.LoadMonitorState(ctx)
}

// Sweep resolves tickets (store.Sweep) and expires their pending proposals.
func (s monitorSink) Sweep(ctx context.Context, evaluated []string, violated map[string]bool, now time.Time, quiet time.Duration) ([]ticket.Ticket, error) {
	resolved, err := s.Store.Sweep(ctx, evaluated, violated, now, quiet)
	for _, t := range resolved {
		if n, xerr := s.ExpireTicketProposals(ctx, t.ID, now); xerr != nil {
			s.log.Warn("expiring proposals of a resolved ticket", "ticket_id", t.ID, "err", xerr)
		} else if n > 0 {
			s.log.Info("expired proposals of a resolved ticket", "ticket_id", t.ID, "proposals", n)
		}
	}
	return resolved, err
}

// storeSink adapts the store to the diagnosis runner's Sink.
type storeSink struct{ st *store.Store }

func (s storeSink) SaveDiagnosis(ctx context.Context, ticketID int64, r diagnose.Result, now time.Time) (int64, error) {
	in := store.DiagnosisInput{Markdown: r.Markdown, JSON: r.JSON, Proposal: r.Proposal}
	if r.Diagnosis != nil {
		in.Backend = r.Diagnosis.Backend
		in.InputTokens, in.OutputTokens = r.Diagnosis.Usage.InputTokens, r.Diagnosis.Usage.OutputTokens
	}
	return s.st.SaveDiagnosis(ctx, ticketID, in, now)
}

func (s storeSink) DiagnosisFailed(ctx context.Context, ticketID int64, errMsg string, next time.Time, spent diagnose.Usage) error {
	return s.st.DiagnosisFailedSpent(ctx, ticketID, errMsg, next, spent.InputTokens, spent.OutputTokens)
}

func buildInfo(version string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "operator_build_info",
		Help: "Always 1; the version label is the operator's version.",
	}, []string{"version"})
	g.WithLabelValues(version).Set(1)
	return g
}
