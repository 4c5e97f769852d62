package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tikvops/operator/internal/invariant"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "operator.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const sample = `
[pd]
endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
cacert-path = "/etc/tls/ca.pem"
cert-path = "/etc/tls/client.pem"
key-path = "/etc/tls/client-key.pem"

[prometheus]
url = "http://prom:9090"

[database]
path = "/var/lib/operator/file.db"

[monitor]
interval = "15s"
quiet-period = "1m"

[diagnosis]
backend = "anthropic"
[diagnosis.anthropic]
api-key = "sk-file"

[invariants]
leader-imbalance-min-diff = 7
slow-score = 90
disabled = ["tombstone_pileup"]
[invariants.for]
leader_imbalance = "5s"
`

func TestPrecedence(t *testing.T) {
	path := writeFile(t, sample)
	tests := []struct {
		name  string
		path  string
		env   map[string]string
		flags Overrides
		check func(t *testing.T, c Config)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c Config) {
				if got := c.PD.Endpoints; !reflect.DeepEqual(got, []string{"http://127.0.0.1:2379"}) {
					t.Errorf("endpoints = %v", got)
				}
				if c.Database.Path != "operator.db" || c.Monitor.Interval.Duration != 5*time.Second {
					t.Errorf("db %q interval %s", c.Database.Path, c.Monitor.Interval)
				}
				if c.Invariants.LeaderImbalanceMinDiff != invariant.DefaultLeaderImbalanceMinDiff {
					t.Errorf("leader min diff = %d", c.Invariants.LeaderImbalanceMinDiff)
				}
				if c.Server.Listen != "127.0.0.1:9469" || c.Diagnosis.Backend != "rules" {
					t.Errorf("listen %q backend %q", c.Server.Listen, c.Diagnosis.Backend)
				}
			},
		},
		{
			name: "file over defaults",
			path: path,
			check: func(t *testing.T, c Config) {
				if c.PD.Endpoints[1] != "https://10.0.0.2:2379" || c.PD.CAPath != "/etc/tls/ca.pem" {
					t.Errorf("pd = %+v", c.PD)
				}
				if c.Database.Path != "/var/lib/operator/file.db" || c.Monitor.Interval.Duration != 15*time.Second || c.Monitor.Quiet.Duration != time.Minute {
					t.Errorf("db %q monitor %+v", c.Database.Path, c.Monitor)
				}
				if c.Invariants.LeaderImbalanceMinDiff != 7 || c.Invariants.SlowScore != 90 {
					t.Errorf("invariants = %+v", c.Invariants)
				}
				if got := c.Invariants.ForOf(invariant.NameLeaderImbalance); got != 5*time.Second {
					t.Errorf("for leader_imbalance = %s", got)
				}
				// The file's [invariants.for] merges with the defaults.
				if got := c.Invariants.ForOf(invariant.NamePDUnreachable); got != invariant.DefaultPDUnreachableFor {
					t.Errorf("for pd_unreachable = %s, want the default kept", got)
				}
				// Untouched thresholds keep their defaults.
				if c.Invariants.HotWriteShare != invariant.DefaultHotWriteShare {
					t.Errorf("hot write share = %v", c.Invariants.HotWriteShare)
				}
				if c.Diagnosis.Anthropic.APIKey != "sk-file" {
					t.Errorf("api key = %q", c.Diagnosis.Anthropic.APIKey)
				}
			},
		},
		{
			name: "env over file",
			path: path,
			env: map[string]string{
				"OPERATOR_PD": "https://env:2379, https://env2:2379", "OPERATOR_DB": "/env.db",
				"OPERATOR_PROMETHEUS": "http://envprom:9090", "OPERATOR_INTERVAL": "3s",
				"OPERATOR_PD_CACERT": "/env/ca.pem", "ANTHROPIC_API_KEY": "sk-env",
			},
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c.PD.Endpoints, []string{"https://env:2379", "https://env2:2379"}) {
					t.Errorf("endpoints = %v", c.PD.Endpoints)
				}
				if c.Database.Path != "/env.db" || c.Prometheus.URL != "http://envprom:9090" || c.Monitor.Interval.Duration != 3*time.Second {
					t.Errorf("db %q prom %q interval %s", c.Database.Path, c.Prometheus.URL, c.Monitor.Interval)
				}
				if c.PD.CAPath != "/env/ca.pem" || c.PD.CertPath != "/etc/tls/client.pem" {
					t.Errorf("tls = %+v", c.PD)
				}
				// The provider's own variable is only a fallback.
				if c.Diagnosis.Anthropic.APIKey != "sk-file" {
					t.Errorf("api key = %q, want the file's", c.Diagnosis.Anthropic.APIKey)
				}
			},
		},
		{
			name: "flags over env",
			path: path,
			env:  map[string]string{"OPERATOR_PD": "https://env:2379", "OPERATOR_DB": "/env.db", "OPERATOR_INTERVAL": "3s"},
			flags: Overrides{
				PD: []string{"https://flag:2379"}, DB: "/flag.db", Prometheus: "http://flagprom:9090",
				CACert: "/flag/ca.pem", Cert: "/flag/c.pem", Key: "/flag/k.pem", Interval: 2 * time.Second,
				Listen: "127.0.0.1:0", Backend: "rules",
			},
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c.PD.Endpoints, []string{"https://flag:2379"}) || c.PD.CAPath != "/flag/ca.pem" || c.PD.KeyPath != "/flag/k.pem" {
					t.Errorf("pd = %+v", c.PD)
				}
				if c.Database.Path != "/flag.db" || c.Prometheus.URL != "http://flagprom:9090" || c.Monitor.Interval.Duration != 2*time.Second {
					t.Errorf("db %q prom %q interval %s", c.Database.Path, c.Prometheus.URL, c.Monitor.Interval)
				}
				if c.Server.Listen != "127.0.0.1:0" || c.Diagnosis.Backend != "rules" {
					t.Errorf("listen %q backend %q", c.Server.Listen, c.Diagnosis.Backend)
				}
			},
		},
		{
			name: "provider env as fallback",
			env:  map[string]string{"ANTHROPIC_API_KEY": "sk-env", "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"},
			check: func(t *testing.T, c Config) {
				if c.Diagnosis.Anthropic.APIKey != "sk-env" || c.Diagnosis.OpenAI.BaseURL != "http://127.0.0.1:8000/v1" {
					t.Errorf("diagnosis = %+v", c.Diagnosis)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Resolve(tt.path, envOf(tt.env), tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		flags      Overrides
		want       string
	}{
		{name: "unknown key", file: "[pd]\nendpoint = [\"http://x:2379\"]\n", want: "unknown keys: pd.endpoint"},
		{name: "unknown invariant key", file: "[invariants]\nslow-scor = 3\n", want: "unknown keys: invariants.slow-scor"},
		{name: "bad toml", file: "[pd\n", want: "config file"},
		{name: "bad duration", file: "[monitor]\ninterval = \"ten\"\n", want: "invalid duration"},
		{name: "bad endpoint", flags: Overrides{PD: []string{"127.0.0.1:2379"}}, want: "must start with http://"},
		{name: "cert without key", flags: Overrides{Cert: "/c.pem"}, want: "cert-path and key-path go together"},
		{name: "bad env interval", env: map[string]string{"OPERATOR_INTERVAL": "soon"}, want: "monitor interval must be positive"},
		{name: "bad backend", flags: Overrides{Backend: "gpt"}, want: "unknown diagnosis backend"},
		{name: "bad listen", flags: Overrides{Listen: "9469"}, want: "must be host:port"},
		{name: "bad invariant", file: "[invariants]\ndisabled = [\"no_such\"]\n", want: "invariants:"},
		{name: "bad prometheus", flags: Overrides{Prometheus: "prom:9090"}, want: "prometheus url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			_, err := Resolve(path, envOf(tt.env), tt.flags)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := Resolve(filepath.Join(t.TempDir(), "missing.toml"), envOf(nil), Overrides{}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestMaskedAndTOMLRoundTrip(t *testing.T) {
	c, err := Resolve(writeFile(t, sample), envOf(map[string]string{
		"OPENAI_API_KEY": "sk-openai", "OPERATOR_PROMETHEUS": "http://admin:s3cret@prom:9090",
	}), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	m := c.Masked()
	if m.Diagnosis.Anthropic.APIKey != "****" || m.Diagnosis.OpenAI.APIKey != "****" {
		t.Errorf("keys not masked: %+v", m.Diagnosis)
	}
	if m.Prometheus.URL != "http://admin:%2A%2A%2A%2A@prom:9090" && m.Prometheus.URL != "http://admin:****@prom:9090" {
		t.Errorf("prometheus url = %q", m.Prometheus.URL)
	}
	if c.Diagnosis.Anthropic.APIKey != "sk-file" {
		t.Error("Masked modified the original")
	}
	out, err := m.TOML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"sk-file", "sk-openai", "s3cret"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("TOML shows secret %q:\n%s", secret, out)
		}
	}
	// What `config show` prints is a valid config file giving the same
	// configuration back.
	unmasked, err := c.TOML()
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	md, err := toml.Decode(string(unmasked), &back)
	if err != nil {
		t.Fatalf("decode own TOML: %v\n%s", err, unmasked)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Errorf("own TOML has unknown keys %v", und)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", back, c)
	}
}

// TestREADMEExample keeps the configuration example of README.md valid.
func TestREADMEExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```toml\n")
	if !ok {
		t.Fatal("README.md has no ```toml block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("unterminated ```toml block")
	}
	c, err := Resolve(writeFile(t, block), envOf(nil), Overrides{})
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if c.PD.CAPath == "" || c.Monitor.Interval.Duration != 5*time.Second || c.Invariants.ForOf(invariant.NameStoreDisconnected) != 30*time.Second {
		t.Errorf("README example decoded to %+v", c)
	}
}
