// Package testcluster runs a real pd-server (child process) with simulated
// TiKV stores (internal/tikvsim, in-process) on free loopback ports, for
// tests and demos. [Start] ties the cluster to a test (t.Cleanup teardown);
// [New] + [Cluster.Close] share one cluster per package from TestMain.
//
// The pd-server binary comes from $PD_SERVER_BIN, else the cache path of
// scripts/build-pd.sh, else that script is run (see [PDServerBin]).
package testcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikvsim"
)

// PDKeyspaceSplits is how many regions PD adds right after start by
// splitting at the default keyspace's boundaries (region labeler rule
// keyspaces/0: keys 7200000000000000FB, 7200000100000000FB,
// 7800000000000000FB, 7800000100000000FB). With the simulator's key layout
// all four fall inside its regions, so PD ends with Options.Regions+4.
const PDKeyspaceSplits = 4

// Options configures a test cluster. Zero fields take the defaults noted.
type Options struct {
	// Stores is the number of simulated TiKV stores (default 3).
	Stores int
	// Regions is the number of regions the simulator creates (default 10).
	// PD splits PDKeyspaceSplits more at keyspace boundaries right after
	// start; Start waits for those splits, so Cluster.Regions = Regions+4.
	Regions int
	// Replicas per region (default min(3, Stores)).
	Replicas int
	// SkewLeaders puts every leader on the first store.
	SkewLeaders bool
	// PauseBalanceLeader starts PD without its balance-leader scheduler, so
	// a leader skew persists (GET /pd/api/v1/schedulers won't list it).
	PauseBalanceLeader bool
	// DisableSchedulers lists other default PD schedulers to start without:
	// "balance-region", "balance-leader", "hot-region", "evict-slow-store"
	// (a "-scheduler" suffix is accepted).
	DisableSchedulers []string
	// RegionHeartbeat is the simulator's periodic region heartbeat interval
	// (default 60 s, as TiKV). Changed regions heartbeat at once anyway.
	RegionHeartbeat time.Duration
	// StoreHeartbeat is the store heartbeat interval (default 10 s, as TiKV;
	// keep it under 20 s or PD shows stores Disconnected).
	StoreHeartbeat time.Duration
	// HotHeartbeat is how often regions with a write flow heartbeat (default 2 s).
	HotHeartbeat time.Duration
	// Capacity per store in bytes (default 2 TiB); RegionSize per initial
	// region in bytes (default 96 MiB).
	Capacity   uint64
	RegionSize uint64
	// StoreVersion is the TiKV version stores report (default "8.1.0").
	StoreVersion string
	// StoreLabels, if set, labels store i with StoreLabels[i%len].
	StoreLabels []map[string]string
	// MaxStoreDownTime sets PD's schedule.max-store-down-time (default PD's 30m).
	MaxStoreDownTime time.Duration
	// Schedule holds extra PD [schedule] config keys, as in PD's TOML, e.g.
	// {"leader-schedule-limit": 8, "split-merge-interval": "1h"}; a
	// time.Duration value is written as a duration string. The generated
	// config sets patrol-region-interval to DefaultPatrolRegionInterval
	// unless given here.
	Schedule map[string]any
	// Replication holds PD [replication] config keys, e.g. {"max-replicas": 3}.
	Replication map[string]any
	// NoControlAPI skips serving the simulator's HTTP control API.
	NoControlAPI bool
	// StatusServers gives every simulated store a real status server at
	// its status_address serving TiKV's thread CPU metrics
	// (tikvsim.Config.StatusServer; set the CPU with Sim.SetCPU).
	StatusServers bool
	// ControlAddr is where the control API listens (default 127.0.0.1:0, a
	// free port).
	ControlAddr string
	// PDClientPort and PDPeerPort fix PD's loopback ports (default: free ports).
	PDClientPort, PDPeerPort int
	// StartTimeout bounds setup (default 60 s, plus a pd-server build if needed).
	StartTimeout time.Duration
	// Logger receives simulator and cluster logs (default: discard).
	Logger *slog.Logger
}

