package reject

import (
	"context"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/cli/clitest"
)

func TestNewCmdReject(t *testing.T) {
	tests := []struct {
		args       []string
		id         int64
		reason, as string
		wantErr    string
	}{
		{args: []string{"3", "--reason", "  not now "}, id: 3, reason: "not now"},
		{args: []string{"3", "--reason", "no", "--as", "carol"}, id: 3, reason: "no", as: "carol"},
		{args: []string{"3"}, wantErr: "--reason is required"},
		{args: []string{"3", "--reason", "  "}, wantErr: "--reason is required"},
		{args: []string{"3", "--reason", "x", "--as", ""}, wantErr: "--as needs a name"},
		{args: []string{"--reason", "x"}, wantErr: "needs an action id"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *RejectOptions
			cmd := NewCmdReject(f, func(_ context.Context, o *RejectOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.ID != tt.id || got.Reason != tt.reason {
				t.Fatalf("err %v, opts %+v", err, got)
			}
			if got.OnBehalfOf != tt.as {
				t.Errorf("on behalf of = %q", got.OnBehalfOf)
			}
		})
	}
}
