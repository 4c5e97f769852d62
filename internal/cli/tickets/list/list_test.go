package list

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/ticket"
)

func TestNewCmdList(t *testing.T) {
	tests := []struct {
		args    string
		want    []ticket.Status
		limit   int
		wantErr string
	}{
		{args: "", want: nil, limit: 50},
		{args: "--status open", want: []ticket.Status{ticket.Open}, limit: 50},
		{args: "--status open,RESOLVED --limit 3", want: []ticket.Status{ticket.Open, ticket.Resolved}, limit: 3},
		{args: "--status active", want: []ticket.Status{ticket.Open, ticket.Diagnosed}, limit: 50},
		{args: "--status all --limit 0", want: nil, limit: 0},
		{args: "--status closed", wantErr: `invalid --status "closed"`},
		{args: "--limit -1", wantErr: "--limit must not be negative"},
		{args: "extra", wantErr: "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *ListOptions
			cmd := NewCmdList(f, func(_ context.Context, o *ListOptions) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(tt.args))
			err := cmd.Execute()
			if tt.wantErr != "" {
				var fe *cmdutil.FlagError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if !strings.Contains(tt.args, "extra") && !asFlagError(err, &fe) {
					t.Errorf("err %T is not a *FlagError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Statuses, tt.want) || got.Limit != tt.limit || got.Format != cmdutil.FormatTable {
				t.Errorf("opts = %+v", got)
			}
		})
	}
}

func asFlagError(err error, fe **cmdutil.FlagError) bool {
	e, ok := err.(*cmdutil.FlagError)
	*fe = e
	return ok
}

func TestListRunLimitAndEmpty(t *testing.T) {
	db, st := clitest.DB(t)
	f, out, errOut := clitest.Factory(t, db)
	opts := &ListOptions{IO: f.IOStreams, Store: f.Store, Now: f.Now, Format: cmdutil.FormatTable}
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || !strings.Contains(errOut.String(), "no tickets") {
		t.Errorf("empty db: out %q err %q", out, errOut)
	}
	clitest.Seed(t, st)
	opts.Limit = 1
	if err := listRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "store_disconnected") {
		t.Errorf("limit 1 shows the newest ticket only:\n%s", out)
	}
}
