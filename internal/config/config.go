// Package config is the operator's configuration: defaults, a TOML file
// (the format PD and TiKV use), environment variables and command-line
// flags, in that order of precedence (flags win).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/invariant"
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

// Database is where tickets, proposals and the audit trail live: a SQLite
// file (Path, the zero-setup default) or a PostgreSQL database (URL), which
// several replicas on several hosts can share (docs/ha.md).
type Database struct {
	// Path is the SQLite file; ignored when URL is set.
	Path string `toml:"path" json:"path"`
	// URL is a PostgreSQL connection URL, postgres://USER@HOST:PORT/DB
	// (pgx syntax: sslmode, sslrootcert ... as query parameters). Keep the
	// password out of the file: pgx reads PGPASSWORD and ~/.pgpass. Empty
	// means SQLite at Path.
	URL string `toml:"url" json:"url,omitempty"`
}

// IsPostgresURL reports whether s names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file path.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Target is what store.Open takes: URL when set, else Path.
func (d Database) Target() string {
	if d.URL != "" {
		return d.URL
	}
	return d.Path
}

// Display is Target with any password in the URL replaced by "****", for
// logs, /healthz and error messages.
func (d Database) Display() string {
	if d.URL != "" {
		return redactURL(d.URL)
	}
	return d.Path
}

// setTarget stores a --db / OPERATOR_DB value: a postgres:// URL goes to
// URL, anything else is a SQLite path.
func (d *Database) setTarget(v string) {
	if IsPostgresURL(v) {
		d.URL = v
		return
	}
	d.Path, d.URL = v, ""
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
	// RequireDistinctApprover is kept so that older files load; nobody may
	// approve an action they proposed, whatever it says.
	RequireDistinctApprover bool `toml:"require-distinct-approver" json:"require-distinct-approver"`
	// ApprovalTTL is how long an approval authorises execution: an
	// approved action the executor has not claimed by then expires.
	ApprovalTTL Duration `toml:"approval-ttl" json:"approval-ttl"`
	// ApprovalsRequired is how many distinct people must approve an action
	// of each risk (keys low, medium, high); default 1, 1, 2.
	ApprovalsRequired map[string]int `toml:"approvals-required" json:"approvals-required"`
	// ExecutionTimeout bounds how long the executor waits for an effect.
	ExecutionTimeout Duration `toml:"execution-timeout" json:"execution-timeout"`
}

// Server is the daemon's HTTP endpoint (/metrics, /healthz, and the API
// under /api/v1 for bearer tokens or the auth proxy) and its Unix socket
// (the API for local users, identified by the kernel).
type Server struct {
	// Listen is host:port, loopback by default.
	Listen string `toml:"listen" json:"listen"`
	// Socket is the Unix socket of the API; "" means operator.sock next to
	// the database file (in [audit] key-dir with a [database] url); "-"
	// disables it.
	Socket string `toml:"socket" json:"socket"`
	// URL is where CLI decision commands reach the daemon when not over
	// the socket (http://host:port, with a token); "" uses the socket.
	URL string `toml:"url" json:"url,omitempty"`
	// Token is the bearer token the CLI sends with URL (default
	// $OPERATOR_TOKEN). Never needed over the socket.
	Token string `toml:"token" json:"token,omitempty"`
}

// Auth is who may use the API and with which role.
type Auth struct {
	// Tokens are bearer tokens: name, role (viewer, approver, admin) and
	// the SHA-256 of the secret (`operator auth token NAME` makes one).
	Tokens []auth.Token `toml:"tokens" json:"tokens,omitempty"`
	// UnixRoles gives OS users connecting over the socket a role; root and
	// the daemon's own user are admins; others get UnixDefaultRole.
	UnixRoles       map[string]string `toml:"unix-roles" json:"unix-roles,omitempty"`
	UnixDefaultRole string            `toml:"unix-default-role" json:"unix-default-role"`
	// ProxyUserHeader, when set, is the header an authenticating reverse
	// proxy puts the user name in (e.g. X-Forwarded-User). It is honoured
	// only from ProxyTrusted addresses; ProxyRoles gives those users a
	// role (default viewer).
	ProxyUserHeader string            `toml:"proxy-user-header" json:"proxy-user-header,omitempty"`
	ProxyTrusted    []string          `toml:"proxy-trusted" json:"proxy-trusted,omitempty"`
	ProxyRoles      map[string]string `toml:"proxy-roles" json:"proxy-roles,omitempty"`
}

