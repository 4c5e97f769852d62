package revert

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
)

func TestRevertCommands(t *testing.T) {
	tests := []struct {
		cmd     func(*cmdutil.Factory, func(context.Context, *Options) error) *cobra.Command
		args    []string
		wantErr string
		cancel  bool
		by      time.Duration
	}{
		{cmd: NewCmdCancel, args: []string{"2", "--reason", "keep it"}, cancel: true},
		{cmd: NewCmdCancel, args: []string{"2"}, wantErr: "--reason is required"},
		{cmd: NewCmdExtend, args: []string{"2", "--by", "30m"}, by: 30 * time.Minute},
		{cmd: NewCmdExtend, args: []string{"2"}, wantErr: "--by is required"},
		{cmd: NewCmdExtend, args: []string{"2", "--by", "-1m"}, wantErr: "--by is required"},
		{cmd: NewCmdExtend, args: []string{"two", "--by", "1m"}, wantErr: "invalid"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *Options
			cmd := tt.cmd(f, func(_ context.Context, o *Options) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != 2 || got.Cancel != tt.cancel || got.By != tt.by {
				t.Errorf("opts = %+v", got)
			}
		})
	}
}
