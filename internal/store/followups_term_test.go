package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// Several replicas: a revert claimed by a leader that was deposed is
// requeued by the new leader because of its lower claim term, whatever
// its host:pid says (a live PID on another host, or a reused one); the
// new leader's own running revert is not.
func TestRequeueFollowUpsByTerm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		st, err := Open(ctx, be.target(t), Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := st.BindCluster(ctx, "7001", "", now); err != nil {
			t.Fatal(err)
		}
		schedule := func() int64 {
			t.Helper()
			prop := action.Proposal{ActionType: "evict_leader", Params: json.RawMessage(`{"store_id":4,"duration":"1h"}`),
				Rationale: "maintenance", ProposedBy: action.HumanProposer + "alice", ExpiresAt: now.Add(time.Hour)}
			p, err := st.ProposeManual(ctx, ManualProposal{Proposal: prop}, now)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Approve(ctx, p.ID, "bob", now); err != nil {
				t.Fatal(err)
			}
			if _, err := st.ClaimID(ctx, p.ID, "x:1", now); err != nil {
				t.Fatal(err)
			}
			fu := FollowUp{ActionType: "remove_evict_leader", Params: json.RawMessage(`{"store_id":4}`),
				Expect: json.RawMessage(`{"evicting":true}`), Restore: json.RawMessage(`{"evicting":false}`), DueAt: now}
			_, fus, err := st.FinishScheduling(ctx, p.ID, action.Completed, "ok", action.Record{}, []FollowUp{fu}, now)
			if err != nil {
				t.Fatal(err)
			}
			return fus[0].ID
		}
		alive := func(string) bool { return false } // every host:pid looks alive
		old := schedule()
		if f, err := st.ClaimDueFollowUp(WithTerm(ctx, 5), "host-a:100", now); err != nil || f == nil || f.ID != old {
			t.Fatalf("claim under term 5: %+v %v", f, err)
		}
		mine := schedule()
		if f, err := st.ClaimDueFollowUp(WithTerm(ctx, 6), "host-b:100", now); err != nil || f == nil || f.ID != mine {
			t.Fatalf("claim under term 6: %+v %v", f, err)
		}
		n, err := st.RequeueFollowUps(WithTerm(ctx, 6), alive, now)
		if err != nil || n != 1 {
			t.Fatalf("requeue under term 6: %d %v; want the deposed leader's revert only", n, err)
		}
		for id, want := range map[int64]FollowUpStatus{old: FollowUpScheduled, mine: FollowUpRunning} {
			f, err := st.FollowUp(ctx, id)
			if err != nil || f.Status != want {
				t.Errorf("revert %d: %+v %v, want %s", id, f.Status, err, want)
			}
		}
	})
}
