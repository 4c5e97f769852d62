package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Retention is the [retention] table: how long resolved history is kept
// (docs/retention.md). The audit trail (action_records) is never pruned,
// nor a ticket or proposal an audit record names.
type Retention struct {
	// ResolvedTickets is how long a resolved ticket (and its proposals,
	// archived diagnoses and delivered notifications) is kept after it was
	// resolved: "90d", or a Go duration ("2160h"); "0" disables pruning.
	// At least 1 day when set. Default 90d.
	ResolvedTickets Days `toml:"resolved-tickets" json:"resolved-tickets"`
	// Interval is how often the daemon prunes (default 1h).
	Interval Duration `toml:"interval" json:"interval"`
}

// Retention defaults.
const (
	DefaultRetentionResolvedTickets = 90 * 24 * time.Hour
	DefaultRetentionInterval        = time.Hour
	minRetention                    = 24 * time.Hour
)

// DefaultRetention returns the [retention] defaults.
func DefaultRetention() Retention {
	return Retention{ResolvedTickets: Days{DefaultRetentionResolvedTickets}, Interval: Duration{DefaultRetentionInterval}}
}

// Days is a duration written in TOML as whole days ("90d"), or as a Go
// duration ("36h"); "0" is zero.
type Days struct{ time.Duration }

// UnmarshalText parses "Nd" or a Go duration string.
func (d *Days) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			return fmt.Errorf("invalid duration %q: want whole days (\"90d\") or a Go duration (\"36h\")", b)
		}
		d.Duration = time.Duration(v) * 24 * time.Hour
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want whole days (\"90d\") or a Go duration (\"36h\")", b)
	}
	d.Duration = v
	return nil
}

// MarshalText renders whole days as "Nd", anything else as a Go duration.
func (d Days) MarshalText() ([]byte, error) {
	if d.Duration > 0 && d.Duration%(24*time.Hour) == 0 {
		return []byte(strconv.FormatInt(int64(d.Duration/(24*time.Hour)), 10) + "d"), nil
	}
	return []byte(d.Duration.String()), nil
}

func (c *Config) validateRetention() error {
	r := c.Retention
	if r.ResolvedTickets.Duration < 0 || (r.ResolvedTickets.Duration > 0 && r.ResolvedTickets.Duration < minRetention) {
		return fmt.Errorf("config: [retention] resolved-tickets = %q: must be 0 (keep everything) or at least 1d", r.ResolvedTickets.Duration)
	}
	if r.ResolvedTickets.Duration > 0 && r.Interval.Duration <= 0 {
		return fmt.Errorf("config: [retention] interval = %q: must be positive", r.Interval.Duration)
	}
	return nil
}
