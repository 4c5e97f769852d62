// Package tikvsim simulates TiKV stores against a real PD server over PD's
// gRPC protocol (kvproto pdpb): it bootstraps the cluster, registers N stores,
// sends store heartbeats and one region heartbeat stream per store, and carries
// out the operators PD sends back (transfer leader, conf changes incl. joint
// consensus, split, merge). Faults (stopped store, low space, slow store, hot
// region, pending/down peers) are injected at run time through methods on
// [Sim] or the loopback HTTP control API returned by [Sim.Handler].
//
// The protocol rules it follows are in shared/pd-sim-notes.md and were
// checked against PD v8.1 (github.com/tikv/pd at 7179657d129b).
package tikvsim

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Errors returned by the simulator. Callers branch on them with errors.Is.
var (
	// ErrInvalidConfig means Config failed validation.
	ErrInvalidConfig = errors.New("tikvsim: invalid config")
	// ErrStoreNotFound means a store ID is not one of the simulated stores.
	ErrStoreNotFound = errors.New("store not found")
	// ErrRegionNotFound means a region ID is unknown to the simulator.
	ErrRegionNotFound = errors.New("region not found")
	// ErrPeerNotFound means a region has no peer on the given store.
	ErrPeerNotFound = errors.New("peer not found")
	// ErrInvalidArgument means a fault parameter is out of range.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrAlreadyBootstrapped means PD already holds a cluster; the
	// simulator only starts against a fresh PD.
	ErrAlreadyBootstrapped = errors.New("PD cluster already bootstrapped")
	// ErrClosed means the simulator was closed.
	ErrClosed = errors.New("tikvsim: closed")
)

// Defaults applied by Config for zero fields.
const (
	DefaultStores          = 3
	DefaultRegions         = 10
	DefaultReplicas        = 3
	DefaultRegionHeartbeat = 60 * time.Second // TiKV raftstore.pd-heartbeat-tick-interval
	DefaultStoreHeartbeat  = 10 * time.Second // TiKV raftstore.pd-store-heartbeat-tick-interval
	DefaultHotHeartbeat    = 2 * time.Second
	DefaultCapacity        = 2 << 40  // 2 TiB per store
	DefaultRegionSize      = 96 << 20 // 96 MiB, above max-merge-region-size so PD does not merge
	DefaultRegionKeys      = 960_000
	DefaultVersion         = "8.1.0"
)

// Config describes the simulated stores. Zero fields take the defaults above.
type Config struct {
	// PD is PD's client URL, "http://127.0.0.1:2379" (gRPC is served there).
	PD string
	// Stores is the number of simulated TiKV stores (default 3).
	Stores int
	// Regions is the number of regions to create at bootstrap (default 10).
	// PD then splits some of them at keyspace boundaries (4 extra regions).
	Regions int
	// Replicas is the number of peers per region (default min(3, Stores)).
	Replicas int
	// SkewLeaders puts a peer and the leader of every region on the first
	// store (lowest store ID); otherwise leaders are spread round-robin.
	SkewLeaders bool
	// RegionHeartbeat is the periodic region heartbeat interval (default
	// 60 s like TiKV). Regions also heartbeat at once when their state changes.
	RegionHeartbeat time.Duration
	// StoreHeartbeat is the store heartbeat interval (default 10 s like TiKV).
	StoreHeartbeat time.Duration
	// HotHeartbeat is how often a region with a write flow heartbeats
	// (default 2 s); each report claims a 60 s interval so PD's hot cache
	// (which ignores shorter reports) counts it.
	HotHeartbeat time.Duration
	// Capacity is each store's capacity in bytes (default 2 TiB).
	Capacity uint64
	// RegionSize is each initial region's approximate size in bytes (default 96 MiB).
	RegionSize uint64
	// RegionKeys is each initial region's approximate key count (default 960000).
	RegionKeys uint64
	// Version is the TiKV version the stores report (semver, default "8.1.0";
	// >= 5.0.0 makes PD send ChangePeerV2).
	Version string
	// Labels, if set, gives store i (0-based) the labels Labels[i%len(Labels)].
	Labels []map[string]string
	// StatusServer gives every store a real status server, as TiKV's
	// status_address (port 20180 in production): a loopback listener on a
	// free port, registered with PD as the store's status_address, serving
	// GET /metrics with tikv_thread_cpu_seconds_total{name,tid} at
	// DefaultCPUCores until SetCPU changes it. Off: status_address is a
	// fixed unused port (127.0.0.1:40160+i).
	StatusServer bool
	// Logger receives the simulator's logs (default slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Stores == 0 {
		c.Stores = DefaultStores
	}
	if c.Regions == 0 {
		c.Regions = DefaultRegions
	}
	if c.Replicas == 0 {
		c.Replicas = min(DefaultReplicas, c.Stores)
	}
	if c.RegionHeartbeat == 0 {
		c.RegionHeartbeat = DefaultRegionHeartbeat
	}
	if c.StoreHeartbeat == 0 {
		c.StoreHeartbeat = DefaultStoreHeartbeat
	}
	if c.HotHeartbeat == 0 {
		c.HotHeartbeat = DefaultHotHeartbeat
	}
	if c.Capacity == 0 {
		c.Capacity = DefaultCapacity
	}
	if c.RegionSize == 0 {
		c.RegionSize = DefaultRegionSize
	}
	if c.RegionKeys == 0 {
		c.RegionKeys = DefaultRegionKeys
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if _, err := grpcTarget(c.PD); err != nil {
		return err
	}
	switch {
	case c.Stores < 1 || c.Stores > 1000:
		return fmt.Errorf("%w: stores %d, want 1..1000", ErrInvalidConfig, c.Stores)
	case c.Regions < 1 || c.Regions > 1_000_000:
		return fmt.Errorf("%w: regions %d, want 1..1000000", ErrInvalidConfig, c.Regions)
	case c.Replicas < 1 || c.Replicas > c.Stores:
		return fmt.Errorf("%w: replicas %d, want 1..stores (%d)", ErrInvalidConfig, c.Replicas, c.Stores)
	case c.RegionHeartbeat < 100*time.Millisecond:
		return fmt.Errorf("%w: region heartbeat %s, want >= 100ms", ErrInvalidConfig, c.RegionHeartbeat)
	case c.StoreHeartbeat < 100*time.Millisecond:
		return fmt.Errorf("%w: store heartbeat %s, want >= 100ms", ErrInvalidConfig, c.StoreHeartbeat)
	case c.HotHeartbeat < 100*time.Millisecond:
		return fmt.Errorf("%w: hot heartbeat %s, want >= 100ms", ErrInvalidConfig, c.HotHeartbeat)
	case c.RegionSize > c.Capacity:
		return fmt.Errorf("%w: region size %d larger than capacity %d", ErrInvalidConfig, c.RegionSize, c.Capacity)
	}
	return nil
}
