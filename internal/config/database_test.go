package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A PostgreSQL URL goes to [database] url from the file, --db or
// OPERATOR_DB; the password never reaches config show or /healthz; a URL
// without a shared [audit] key-dir is refused and names the key.
func TestDatabaseURL(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "operator.toml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	noenv := func(string) string { return "" }

	write("[database]\nurl = \"postgres://op:s3cret@127.0.0.1:5432/operator?sslmode=disable\"\n[audit]\nkey-dir = \"" + dir + "\"\n")
	c, err := Resolve(file, noenv, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Database.Target(); !strings.HasPrefix(got, "postgres://op:s3cret@") {
		t.Errorf("Target = %q, want the URL", got)
	}
	if got := c.Database.Display(); strings.Contains(got, "s3cret") || !strings.Contains(got, "****") {
		t.Errorf("Display = %q leaks or loses the password mask", got)
	}
	out, err := c.Masked().TOML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") {
		t.Errorf("config show leaks the database password:\n%s", out)
	}
	if got, want := c.SocketPath(), filepath.Join(dir, "operator.sock"); got != want {
		t.Errorf("SocketPath = %q, want %q (in the key dir: a URL has no directory)", got, want)
	}

	write("[database]\nurl = \"postgres://op@127.0.0.1/operator\"\n")
	if _, err := Resolve(file, noenv, Overrides{}); err == nil || !strings.Contains(err.Error(), "key-dir") {
		t.Errorf("URL without [audit] key-dir: err = %v, want a refusal naming key-dir", err)
	}
	write("[database]\nurl = \"mysql://op@127.0.0.1/operator\"\n[audit]\nkey-dir = \"" + dir + "\"\n")
	if _, err := Resolve(file, noenv, Overrides{}); err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Errorf("non-postgres URL: err = %v", err)
	}

	// --db and OPERATOR_DB take either; the flag wins.
	write("[audit]\nkey-dir = \"" + dir + "\"\n")
	env := func(k string) string {
		if k == "OPERATOR_DB" {
			return "postgresql://op@127.0.0.1/fromenv"
		}
		return ""
	}
	c, err = Resolve(file, env, Overrides{})
	if err != nil || c.Database.URL != "postgresql://op@127.0.0.1/fromenv" {
		t.Errorf("OPERATOR_DB URL: url %q err %v", c.Database.URL, err)
	}
	c, err = Resolve(file, env, Overrides{DB: filepath.Join(dir, "x.db")})
	if err != nil || c.Database.URL != "" || c.Database.Target() != filepath.Join(dir, "x.db") {
		t.Errorf("--db path over OPERATOR_DB URL: %+v err %v", c.Database, err)
	}
}