// Audit is where the audit key and checkpoint live.
type Audit struct {
	// KeyDir holds audit.key (0600), audit.key.pub and audit.checkpoint;
	// "" means the database file's directory.
	KeyDir string `toml:"key-dir" json:"key-dir,omitempty"`
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
	Auth       Auth       `toml:"auth" json:"auth"`
	Audit      Audit      `toml:"audit" json:"audit"`
	Console    Console    `toml:"console" json:"console"`
	// Notify configures notifications out; Alerting the Alertmanager
	// webhook receiver (notify.go).
	Notify   Notify   `toml:"notify" json:"notify"`
	Alerting Alerting `toml:"alerting" json:"alerting"`
	// HA configures several replicas with leader election (ha.go).
	HA HA `toml:"ha" json:"ha"`
	// Cluster names the watched cluster in the database (cluster.go).
	Cluster Cluster `toml:"cluster" json:"cluster"`
	// Retention prunes old resolved history, never the audit trail
	// (retention.go).
	Retention Retention `toml:"retention" json:"retention"`
	// Maintenance are configured maintenance windows ([[maintenance]]):
	// notifications and proposals muted for a scope (maintenance.go).
	Maintenance []Maintenance `toml:"maintenance" json:"maintenance,omitempty"`
	// Invariants holds the invariant thresholds and `for` durations
	// ([invariants] in TOML, kebab-case keys; see invariant.Config).
	Invariants invariant.Config `toml:"invariants" json:"invariants"`
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		PD:       PD{Endpoints: []string{"http://127.0.0.1:2379"}, Timeout: Duration{5 * time.Second}},
		Database: Database{Path: "operator.db"},
		Monitor:  Monitor{Interval: Duration{5 * time.Second}, Quiet: Duration{30 * time.Second}},
		Diagnosis: Diagnosis{
			Backend:     "rules",
			TokenBudget: 50000,
			MaxTurns:    6,
			Anthropic:   Anthropic{Model: "claude-sonnet-4-5", MaxTokens: 4096},
			OpenAI:      OpenAI{Model: "gpt-4o-mini", MaxTokens: 4096},
		},
		Actions: Actions{
			Expiry:            Duration{time.Hour},
			ExecutionTimeout:  Duration{60 * time.Second},
			ApprovalTTL:       Duration{15 * time.Minute},
			ApprovalsRequired: map[string]int{"low": 1, "medium": 1, "high": 2},
		},
		Auth:       Auth{UnixDefaultRole: "viewer", ProxyTrusted: []string{"127.0.0.1/32", "::1/128"}},
		Server:     Server{Listen: "127.0.0.1:9469"},
		HA:         HA{LeaseTTL: Duration{DefaultHALeaseTTL}},
		Retention:  DefaultRetention(),
		Invariants: DefaultInvariants(),
	}
}

// Load returns the defaults overlaid with the TOML file at path (when path
// is not empty) and then with the process environment (ApplyEnv), validated.
// Unknown keys in the file are an error, like PD's own config check, so a
// typo never passes silently.
func Load(path string) (Config, error) {
	return Resolve(path, os.Getenv, Overrides{})
}

// Overrides are the command-line flags that override the file and the
// environment. Empty strings, nil slices and zero durations are "not set".
type Overrides struct {
	// PD replaces [pd] endpoints (--pd URL[,URL]).
	PD []string
	// DB replaces [database] path (--db).
	DB string
	// Prometheus replaces [prometheus] url (--prometheus).
	Prometheus string
	// CACert, Cert and Key replace the PD TLS files (--cacert, --cert,
	// --key, as in pd-ctl).
	CACert, Cert, Key string
	// Interval replaces [monitor] interval (operator run --interval).
	Interval time.Duration
	// Listen replaces [server] listen (operator run --listen) when
	// ListenSet; an empty Listen then disables the HTTP server.
	Listen    string
	ListenSet bool
	// Backend replaces [diagnosis] backend (operator run --diagnosis).
	Backend string
	// Server and Token replace [server] url and token (--server, --token).
	Server, Token string
}

