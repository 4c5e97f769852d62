package list

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/store"
)

// --scheduled lists what will revert and when, from the database.
func TestListScheduled(t *testing.T) {
	db, st := clitest.DB(t)
	s := clitest.Seed(t, st)
	ctx := context.Background()
	now := clitest.T0
	if _, err := st.Approve(ctx, s.Proposal.ID, "bob", now); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimID(ctx, s.Proposal.ID, "test:1", now); err != nil {
		t.Fatal(err)
	}
	_, fus, err := st.FinishScheduling(ctx, s.Proposal.ID, action.Completed, "ok", action.Record{},
		[]store.FollowUp{{ActionType: "remove_evict_leader", Params: json.RawMessage(`{"store_id":4}`),
			Expect: json.RawMessage(`{"evicting":true}`), Restore: json.RawMessage(`{"evicting":false}`), DueAt: now.Add(2 * time.Hour)}}, now)
	if err != nil || len(fus) != 1 {
		t.Fatalf("%+v %v", fus, err)
	}
	f, out, _ := clitest.Factory(t, db)
	opts := &ListOptions{IO: f.IOStreams, Store: f.Store, Now: func() time.Time { return now.Add(30 * time.Minute) }, Format: "table", Scheduled: true, Wide: true}
	if err := listRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"remove_evict_leader", `{"store_id":4}`, "scheduled", "1h30m0s", `{"evicting":true}`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--scheduled output lacks %q:\n%s", want, out)
		}
	}
}
