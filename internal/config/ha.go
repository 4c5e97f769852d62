package config

import (
	"fmt"
	"time"
)

// HA configures several `operator run` replicas of one cluster, one leader
// elected on PD's embedded etcd (internal/ha, docs/ha.md).
type HA struct {
	// Enabled turns leader election on: every replica serves the API,
	// console and /metrics; only the leader runs the monitor, the diagnosis
	// runner and the executor. Off by default (one daemon).
	Enabled bool `toml:"enabled" json:"enabled"`
	// LeaseTTL is the etcd lease TTL of each replica's session (whole
	// seconds, at least 1 s; PD's etcd may grant more): a follower leads at
	// most this long after the leader died.
	LeaseTTL Duration `toml:"lease-ttl" json:"lease-ttl"`
}

// DefaultHALeaseTTL is [ha] lease-ttl's default.
const DefaultHALeaseTTL = 10 * time.Second

func (c *Config) validateHA() error {
	if c.HA.LeaseTTL.Duration < time.Second {
		return fmt.Errorf("config: ha lease-ttl must be at least 1s, got %s", c.HA.LeaseTTL)
	}
	if c.HA.LeaseTTL.Duration%time.Second != 0 {
		return fmt.Errorf("config: ha lease-ttl must be whole seconds (etcd leases), got %s", c.HA.LeaseTTL)
	}
	return nil
}