// Resolve builds the effective configuration: Default, then the TOML file
// at path (skipped when path is empty), then the environment read through
// getenv (ApplyEnv), then the flags in o. Flags win. The result is
// validated; on error the partially built Config is returned with it.
func Resolve(path string, getenv func(string) string, o Overrides) (Config, error) {
	cfg := Default()
	if path != "" {
		if err := decodeFile(path, &cfg); err != nil {
			return cfg, err
		}
	}
	ApplyEnv(&cfg, getenv)
	o.apply(&cfg)
	return cfg, cfg.Validate()
}

func decodeFile(path string, cfg *Config) error {
	md, err := toml.DecodeFile(path, cfg)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("config file %s does not exist", path)
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("config file %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}

func (o Overrides) apply(cfg *Config) {
	if len(o.PD) > 0 {
		cfg.PD.Endpoints = append([]string(nil), o.PD...)
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	if o.DB != "" {
		cfg.Database.setTarget(o.DB)
	}
	set(&cfg.Prometheus.URL, o.Prometheus)
	set(&cfg.PD.CAPath, o.CACert)
	set(&cfg.PD.CertPath, o.Cert)
	set(&cfg.PD.KeyPath, o.Key)
	if o.ListenSet || o.Listen != "" {
		cfg.Server.Listen = o.Listen
	}
	set(&cfg.Diagnosis.Backend, o.Backend)
	set(&cfg.Server.URL, o.Server)
	set(&cfg.Server.Token, o.Token)
	if o.Interval != 0 {
		cfg.Monitor.Interval = Duration{o.Interval}
	}
}

// ApplyEnv overlays environment variables, which win over the file:
// OPERATOR_PD (comma-separated URLs), OPERATOR_PD_CACERT, OPERATOR_PD_CERT,
// OPERATOR_PD_KEY, OPERATOR_DB, OPERATOR_PROMETHEUS, OPERATOR_INTERVAL (a Go
// duration; an invalid value is kept for Validate to report),
// OPERATOR_LISTEN and OPERATOR_DIAGNOSIS_BACKEND. The providers' own
// variables ANTHROPIC_API_KEY, OPENAI_API_KEY and OPENAI_BASE_URL are
// fallbacks: they apply only when the file sets no value.
func ApplyEnv(cfg *Config, getenv func(string) string) {
	if v := getenv("OPERATOR_PD_CACERT"); v != "" {
		cfg.PD.CAPath = v
	}
	if v := getenv("OPERATOR_PD_CERT"); v != "" {
		cfg.PD.CertPath = v
	}
	if v := getenv("OPERATOR_PD_KEY"); v != "" {
		cfg.PD.KeyPath = v
	}
	if v := getenv("OPERATOR_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			d = -1 // Validate reports a non-positive interval
		}
		cfg.Monitor.Interval = Duration{d}
	}
	if v := getenv("OPERATOR_LISTEN"); v != "" {
		cfg.Server.Listen = v
	}
	if v := getenv("OPERATOR_PD"); v != "" {
		cfg.PD.Endpoints = SplitList(v)
	}
	if v := getenv("OPERATOR_DB"); v != "" {
		cfg.Database.setTarget(v)
	}
	if v := getenv("OPERATOR_PROMETHEUS"); v != "" {
		cfg.Prometheus.URL = v
	}
	if v := getenv("OPERATOR_SERVER"); v != "" {
		cfg.Server.URL = v
	}
	if v := getenv("OPERATOR_TOKEN"); v != "" {
		cfg.Server.Token = v
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
	if c.PD.CAPath != "" || c.PD.CertPath != "" {
		for _, e := range c.PD.Endpoints {
			if strings.HasPrefix(e, "http://") {
				return fmt.Errorf("config: TLS files are set (--cacert/--cert/--key or [pd] cacert-path, cert-path) but PD endpoint %q is http://: "+
					"TLS applies to https:// endpoints only; write https://%s (or drop the TLS files if PD does not use TLS)",
					redactURL(e), strings.TrimPrefix(redactURL(e), "http://"))
			}
		}
	}
	if c.Database.URL != "" {
		if !IsPostgresURL(c.Database.URL) {
			return fmt.Errorf("config: [database] url %q must be a postgres:// or postgresql:// URL (a SQLite file goes in [database] path)", redactURL(c.Database.URL))
		}
		if c.Audit.KeyDir == "" {
			// Fail closed: with SQLite the key defaults to the file's
			// directory; a database URL has none, and every replica must
			// sign with the same key.
			return errors.New("config: [database] url is set but [audit] key-dir is not: the audit signing key must live in a directory every replica shares (docs/ha.md)")
		}
	} else if c.Database.Path == "" {
		return errors.New("config: empty database path")
	}
	if c.Monitor.Interval.Duration <= 0 {
		return fmt.Errorf("config: monitor interval must be positive, got %s", c.Monitor.Interval)
	}
	switch c.Diagnosis.Backend {
	case "rules", "anthropic", "openai", "noop":
	default:
		return fmt.Errorf("config: unknown diagnosis backend %q (want rules, anthropic, openai or noop)", c.Diagnosis.Backend)
	}
	if c.Monitor.Quiet.Duration < 0 {
		return fmt.Errorf("config: monitor quiet-period must not be negative, got %s", c.Monitor.Quiet)
	}
	if c.Actions.Expiry.Duration <= 0 {
		return errors.New("config: proposal-expiry must be positive")
	}
	if c.Actions.ExecutionTimeout.Duration < 0 {
		return errors.New("config: execution-timeout must not be negative")
	}
	if c.Prometheus.URL != "" {
		if u, err := url.Parse(c.Prometheus.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: prometheus url %q must be an http:// or https:// URL", redactURL(c.Prometheus.URL))
		}
	}
	if c.Server.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
			return fmt.Errorf("config: server listen %q must be host:port (empty disables the server): %v", c.Server.Listen, err)
		}
	}
	if c.Actions.ApprovalTTL.Duration <= 0 {
		return errors.New("config: approval-ttl must be positive")
	}
	for k, v := range c.Actions.ApprovalsRequired {
		if k != "low" && k != "medium" && k != "high" {
			return fmt.Errorf("config: approvals-required: unknown risk %q (low, medium, high)", k)
		}
		if v < 1 || v > 5 {
			return fmt.Errorf("config: approvals-required.%s must be 1 to 5, got %d", k, v)
		}
	}
	if _, err := auth.NewTokens(c.Auth.Tokens); err != nil {
		return fmt.Errorf("config: auth: %w", err)
	}
	for name, r := range c.Auth.UnixRoles {
		if _, err := auth.ParseRole(r); err != nil {
			return fmt.Errorf("config: auth unix-roles.%s: %w", name, err)
		}
	}
	for name, r := range c.Auth.ProxyRoles {
		if _, err := auth.ParseRole(r); err != nil {
			return fmt.Errorf("config: auth proxy-roles.%s: %w", name, err)
		}
	}
	if _, err := auth.ParseRole(c.Auth.UnixDefaultRole); err != nil {
		return fmt.Errorf("config: auth unix-default-role: %w", err)
	}
	for _, cidr := range c.Auth.ProxyTrusted {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			return fmt.Errorf("config: auth proxy-trusted %q: %v", cidr, err)
		}
	}
	if c.Server.URL != "" {
		if u, err := url.Parse(c.Server.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: server url %q must be an http:// or https:// URL", redactURL(c.Server.URL))
		}
	}
	if err := c.Invariants.Validate(); err != nil {
		return fmt.Errorf("config: invariants: %w", err)
	}
	if err := c.validateHA(); err != nil {
		return err
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if err := c.validateRetention(); err != nil {
		return err
	}
	if err := c.validateMaintenance(); err != nil {
		return err
	}
	return c.validateNotify()
}

// CheckCredentials reports a diagnosis backend that cannot work for lack
// of a credential: anthropic without an API key ([diagnosis.anthropic]
// api-key or $ANTHROPIC_API_KEY), openai against api.openai.com (no
// base-url) without an API key. Only `operator run` needs them, so
// Validate does not check this.
func (c Config) CheckCredentials() error {
	switch c.Diagnosis.Backend {
	case "anthropic":
		if c.Diagnosis.Anthropic.APIKey == "" {
			return errors.New("configuration error: diagnosis backend anthropic needs an API key: set ANTHROPIC_API_KEY or [diagnosis.anthropic] api-key (or use backend = \"rules\")")
		}
	case "openai":
		if c.Diagnosis.OpenAI.APIKey == "" && c.Diagnosis.OpenAI.BaseURL == "" {
			return errors.New("configuration error: diagnosis backend openai needs an API key for api.openai.com: set OPENAI_API_KEY or [diagnosis.openai] api-key, or a base-url of a local server (vLLM, Ollama)")
		}
	}
	return nil
}

// Secrets returns the secret values of c (API keys, the server token, the
// passwords in the PD, Prometheus and model URLs), for masking them in
// logs and stored error texts (safetext.Mask).
func (c Config) Secrets() []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	add(c.Diagnosis.Anthropic.APIKey)
	add(c.Diagnosis.OpenAI.APIKey)
	add(c.Server.Token)
	urls := append([]string{c.Prometheus.URL, c.Diagnosis.Anthropic.BaseURL, c.Diagnosis.OpenAI.BaseURL, c.Server.URL}, c.PD.Endpoints...)
	for _, s := range urls {
		if u, err := url.Parse(s); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				add(p)
			}
		}
	}
	return out
}

