package propose

import (
	"context"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/cli/clitest"
)

func TestParseParams(t *testing.T) {
	got, err := ParseParams([]string{"store_id=4", "duration=2h", "type=add-peer", "rate=7.5", "keys=[\"a\"]", "name= balance-leader-scheduler "})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"duration":"2h","keys":["a"],"name":"balance-leader-scheduler","rate":7.5,"store_id":4,"type":"add-peer"}`
	if string(got) != want {
		t.Errorf("params = %s, want %s", got, want)
	}
	for _, bad := range [][]string{{"store_id"}, {"=4"}, {"a=1", "a=2"}} {
		if _, err := ParseParams(bad); err == nil {
			t.Errorf("ParseParams(%q) accepted", bad)
		}
	}
}

func TestNewCmdPropose(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
		want    string
	}{
		{args: []string{"resume_scheduler", "--param", "name=balance-leader-scheduler", "--ticket", "3", "--reason", "paused"}, want: `{"name":"balance-leader-scheduler"}`},
		{args: []string{"remove_tombstones", "--reason", "cleanup"}, want: `{}`},
		{args: []string{"resume_scheduler", "--param", "name=x"}, wantErr: "--reason is required"},
		{args: []string{"resume_scheduler", "--param", "name", "--reason", "x"}, wantErr: "want name=value"},
		{args: []string{"--reason", "x"}, wantErr: "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *ProposeOptions
			cmd := NewCmdPropose(f, func(_ context.Context, o *ProposeOptions) error { got = o; return nil })
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
			if string(got.Params) != tt.want || got.Reason == "" {
				t.Errorf("opts = %+v", got)
			}
		})
	}
}
