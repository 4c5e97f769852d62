// Command tikv-sim runs simulated TiKV stores against a real PD over PD's
// gRPC protocol, with a loopback HTTP control API for faults. With
// --start-pd it also starts a local pd-server (built by scripts/build-pd.sh
// when missing). See docs/simulator.md.
//
//	tikv-sim --pd http://127.0.0.1:2379 --stores 3 --regions 100 --control 127.0.0.1:20200
//	tikv-sim --start-pd --stores 3 --regions 100 --print-stores
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	units "github.com/docker/go-units"

	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikvsim"
)

type options struct {
	pd              string
	startPD         bool
	pdPort          int
	stores          int
	regions         int
	replicas        int
	control         string
	skewLeaders     bool
	pauseBalance    bool
	regionHeartbeat time.Duration
	storeHeartbeat  time.Duration
	hotHeartbeat    time.Duration
	capacity        string
	regionSize      string
	version         string
	maxStoreDown    time.Duration
	printStores     bool
	schedule        scheduleFlag
	logLevel        string
	setupTimeout    time.Duration
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("tikv-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.pd, "pd", "http://127.0.0.1:2379", "PD client URL (ignored with --start-pd)")
	fs.BoolVar(&o.startPD, "start-pd", false, "start a local pd-server on loopback first (binary from $PD_SERVER_BIN or scripts/build-pd.sh)")
	fs.IntVar(&o.pdPort, "pd-port", 2379, "with --start-pd: PD client port (0 = any free port); the peer port is any free port")
	fs.IntVar(&o.stores, "stores", tikvsim.DefaultStores, "number of simulated TiKV stores")
	fs.IntVar(&o.regions, "regions", 100, "number of regions to create (PD splits 4 more at keyspace boundaries)")
	fs.IntVar(&o.replicas, "replicas", 0, "peers per region (default min(3, stores))")
	fs.StringVar(&o.control, "control", "127.0.0.1:20200", "loopback address of the HTTP control API (empty = off)")
	fs.BoolVar(&o.skewLeaders, "skew-leaders", false, "put every leader on the first store")
	fs.BoolVar(&o.pauseBalance, "pause-balance-leader", false, "keep PD's balance-leader scheduler from undoing a skew (with --start-pd: PD starts without it; else it is paused via PD's API)")
	fs.DurationVar(&o.regionHeartbeat, "region-heartbeat", tikvsim.DefaultRegionHeartbeat, "periodic region heartbeat interval (changes are reported at once)")
	fs.DurationVar(&o.storeHeartbeat, "store-heartbeat", tikvsim.DefaultStoreHeartbeat, "store heartbeat interval (PD marks a store Disconnected after 20s without)")
	fs.DurationVar(&o.hotHeartbeat, "hot-heartbeat", tikvsim.DefaultHotHeartbeat, "heartbeat interval of regions with a write flow")
	fs.StringVar(&o.capacity, "capacity", "2TiB", "capacity of each store")
	fs.StringVar(&o.regionSize, "region-size", "96MiB", "approximate size of each initial region")
	fs.StringVar(&o.version, "version", tikvsim.DefaultVersion, "TiKV version the stores report (semver)")
	fs.DurationVar(&o.maxStoreDown, "max-store-down-time", 0, "with --start-pd: PD's schedule.max-store-down-time (default PD's 30m)")
	fs.Var(&o.schedule, "schedule", "with --start-pd: a PD [schedule] config key=value, repeatable (e.g. patrol-region-interval=10ms)")
	fs.BoolVar(&o.printStores, "print-stores", false, "print PD's GET /pd/api/v1/stores once ready")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&o.setupTimeout, "setup-timeout", 2*time.Minute, "give up if setup takes longer (plus a pd-server build)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tikv-sim: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "tikv-sim: --log-level %q: %v\n", o.logLevel, err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, o, logger, stdout); err != nil {
		logger.Error("tikv-sim failed", "err", err)
		return 1
	}
	return 0
}

// scheduleFlag collects --schedule key=value pairs; values that parse as
// integers, floats or booleans are typed for PD's TOML, others are strings
// (durations such as "30s").
type scheduleFlag struct{ m map[string]any }

func (f *scheduleFlag) String() string { return fmt.Sprint(f.m) }

func (f *scheduleFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	if f.m == nil {
		f.m = map[string]any{}
	}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		f.m[k] = i
	} else if x, err := strconv.ParseFloat(v, 64); err == nil {
		f.m[k] = x
	} else if b, err := strconv.ParseBool(v); err == nil {
		f.m[k] = b
	} else {
		f.m[k] = v
	}
	return nil
}