// RedactURLs returns urls with the password of each masked
// ("http://u:p@host" -> "http://u:****@host"), for logs.
func RedactURLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redactURL(u)
	}
	return out
}

// SocketPath returns the API's Unix socket path: [server] socket, else
// operator.sock next to the database file; "" when disabled ("-").
func (c Config) SocketPath() string {
	switch c.Server.Socket {
	case "-":
		return ""
	case "":
		if c.Database.URL != "" {
			return filepath.Join(absPath(c.Audit.KeyDir), "operator.sock")
		}
		return filepath.Join(filepath.Dir(absPath(c.Database.Path)), "operator.sock")
	}
	return c.Server.Socket
}

// AuditKeyDir returns [audit] key-dir, else the database file's directory.
func (c Config) AuditKeyDir() string {
	if c.Audit.KeyDir != "" {
		return c.Audit.KeyDir
	}
	return filepath.Dir(absPath(c.Database.Path))
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
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
	c.Server.Token = mask(c.Server.Token)
	c.maskNotify(mask)
	eps := make([]string, len(c.PD.Endpoints))
	for i, e := range c.PD.Endpoints {
		eps[i] = redactURL(e)
	}
	c.PD.Endpoints = eps
	c.Prometheus.URL = redactURL(c.Prometheus.URL)
	c.Database.URL = redactURL(c.Database.URL)
	c.Diagnosis.Anthropic.BaseURL = redactURL(c.Diagnosis.Anthropic.BaseURL)
	c.Diagnosis.OpenAI.BaseURL = redactURL(c.Diagnosis.OpenAI.BaseURL)
	return c
}

