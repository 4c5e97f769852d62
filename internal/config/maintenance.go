package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/invariant"
)

// Maintenance is one configured maintenance window ([[maintenance]]): it
// mutes notifications and proposals for its scope between Start and End,
// like a silence made with `operator silence add` (docs/alerting.md,
// "Silences and maintenance windows"). Store and Invariant both empty
// mean the whole cluster.
type Maintenance struct {
	// Store is a store id ("4"); "" means every store.
	Store string `toml:"store" json:"store,omitempty"`
	// Invariant is an invariant name (store_low_space) or alert:NAME; ""
	// means every invariant.
	Invariant string `toml:"invariant" json:"invariant,omitempty"`
	// Start and End are RFC 3339 times (2026-12-03T22:00:00Z).
	Start string `toml:"start" json:"start"`
	End   string `toml:"end" json:"end"`
	// Reason is required: the team sees it in every muted diagnosis.
	Reason string `toml:"reason" json:"reason"`
}

// MaxMaintenance is the longest a window may last (as store.MaxSilence).
const MaxMaintenance = 31 * 24 * time.Hour

var (
	storeIDRE   = regexp.MustCompile(`^[1-9][0-9]{0,19}$`)
	alertNameRE = regexp.MustCompile(`^alert:[A-Za-z_][A-Za-z0-9_:%.-]{0,127}$`)
)

// SilenceScope checks a silence's or window's scope and returns the
// ticket subject and invariant it matches: storeID "" or a store id
// ("4" gives subject "store:4"), inv "" or a built-in invariant name
// (invariant.Names) or alert:NAME. Errors name the bad value.
func SilenceScope(storeID, inv string) (subject, invName string, err error) {
	storeID, inv = strings.TrimSpace(storeID), strings.TrimSpace(inv)
	if storeID != "" {
		if !storeIDRE.MatchString(storeID) {
			return "", "", fmt.Errorf("store %q is not a store id (a positive integer, as pd-ctl store shows)", storeID)
		}
		subject = "store:" + storeID
	}
	if inv != "" && !slices.Contains(invariant.Names(), inv) && !alertNameRE.MatchString(inv) {
		return "", "", fmt.Errorf("invariant %q is not an invariant name (operator check lists them) nor alert:ALERTNAME", inv)
	}
	return subject, inv, nil
}

// Window returns the start and end of m, checked: RFC 3339 times, end
// after start by at most MaxMaintenance, a reason, a valid scope.
func (m Maintenance) Window() (start, end time.Time, err error) {
	if _, _, err := SilenceScope(m.Store, m.Invariant); err != nil {
		return start, end, err
	}
	if start, err = time.Parse(time.RFC3339, strings.TrimSpace(m.Start)); err != nil {
		return start, end, fmt.Errorf("start %q: want an RFC 3339 time such as 2026-12-03T22:00:00Z", m.Start)
	}
	if end, err = time.Parse(time.RFC3339, strings.TrimSpace(m.End)); err != nil {
		return start, end, fmt.Errorf("end %q: want an RFC 3339 time such as 2026-12-04T02:00:00Z", m.End)
	}
	if !end.After(start) {
		return start, end, fmt.Errorf("end %s is not after start %s", m.End, m.Start)
	}
	if end.Sub(start) > MaxMaintenance {
		return start, end, fmt.Errorf("window of %s: at most 31 days", end.Sub(start))
	}
	if strings.TrimSpace(m.Reason) == "" {
		return start, end, fmt.Errorf("a reason is required")
	}
	return start, end, nil
}

func (c *Config) validateMaintenance() error {
	for i, m := range c.Maintenance {
		if _, _, err := m.Window(); err != nil {
			return fmt.Errorf("config: maintenance window %d: %w", i+1, err)
		}
	}
	return nil
}