// Cluster is a running PD with simulated stores.
type Cluster struct {
	// PDURL is PD's client URL, http://127.0.0.1:<port> (HTTP API and gRPC).
	PDURL string
	// ControlURL is the simulator's control API, http://127.0.0.1:<port>
	// ("" with Options.NoControlAPI). See docs/simulator.md.
	ControlURL string
	// Sim is the in-process simulator; call its fault methods directly.
	Sim *tikvsim.Sim
	// Dir holds PD's data, config (pd.toml) and log (pd.log).
	Dir string
	// Regions is the region count PD reported when Start returned
	// (Options.Regions + PDKeyspaceSplits).
	Regions int

	opts    Options
	http    *http.Client
	pd      *pdProcess
	pdBin   string
	ports   [2]int
	cfgPath string
	control *http.Server
	ownDir  bool
	log     *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// Start starts a cluster for a test and registers its teardown with
// t.Cleanup (also run when the test fails). It calls t.Fatal on error; it
// never skips.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := newCluster(context.Background(), opts, t.TempDir(), false)
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("testcluster close: %v", err)
		}
		if t.Failed() {
			t.Logf("testcluster: PD log tail (%s):\n%s", c.pd.logPath, logTail(c.pd.logPath))
		}
	})
	return c
}

// New starts a cluster in a fresh temp dir; the caller must Close it (for
// one shared cluster per package from TestMain). ctx bounds setup only.
func New(ctx context.Context, opts Options) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "testcluster-")
	if err != nil {
		return nil, fmt.Errorf("testcluster: %w", err)
	}
	c, err := newCluster(ctx, opts, dir, true)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func newCluster(ctx context.Context, opts Options, dir string, ownDir bool) (*Cluster, error) {
	if opts.Stores == 0 {
		opts.Stores = tikvsim.DefaultStores
	}
	if opts.Regions == 0 {
		opts.Regions = tikvsim.DefaultRegions
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bin, err := PDServerBin(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := pdConfig(opts)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "pd.toml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("testcluster: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	if opts.PDClientPort != 0 {
		ports[0] = opts.PDClientPort
	}
	if opts.PDPeerPort != 0 {
		ports[1] = opts.PDPeerPort
	}
	c := &Cluster{
		PDURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		Dir:     dir,
		opts:    opts,
		http:    &http.Client{Timeout: 10 * time.Second},
		pdBin:   bin,
		ports:   [2]int{ports[0], ports[1]},
		cfgPath: cfgPath,
		ownDir:  ownDir,
		log:     logger.With("component", "testcluster"),
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := c.setup(ctx); err != nil {
		if c.pd != nil && !strings.Contains(err.Error(), "log tail") {
			err = fmt.Errorf("%w; PD log tail:\n%s", err, logTail(c.pd.logPath))
		}
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) setup(ctx context.Context) error {
	t0 := time.Now()
	var err error
	for attempt := 1; ; attempt++ {
		c.pd, err = startPD(c.pdBin, c.Dir, c.ports[0], c.ports[1], c.cfgPath)
		if err != nil {
			return err
		}
		err = waitPDReady(ctx, c, c.pd)
		if err == nil {
			break
		}
		// A port taken between freePorts and pd-server's bind: start again
		// on new ports with a clean data dir (ports fixed by Options are
		// not changed).
		fixed := c.opts.PDClientPort != 0 || c.opts.PDPeerPort != 0
		if fixed || attempt == 3 || !c.pd.exited() || !addrInUse(c.pd.logPath) {
			return err
		}
		c.log.Warn("pd-server port taken before bind; retrying on new ports", "attempt", attempt)
		ports, perr := freePorts(2)
		if perr != nil {
			return err
		}
		c.ports = [2]int{ports[0], ports[1]}
		c.PDURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		if rerr := os.RemoveAll(filepath.Join(c.Dir, "data")); rerr != nil {
			return err
		}
		_ = os.Remove(c.pd.logPath)
	}
	tPD := time.Since(t0)
	c.Sim, err = tikvsim.Start(ctx, tikvsim.Config{
		PD:              c.PDURL,
		Stores:          c.opts.Stores,
		Regions:         c.opts.Regions,
		Replicas:        c.opts.Replicas,
		SkewLeaders:     c.opts.SkewLeaders,
		RegionHeartbeat: c.opts.RegionHeartbeat,
		StoreHeartbeat:  c.opts.StoreHeartbeat,
		HotHeartbeat:    c.opts.HotHeartbeat,
		Capacity:        c.opts.Capacity,
		RegionSize:      c.opts.RegionSize,
		Version:         c.opts.StoreVersion,
		Labels:          c.opts.StoreLabels,
		StatusServer:    c.opts.StatusServers,
		Logger:          c.log,
	})
	if err != nil {
		return fmt.Errorf("testcluster: start simulator: %w", err)
	}
	if !c.opts.NoControlAPI {
		addr := c.opts.ControlAddr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("testcluster: control API listen: %w", err)
		}
		c.ControlURL = "http://" + ln.Addr().String()
		c.control = &http.Server{Handler: c.Sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = c.control.Serve(ln) }()
	}
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	c.log.Info("cluster ready", "pd", c.PDURL, "stores", c.opts.Stores, "regions", c.Regions,
		"pd_start", tPD.Round(time.Millisecond), "total", time.Since(t0).Round(time.Millisecond))
	return nil
}

// waitReady waits until PD reports every simulated store Up with its
// regions, every region known including PD's own keyspace splits
// (Options.Regions + PDKeyspaceSplits), the simulator agreeing on the count,
// and no split operator pending.
func (c *Cluster) waitReady(ctx context.Context) error {
	var last string
	err := c.WaitFor(ctx, func() (bool, error) {
		var stores pd.StoresInfo
		if err := c.GetJSON(ctx, "/stores", &stores); err != nil {
			last = err.Error()
			return false, nil
		}
		up := 0
		for _, s := range stores.Stores {
			if s.Store.StateName == "Up" && s.Status.RegionCount > 0 {
				up++
			}
		}
		if up < c.opts.Stores {
			last = fmt.Sprintf("%d of %d stores Up with regions", up, c.opts.Stores)
			return false, nil
		}
		var count struct {
			Count int `json:"count"`
		}
		if err := c.GetJSON(ctx, "/regions/count", &count); err != nil {
			last = err.Error()
			return false, nil
		}
		if want := c.opts.Regions + PDKeyspaceSplits; count.Count < want {
			last = fmt.Sprintf("PD knows %d of %d regions (%d + %d keyspace splits)", count.Count, want, c.opts.Regions, PDKeyspaceSplits)
			return false, nil
		}
		// PD's keyspace splits: wait until the split operators are done so
		// tests see a stable region layout.
		if n := len(c.Sim.RegionIDs()); n != count.Count {
			last = fmt.Sprintf("PD has %d regions, simulator %d", count.Count, n)
			return false, nil
		}
		var ops []string
		if err := c.GetJSON(ctx, "/operators", &ops); err != nil {
			last = err.Error()
			return false, nil
		}
		for _, op := range ops {
			if strings.Contains(op, "split") {
				last = "split operator pending: " + op
				return false, nil
			}
		}
		c.Regions = count.Count
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("testcluster: cluster not ready: %w (last: %s)", err, last)
	}
	return nil
}

// Close stops the control API, the simulator and pd-server (the whole
// process group: SIGTERM, SIGKILL after 5 s) and removes the temp dir made
// by New. It is idempotent and safe after a failed start.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		if c.control != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = c.control.Shutdown(ctx)
			cancel()
		}
		if c.Sim != nil {
			if err := c.Sim.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if c.pd != nil {
			if err := c.pd.stop(5 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if c.ownDir {
			if err := os.RemoveAll(c.Dir); err != nil {
				errs = append(errs, err)
			}
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// StopPD stops pd-server (the simulator keeps retrying). Use StartPD to
// bring it back with the same data and ports.
func (c *Cluster) StopPD() error {
	if c.pd == nil || c.pd.exited() {
		return nil
	}
	return c.pd.stop(5 * time.Second)
}

// StartPD restarts a stopped pd-server with the same data dir, ports and
// config, and waits until its HTTP API answers. The simulator reconnects.
func (c *Cluster) StartPD(ctx context.Context) error {
	if c.pd != nil && !c.pd.exited() {
		return nil
	}
	p, err := startPD(c.pdBin, c.Dir, c.ports[0], c.ports[1], c.cfgPath)
	if err != nil {
		return err
	}
	c.pd = p
	return waitPDReady(ctx, c, p)
}

// WaitFor polls cond every 100 ms until it returns true, returns an error,
// or ctx ends (then the error wraps ctx.Err()). Use a ctx with a deadline.
func (c *Cluster) WaitFor(ctx context.Context, cond func() (bool, error)) error {
	return WaitFor(ctx, cond)
}

// WaitFor polls cond every 100 ms until it returns true, returns an error,
// or ctx ends (then the error wraps ctx.Err()).
func WaitFor(ctx context.Context, cond func() (bool, error)) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// HTTPError is a non-2xx answer from PD's HTTP API.
type HTTPError struct {
	// Method and URL are the request's.
	Method, URL string
	// Status is the HTTP status code (PD often uses 500 for "not found").
	Status int
	// Body is PD's answer, usually a JSON string.
	Body string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, strings.TrimSpace(e.Body))
}

// GetJSON GETs PD's API path under /pd/api/v1 (e.g. "/stores") and decodes
// the JSON body into out. Non-2xx answers are *HTTPError.
func (c *Cluster) GetJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// PostJSON POSTs body as JSON to PD's API path under /pd/api/v1 and decodes
// the answer into out (nil to ignore). Non-2xx answers are *HTTPError.
func (c *Cluster) PostJSON(ctx context.Context, path string, body, out any) error {
	return c.do(ctx, http.MethodPost, path, body, out)
}

// Delete sends DELETE to PD's API path under /pd/api/v1.
func (c *Cluster) Delete(ctx context.Context, path string) error {
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

func (c *Cluster) do(ctx context.Context, method, path string, body, out any) error {
	url := c.PDURL + "/pd/api/v1" + path
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s body: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return &HTTPError{Method: method, URL: url, Status: resp.StatusCode, Body: string(b)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, url, err)
	}
	return nil
}

// LeaderSpread returns max - min of the Up stores' leader counts in PD
// (GET /pd/api/v1/stores, status.leader_count).
func (c *Cluster) LeaderSpread(ctx context.Context) (int, error) {
	var st struct {
		Stores []struct {
			Store struct {
				StateName string `json:"state_name"`
			} `json:"store"`
			Status struct {
				LeaderCount int `json:"leader_count"`
			} `json:"status"`
		} `json:"stores"`
	}
	if err := c.GetJSON(ctx, "/stores", &st); err != nil {
		return 0, err
	}
	lo, hi := 1<<30, 0
	for _, s := range st.Stores {
		if s.Store.StateName == "Up" {
			lo, hi = min(lo, s.Status.LeaderCount), max(hi, s.Status.LeaderCount)
		}
	}
	if hi < lo {
		return 0, nil
	}
	return hi - lo, nil
}

// PauseScheduler pauses a PD scheduler (e.g. "balance-leader-scheduler")
// for d, rounded up to whole seconds; d = 0 resumes it
// (POST /pd/api/v1/schedulers/{name} {"delay": seconds}).
func (c *Cluster) PauseScheduler(ctx context.Context, name string, d time.Duration) error {
	secs := int64((d + time.Second - 1) / time.Second)
	return c.PostJSON(ctx, "/schedulers/"+name, map[string]int64{"delay": secs}, nil)
}

// SetStoreLimit sets the add-peer and remove-peer limit of every store, in
// operations per minute (POST /pd/api/v1/stores/limit; PD's default is 15).
// Raise it to make PD repair or move replicas quickly in tests.
func (c *Cluster) SetStoreLimit(ctx context.Context, perMinute float64) error {
	return c.PostJSON(ctx, "/stores/limit", map[string]float64{"rate": perMinute}, nil)
}
