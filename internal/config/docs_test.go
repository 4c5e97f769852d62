package config_test

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tikvops/operator/internal/config"
)

// flatten turns a decoded TOML document into "table.key" -> value.
func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			flatten(key, sub, out)
			continue
		}
		out[key] = v
	}
}

func defaults(t *testing.T) map[string]any {
	t.Helper()
	b, err := config.Default().TOML()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if _, err := toml.Decode(string(b), &m); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	flatten("", m, out)
	return out
}

// same compares a documented value with the code's, durations as
// durations and numbers as numbers.
func same(doc, code any) bool {
	if ds, ok := doc.(string); ok {
		if cs, ok := code.(string); ok {
			dd, err1 := time.ParseDuration(ds)
			cd, err2 := time.ParseDuration(cs)
			if err1 == nil && err2 == nil {
				return dd == cd
			}
			return ds == cs
		}
	}
	num := func(v any) (float64, bool) {
		switch x := v.(type) {
		case int64:
			return float64(x), true
		case float64:
			return x, true
		}
		return 0, false
	}
	if dn, ok := num(doc); ok {
		cn, ok := num(code)
		return ok && dn == cn
	}
	return fmt.Sprint(doc) == fmt.Sprint(code)
}

// readmeExamples are the README configuration block's settings that show
// an example rather than the default.
var readmeExamples = map[string]bool{
	"pd.endpoints": true, "pd.cacert-path": true, "pd.cert-path": true, "pd.key-path": true,
	"prometheus.url": true, "database.path": true, "diagnosis.openai.base-url": true,
	"invariants.disabled": true, "invariants.for.store_disconnected": true,
	"auth.tokens": true, "auth.unix-roles.alice": true,
}

// TestREADMEConfigDefaults: every setting of README.md's configuration
// block that is not an example documents the code's default.
func TestREADMEConfigDefaults(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "## Configuration")
	j := strings.Index(s[i:], "```toml")
	k := strings.Index(s[i+j+7:], "```")
	if i < 0 || j < 0 || k < 0 {
		t.Fatal("README.md has no ```toml block under ## Configuration")
	}
	var doc map[string]any
	if _, err := toml.Decode(s[i+j+7:i+j+7+k], &doc); err != nil {
		t.Fatalf("README.md's configuration block does not parse: %v", err)
	}
	flat := map[string]any{}
	flatten("", doc, flat)
	def := defaults(t)
	checked := 0
	keys := make([]string, 0, len(flat))
	for key := range flat {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if readmeExamples[key] {
			continue
		}
		code, ok := def[key]
		if !ok {
			t.Errorf("README.md documents %s, which is not a setting", key)
			continue
		}
		checked++
		if !same(flat[key], code) {
			t.Errorf("README.md: %s = %v, but the default is %v (mark it as an example in readmeExamples if it is one)", key, flat[key], code)
		}
	}
	if checked < 15 {
		t.Errorf("only %d settings checked", checked)
	}
}

// thresholdRE finds "`setting` (VALUE" and "`setting` VALUE" in
// docs/monitor.md's invariants table.
var thresholdRE = regexp.MustCompile("`([a-z][a-z0-9-]+)` \\(?(`[a-z]+`|[0-9][0-9.,]*(?: ?(?:m|s|h|%|MiB/s))?)")

// TestMonitorDocThresholds: docs/monitor.md's invariants table gives each
// threshold setting with the code's default.
func TestMonitorDocThresholds(t *testing.T) {
	b, err := os.ReadFile("../../docs/monitor.md")
	if err != nil {
		t.Fatal(err)
	}
	def := defaults(t)
	checked := 0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		for _, m := range thresholdRE.FindAllStringSubmatch(line, -1) {
			code, ok := def["invariants."+m[1]]
			if !ok {
				continue // PD's settings (max-store-down-time), not ours
			}
			doc, ok := parseDocValue(m[2])
			if !ok {
				t.Errorf("docs/monitor.md: cannot read %q for %s", m[2], m[1])
				continue
			}
			checked++
			if !same(doc, code) {
				t.Errorf("docs/monitor.md: %s is given as %s, but the default is %v", m[1], m[2], code)
			}
		}
	}
	if checked < 25 {
		t.Errorf("only %d thresholds checked in docs/monitor.md", checked)
	}
}

func parseDocValue(s string) (any, bool) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ",")
	switch {
	case strings.HasPrefix(s, "`"):
		return strings.Trim(s, "`"), true
	case strings.HasSuffix(s, " MiB/s"):
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, " MiB/s"), 64)
		return f * (1 << 20), err == nil
	case strings.HasSuffix(s, " %"), strings.HasSuffix(s, "%"):
		f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
		return f / 100, err == nil
	case strings.HasSuffix(s, " m"), strings.HasSuffix(s, " s"), strings.HasSuffix(s, " h"):
		d, err := time.ParseDuration(strings.ReplaceAll(s, " ", ""))
		return d.String(), err == nil
	}
	s = strings.ReplaceAll(s, ",", "")
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}