// redactURL masks the password of a URL with user info
// ("http://u:p@host" -> "http://u:****@host"); other strings are returned
// unchanged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		// url.UserPassword would escape "*" as %2A.
		const placeholder = "operator-redacted-password"
		u.User = url.UserPassword(u.User.Username(), placeholder)
		return strings.Replace(u.String(), placeholder, "****", 1)
	}
	return u.String()
}

// TOML renders c in the configuration file's format (what `operator config
// show` prints): durations as Go duration strings, kebab-case keys.
func (c Config) TOML() ([]byte, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return nil, fmt.Errorf("config: encode TOML: %w", err)
	}
	return integralFloats.ReplaceAllFunc(b.Bytes(), func(m []byte) []byte {
		i := bytes.IndexByte(m, '=')
		f, err := strconv.ParseFloat(string(bytes.TrimSpace(m[i+1:])), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
			return m
		}
		return append(m[:i+1], " "+strconv.FormatInt(int64(f), 10)...)
	}), nil
}

// integralFloats matches "key = 1.048576e+06": the TOML encoder writes
// float64 settings in exponent form; TOML() writes whole numbers as
// integers (TOML integers decode into float settings).
var integralFloats = regexp.MustCompile(`(?m)^\s*[A-Za-z0-9_-]+ = -?[0-9]+(\.[0-9]+)?e[+-]?[0-9]+$`)
