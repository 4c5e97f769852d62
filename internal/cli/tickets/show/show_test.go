package show

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/store"
)

func TestNewCmdShow(t *testing.T) {
	tests := []struct {
		args    []string
		want    int64
		wantErr string
	}{
		{args: []string{"7"}, want: 7},
		{args: []string{"#12"}, want: 12},
		{args: []string{"0"}, wantErr: `invalid ticket id "0"`},
		{args: []string{"-3"}, wantErr: "unknown shorthand flag"},
		{args: []string{"x7"}, wantErr: `invalid ticket id "x7"`},
		{args: nil, wantErr: "needs a ticket id"},
		{args: []string{"1", "2"}, wantErr: "takes one ticket id"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f, _, _ := clitest.Factory(t, "unused.db")
			var got *ShowOptions
			cmd := NewCmdShow(f, func(_ context.Context, o *ShowOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.ID != tt.want {
				t.Fatalf("err %v, opts %+v", err, got)
			}
		})
	}
}

func TestShowRunNotFoundAndResolved(t *testing.T) {
	db, st := clitest.DB(t)
	s := clitest.Seed(t, st)
	f, out, _ := clitest.Factory(t, db)
	opts := &ShowOptions{IO: f.IOStreams, Store: f.Store, Now: f.Now, Format: cmdutil.FormatTable, ID: 99}
	err := showRun(context.Background(), opts)
	var nf *cmdutil.NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, store.ErrNotFound) || err.Error() != "ticket 99 not found" {
		t.Fatalf("err = %v", err)
	}
	if err := st.ResolveTicket(context.Background(), s.Disconnected.ID, clitest.T0.Add(30e9)); err != nil {
		t.Fatal(err)
	}
	opts.ID = s.Disconnected.ID
	if err := showRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "[resolved]") || !strings.Contains(out.String(), "Resolved:") {
		t.Errorf("resolved ticket:\n%s", out)
	}
}
