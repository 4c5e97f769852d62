// Package config is the operator's configuration: defaults, a TOML file
// (the format PD and TiKV use), environment variables and command-line
// flags, in that order of precedence (flags win).
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Duration is a time.Duration written in TOML as a Go duration string
// ("10s", "30m").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", b, err)
	}
	d.Duration = v
	return nil
}

// MarshalText renders the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// PD is how to reach PD's HTTP API.
type PD struct {
	// Endpoints are PD client URLs, tried in order (pd-ctl's -u).
	Endpoints []string `toml:"endpoints" json:"endpoints"`
	// CAPath, CertPath and KeyPath enable TLS to PD (PEM files).
	CAPath   string   `toml:"cacert-path" json:"cacert-path,omitempty"`
	CertPath string   `toml:"cert-path" json:"cert-path,omitempty"`
	KeyPath  string   `toml:"key-path" json:"key-path,omitempty"`
	Timeout  Duration `toml:"timeout" json:"timeout"`
}

// Prometheus is the optional Prometheus server that scrapes the cluster.
type Prometheus struct {
	// URL is empty when no Prometheus is configured.
	URL string `toml:"url" json:"url,omitempty"`
}

// Database is the SQLite file holding tickets, proposals and the audit trail.
type Database struct {
	Path string `toml:"path" json:"path"`
}

// Monitor configures the monitor loop.
type Monitor struct {
	// Interval between monitor cycles.
	Interval Duration `toml:"interval" json:"interval"`
	// Quiet is how long an invariant must hold again before its ticket
	// resolves.
	Quiet Duration `toml:"quiet-period" json:"quiet-period"`
}

// Anthropic configures the Claude backend.
type Anthropic struct {
	Model     string `toml:"model" json:"model"`
	MaxTokens int64  `toml:"max-tokens" json:"max-tokens"`
	// APIKey defaults to $ANTHROPIC_API_KEY.
	APIKey  string `toml:"api-key" json:"api-key,omitempty"`
	BaseURL string `toml:"base-url" json:"base-url,omitempty"`
}

// OpenAI configures any OpenAI-compatible chat completions endpoint.
type OpenAI struct {
	Model string `toml:"model" json:"model"`
	// BaseURL, e.g. http://127.0.0.1:8000/v1 for vLLM; defaults to
	// $OPENAI_BASE_URL.
	BaseURL string `toml:"base-url" json:"base-url,omitempty"`
	// APIKey defaults to $OPENAI_API_KEY.
	APIKey    string `toml:"api-key" json:"api-key,omitempty"`
	MaxTokens int64  `toml:"max-tokens" json:"max-tokens"`
}

// Diagnosis configures the diagnosis agent.
type Diagnosis struct {
	// Backend is "rules" (default, offline), "anthropic" or "openai".
	Backend string `toml:"backend" json:"backend"`
	// TokenBudget caps input+output tokens spent on one ticket.
	TokenBudget int64 `toml:"token-budget" json:"token-budget"`
	// MaxTurns caps model round trips per ticket (investigation tools).
	MaxTurns int `toml:"max-turns" json:"max-turns"`
	// RedactAddresses and RedactLabels also hide store addresses and
	// labels from models (region keys are always redacted).
	RedactAddresses bool      `toml:"redact-addresses" json:"redact-addresses"`
	RedactLabels    bool      `toml:"redact-labels" json:"redact-labels"`
	Anthropic       Anthropic `toml:"anthropic" json:"anthropic"`
	OpenAI          OpenAI    `toml:"openai" json:"openai"`
}

// Actions configures the approval gate and the executor.
type Actions struct {
	// Expiry is how long a proposal can be approved after it was made.
	Expiry Duration `toml:"proposal-expiry" json:"proposal-expiry"`
	// MaxExecutionsPerHour caps executions; 0 means no cap.
	MaxExecutionsPerHour int `toml:"max-executions-per-hour" json:"max-executions-per-hour"`
	// RequireDistinctApprover refuses an approval by the proposer.
	RequireDistinctApprover bool `toml:"require-distinct-approver" json:"require-distinct-approver"`
	// ExecutionTimeout bounds how long the executor waits for an effect.
	ExecutionTimeout Duration `toml:"execution-timeout" json:"execution-timeout"`
}

// Server is the daemon's HTTP endpoint for /metrics and /healthz.
type Server struct {
	// Listen is host:port, loopback by default.
	Listen string `toml:"listen" json:"listen"`
}

