package check

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/cli/clitest"
)

func TestNewCmdCheck(t *testing.T) {
	for _, tt := range []struct {
		args    string
		timeout time.Duration
		wantErr string
	}{
		{args: "", timeout: DefaultTimeout},
		{args: "--timeout 5s", timeout: 5 * time.Second},
		{args: "--timeout 0s", wantErr: "--timeout must be positive"},
		{args: "now", wantErr: "takes no arguments"},
	} {
		t.Run(tt.args, func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *CheckOptions
			cmd := NewCmdCheck(f, func(_ context.Context, o *CheckOptions) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(tt.args))
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Timeout != tt.timeout {
				t.Fatalf("err %v opts %+v", err, got)
			}
		})
	}
}