func parseSize(name, s string) (uint64, error) {
	v, err := units.RAMInBytes(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("--%s %q: want a size like 2TiB", name, s)
	}
	return uint64(v), nil
}

func serve(ctx context.Context, o options, logger *slog.Logger, stdout io.Writer) error {
	capacity, err := parseSize("capacity", o.capacity)
	if err != nil {
		return err
	}
	regionSize, err := parseSize("region-size", o.regionSize)
	if err != nil {
		return err
	}
	setupCtx, cancel := context.WithTimeout(ctx, o.setupTimeout)
	defer cancel()

	var (
		sim    *tikvsim.Sim
		pdURL  = o.pd
		ctlURL string
	)
	if o.startPD {
		c, err := testcluster.New(setupCtx, testcluster.Options{
			Stores: o.stores, Regions: o.regions, Replicas: o.replicas,
			SkewLeaders: o.skewLeaders, PauseBalanceLeader: o.pauseBalance,
			RegionHeartbeat: o.regionHeartbeat, StoreHeartbeat: o.storeHeartbeat, HotHeartbeat: o.hotHeartbeat,
			Capacity: capacity, RegionSize: regionSize, StoreVersion: o.version,
			MaxStoreDownTime: o.maxStoreDown,
			Schedule:         o.schedule.m,
			NoControlAPI:     o.control == "", ControlAddr: o.control,
			PDClientPort: o.pdPort,
			StartTimeout: o.setupTimeout,
			Logger:       logger,
		})
		if err != nil {
			return err
		}
		defer func() {
			if err := c.Close(); err != nil {
				logger.Error("stop cluster", "err", err)
			}
		}()
		sim, pdURL, ctlURL = c.Sim, c.PDURL, c.ControlURL
		logger.Info("pd-server started", "pd", pdURL, "dir", c.Dir, "regions", c.Regions)
	} else {
		sim, err = tikvsim.Start(setupCtx, tikvsim.Config{
			PD: o.pd, Stores: o.stores, Regions: o.regions, Replicas: o.replicas,
			SkewLeaders: o.skewLeaders, RegionHeartbeat: o.regionHeartbeat,
			StoreHeartbeat: o.storeHeartbeat, HotHeartbeat: o.hotHeartbeat,
			Capacity: capacity, RegionSize: regionSize, Version: o.version, Logger: logger,
		})
		if err != nil {
			return err
		}
		defer sim.Close()
		if o.control != "" {
			ln, err := net.Listen("tcp", o.control)
			if err != nil {
				return fmt.Errorf("control API: %w", err)
			}
			srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Close()
			ctlURL = "http://" + ln.Addr().String()
		}
		if o.pauseBalance {
			if err := pauseBalanceLeader(setupCtx, pdURL); err != nil {
				return err
			}
			if o.skewLeaders {
				n, err := sim.MoveLeaders(sim.StoreIDs()[0])
				if err != nil {
					return err
				}
				logger.Info("leaders moved back to the first store", "moved", n)
			}
		}
	}
	logger.Info("tikv-sim running", "pd", pdURL, "control", ctlURL, "stores", sim.StoreIDs(), "setup", sim.SetupDuration().Round(time.Millisecond))
	if o.printStores {
		if err := printStores(setupCtx, pdURL, stdout); err != nil {
			return err
		}
	}
	<-ctx.Done()
	logger.Info("stopping")
	return nil
}

// pauseBalanceLeader waits until PD has created balance-leader-scheduler
// (after the first heartbeats) and pauses it for ten years
// (POST /pd/api/v1/schedulers/{name} {"delay": seconds}).
func pauseBalanceLeader(ctx context.Context, pdURL string) error {
	base := strings.TrimSuffix(pdURL, "/") + "/pd/api/v1/schedulers"
	for {
		err := func() error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var names []string
			if err := json.NewDecoder(resp.Body).Decode(&names); err != nil {
				return err
			}
			for _, n := range names {
				if n == "balance-leader-scheduler" {
					return nil
				}
			}
			return errors.New("not created yet")
		}()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for balance-leader-scheduler: %w (%v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	body := strings.NewReader(`{"delay": ` + strconv.Itoa(10*365*24*3600) + `}`)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/balance-leader-scheduler", body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("pause balance-leader-scheduler: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("pause balance-leader-scheduler: %s: %s", resp.Status, b)
	}
	return nil
}

func printStores(ctx context.Context, pdURL string, stdout io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(pdURL, "/")+"/pd/api/v1/stores", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET /stores: %w", err)
	}
	defer resp.Body.Close()
	_, err = io.Copy(stdout, resp.Body)
	return err
}
