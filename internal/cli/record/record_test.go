package record

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/cli/clitest"
)

func TestNewCmdRecordFlags(t *testing.T) {
	for _, tt := range []struct {
		args    string
		every   time.Duration
		wantErr string
	}{
		{args: "--out t.json", every: 10 * time.Second},
		{args: "--out t.json --every 2s --for 1m --source https://github.com/tikv/pd/issues/1", every: 2 * time.Second},
		{args: "", wantErr: "--out is required"},
		{args: "--out t.json --every 0s", wantErr: "--every must be positive"},
		{args: "--out t.json extra", wantErr: "takes no arguments"},
	} {
		t.Run(tt.args, func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *Options
			cmd := NewCmdRecord(f, func(_ context.Context, o *Options) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(tt.args))
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Every != tt.every {
				t.Fatalf("err %v opts %+v", err, got)
			}
		})
	}
}
