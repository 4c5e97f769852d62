package list

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/clitest"
)

func TestNewCmdList(t *testing.T) {
	tests := []struct {
		args    string
		want    []action.Status
		ticket  int64
		wantErr string
	}{
		{args: ""},
		{args: "--status proposed,dry-run", want: []action.Status{action.Proposed, action.DryRun}},
		{args: "--status pending --ticket 4", want: []action.Status{action.Proposed, action.DryRun}, ticket: 4},
		{args: "--status Completed", want: []action.Status{action.Completed}},
		{args: "--status done", wantErr: `invalid --status "done"`},
		{args: "--ticket -1", wantErr: "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *ListOptions
			cmd := NewCmdList(f, func(_ context.Context, o *ListOptions) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(tt.args))
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got.Statuses, tt.want) || got.TicketID != tt.ticket {
				t.Fatalf("err %v, opts %+v", err, got)
			}
		})
	}
}

func TestListRunByTicket(t *testing.T) {
	db, st := clitest.DB(t)
	s := clitest.Seed(t, st)
	f, out, errOut := clitest.Factory(t, db)
	opts := &ListOptions{IO: f.IOStreams, Store: f.Store, Now: f.Now, Format: "table", TicketID: s.Disconnected.ID}
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || !strings.Contains(errOut.String(), "no actions") {
		t.Errorf("ticket without proposals: %q %q", out, errOut)
	}
	opts.TicketID = s.Imbalance.ID
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "transfer_leader") {
		t.Errorf("output:\n%s", out)
	}
}