// Config is the whole configuration.
type Config struct {
	PD         PD         `toml:"pd" json:"pd"`
	Prometheus Prometheus `toml:"prometheus" json:"prometheus"`
	Database   Database   `toml:"database" json:"database"`
	Monitor    Monitor    `toml:"monitor" json:"monitor"`
	Diagnosis  Diagnosis  `toml:"diagnosis" json:"diagnosis"`
	Actions    Actions    `toml:"actions" json:"actions"`
	Server     Server     `toml:"server" json:"server"`
	// Invariants holds thresholds, keyed by invariant; see package
	// invariant for the fields.
	Invariants InvariantConfig `toml:"invariants" json:"invariants"`
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		PD:         PD{Endpoints: []string{"http://127.0.0.1:2379"}, Timeout: Duration{5 * time.Second}},
		Database:   Database{Path: "operator.db"},
		Monitor:    Monitor{Interval: Duration{10 * time.Second}, Quiet: Duration{30 * time.Second}},
		Diagnosis: Diagnosis{
			Backend:     "rules",
			TokenBudget: 50000,
			MaxTurns:    6,
			Anthropic:   Anthropic{Model: "claude-sonnet-4-5", MaxTokens: 4096},
			OpenAI:      OpenAI{Model: "gpt-4o-mini", MaxTokens: 4096},
		},
		Actions: Actions{
			Expiry:           Duration{time.Hour},
			ExecutionTimeout: Duration{60 * time.Second},
		},
		Server:     Server{Listen: "127.0.0.1:9469"},
		Invariants: DefaultInvariants(),
	}
}

// Load returns the defaults overlaid with the TOML file at path (when path
// is not empty) and then with the environment. Unknown keys in the file are
// an error, like PD's own config check, so a typo never passes silently.
func Load(path string) (Config, error) {
	cfg := Default()
	if path != "" {
		md, err := toml.DecodeFile(path, &cfg)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return cfg, fmt.Errorf("config file %s does not exist", path)
			}
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return cfg, fmt.Errorf("config file %s: unknown keys: %s", path, strings.Join(keys, ", "))
		}
	}
	ApplyEnv(&cfg, os.Getenv)
	return cfg, cfg.Validate()
}

// ApplyEnv overlays environment variables: OPERATOR_PD (comma-separated
// URLs), OPERATOR_DB, OPERATOR_PROMETHEUS, OPERATOR_DIAGNOSIS_BACKEND,
// ANTHROPIC_API_KEY, OPENAI_API_KEY, OPENAI_BASE_URL.
func ApplyEnv(cfg *Config, getenv func(string) string) {
	if v := getenv("OPERATOR_PD"); v != "" {
		cfg.PD.Endpoints = SplitList(v)
	}
	if v := getenv("OPERATOR_DB"); v != "" {
		cfg.Database.Path = v
	}
	if v := getenv("OPERATOR_PROMETHEUS"); v != "" {
		cfg.Prometheus.URL = v
	}
	if v := getenv("OPERATOR_DIAGNOSIS_BACKEND"); v != "" {
		cfg.Diagnosis.Backend = v
	}
	if v := getenv("ANTHROPIC_API_KEY"); v != "" && cfg.Diagnosis.Anthropic.APIKey == "" {
		cfg.Diagnosis.Anthropic.APIKey = v
	}
	if v := getenv("OPENAI_API_KEY"); v != "" && cfg.Diagnosis.OpenAI.APIKey == "" {
		cfg.Diagnosis.OpenAI.APIKey = v
	}
	if v := getenv("OPENAI_BASE_URL"); v != "" && cfg.Diagnosis.OpenAI.BaseURL == "" {
		cfg.Diagnosis.OpenAI.BaseURL = v
	}
}

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if len(c.PD.Endpoints) == 0 {
		return errors.New("config: no PD endpoint (set --pd, OPERATOR_PD or [pd] endpoints)")
	}
	for _, e := range c.PD.Endpoints {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			return fmt.Errorf("config: PD endpoint %q must start with http:// or https://", e)
		}
	}
	if (c.PD.CertPath == "") != (c.PD.KeyPath == "") {
		return errors.New("config: cert-path and key-path go together")
	}
	if c.Database.Path == "" {
		return errors.New("config: empty database path")
	}
	if c.Monitor.Interval.Duration <= 0 {
		return fmt.Errorf("config: monitor interval must be positive, got %s", c.Monitor.Interval)
	}
	switch c.Diagnosis.Backend {
	case "rules", "anthropic", "openai", "noop":
	default:
		return fmt.Errorf("config: unknown diagnosis backend %q (want rules, anthropic or openai)", c.Diagnosis.Backend)
	}
	if c.Actions.Expiry.Duration <= 0 {
		return errors.New("config: proposal-expiry must be positive")
	}
	return nil
}

// Masked returns a copy with secrets replaced by "****" (for `config show`).
func (c Config) Masked() Config {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "****"
	}
	c.Diagnosis.Anthropic.APIKey = mask(c.Diagnosis.Anthropic.APIKey)
	c.Diagnosis.OpenAI.APIKey = mask(c.Diagnosis.OpenAI.APIKey)
	c.PD.Endpoints = append([]string(nil), c.PD.Endpoints...)
	return c
}
