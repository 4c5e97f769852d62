package config

import (
	"fmt"
	"strings"
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
	// ReplicaName names this replica's audit checkpoint file
	// (audit.checkpoint.<name> in [audit] key-dir); "" derives it from the
	// host name and [server] listen. Set it when a replica may move
	// between hosts or addresses but should keep one file. ASCII letters,
	// digits, '.', '-', '_' and ':', at most 64.
	ReplicaName string `toml:"replica-name" json:"replica-name,omitempty"`
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
	if n := c.HA.ReplicaName; n != "" {
		if len(n) > 64 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:") != "" || strings.HasPrefix(n, ".") {
			return fmt.Errorf("config: ha replica-name %q: use at most 64 ASCII letters, digits, '.', '-', '_' or ':' (it names a file), not starting with '.'", n)
		}
	}
	return nil
}
