package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/config"
)

func TestRetentionConfig(t *testing.T) {
	if d := config.Default().Retention; d.ResolvedTickets.Duration != 90*24*time.Hour || d.Interval.Duration != time.Hour {
		t.Errorf("defaults = %+v, want 90d and 1h", d)
	}
	for _, tt := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{`resolved-tickets = "30d"`, 30 * 24 * time.Hour, ""},
		{`resolved-tickets = "36h"`, 36 * time.Hour, ""},
		{`resolved-tickets = "0"`, 0, ""},
		{`resolved-tickets = "1h"`, 0, "at least 1d"},
		{`resolved-tickets = "-3d"`, 0, "invalid duration"},
		{`resolved-tickets = "ninety days"`, 0, "invalid duration"},
	} {
		path := filepath.Join(t.TempDir(), "operator.toml")
		if err := os.WriteFile(path, []byte("[retention]\n"+tt.in+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.in, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.in, err)
		case cfg.Retention.ResolvedTickets.Duration != tt.want:
			t.Errorf("%s: %v, want %v", tt.in, cfg.Retention.ResolvedTickets.Duration, tt.want)
		}
	}
	b, err := config.Default().TOML()
	if err != nil || !strings.Contains(string(b), `resolved-tickets = "90d"`) {
		t.Errorf("config show does not render 90d: %v\n%s", err, b)
	}
}
