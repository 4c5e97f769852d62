package config

import (
	"strings"
	"testing"
)

// [[maintenance]] windows load from TOML; a bad scope, time, order,
// length or a missing reason is refused with the window's number.
func TestMaintenanceWindows(t *testing.T) {
	cfg, err := Resolve(writeFile(t, `
[[maintenance]]
store = "4"
invariant = "store_low_space"
start = "2026-12-03T22:00:00Z"
end = "2026-12-04T02:00:00Z"
reason = "disk swap"

[[maintenance]]
start = "2026-12-05T22:00:00+01:00"
end = "2026-12-05T23:00:00+01:00"
reason = "cluster upgrade"
`), envOf(nil), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Maintenance) != 2 || cfg.Maintenance[0].Store != "4" || cfg.Maintenance[1].Reason != "cluster upgrade" {
		t.Fatalf("maintenance = %+v", cfg.Maintenance)
	}
	if s, e, err := cfg.Maintenance[1].Window(); err != nil || e.Sub(s).Hours() != 1 {
		t.Errorf("window 2 = %s..%s, %v", s, e, err)
	}
	for _, c := range []struct{ body, want string }{
		{`store = "store:4"`, `store "store:4" is not a store id`},
		{`invariant = "no_such"`, `invariant "no_such" is not an invariant name`},
		{`start = "tonight"`, `start "tonight": want an RFC 3339 time`},
		{`end = "2026-12-03T21:00:00Z"`, "is not after start"},
		{`end = "2027-12-03T21:00:00Z"`, "at most 31 days"},
		{`reason = " "`, "a reason is required"},
	} {
		m := map[string]string{"start": `start = "2026-12-03T22:00:00Z"`, "end": `end = "2026-12-04T02:00:00Z"`, "reason": `reason = "r"`}
		key := strings.SplitN(c.body, " ", 2)[0]
		m[key] = c.body
		body := "[[maintenance]]\n"
		for _, k := range []string{"start", "end", "reason"} {
			body += m[k] + "\n"
		}
		if key == "store" || key == "invariant" {
			body += c.body + "\n"
		}
		_, err := Resolve(writeFile(t, body), envOf(nil), Overrides{})
		if err == nil || !strings.Contains(err.Error(), "maintenance window 1: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.body, err, c.want)
		}
	}
}
