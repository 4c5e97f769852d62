package config

import (
	"fmt"
	"strings"
	"time"
)

// Console configures the web console ([console]): server-rendered pages
// for tickets, actions, the audit trail and the cluster, with approve,
// dry run and reject, served by `operator run` on [server] listen under
// Prefix. Off unless Enabled.
type Console struct {
	// Enabled turns the console on (default false).
	Enabled bool `toml:"enabled" json:"enabled"`
	// Prefix is the path the console is mounted under, e.g. "/ui" (the
	// default when empty) or "/operator/ui" behind a reverse proxy. It
	// starts with "/", has no trailing "/", and is not "/" nor under
	// /api/, /metrics or /healthz.
	Prefix string `toml:"prefix" json:"prefix,omitempty"`
	// SessionTTL is how long a console session lasts after log-in
	// (default 12h).
	SessionTTL Duration `toml:"session-ttl" json:"session-ttl"`
}

// DefaultConsolePrefix is the console's path when [console] prefix is
// empty.
const DefaultConsolePrefix = "/ui"

// DefaultConsoleSessionTTL is a console session's lifetime when [console]
// session-ttl is zero.
const DefaultConsoleSessionTTL = 12 * time.Hour

// PrefixOrDefault returns Prefix, or DefaultConsolePrefix when empty.
func (c Console) PrefixOrDefault() string {
	if c.Prefix == "" {
		return DefaultConsolePrefix
	}
	return c.Prefix
}

// SessionTTLOrDefault returns SessionTTL, or DefaultConsoleSessionTTL when
// zero.
func (c Console) SessionTTLOrDefault() time.Duration {
	if c.SessionTTL.Duration <= 0 {
		return DefaultConsoleSessionTTL
	}
	return c.SessionTTL.Duration
}

// Validate reports an unusable prefix or a negative session TTL.
func (c Console) Validate() error {
	p := c.PrefixOrDefault()
	switch {
	case !strings.HasPrefix(p, "/") || p == "/" || strings.HasSuffix(p, "/"):
		return fmt.Errorf("config: console prefix %q must start with / and not end with / (e.g. \"/ui\")", p)
	case strings.ContainsAny(p, " ?#%{}\\"):
		return fmt.Errorf("config: console prefix %q has a character not allowed in a path prefix", p)
	case p == "/api" || strings.HasPrefix(p, "/api/") || p == "/metrics" || p == "/healthz" || p == "/readyz":
		return fmt.Errorf("config: console prefix %q collides with the daemon's own routes", p)
	case c.SessionTTL.Duration < 0:
		return fmt.Errorf("config: console session-ttl %s is negative", c.SessionTTL.Duration)
	}
	return nil
}
