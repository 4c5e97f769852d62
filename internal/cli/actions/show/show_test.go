package show

import (
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

func TestHistory(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) *time.Time { v := t0.Add(time.Duration(s) * time.Second); return &v }
	p := action.Proposal{ID: 5, Status: action.Completed, ProposedAt: t0, ProposedBy: "rules",
		ApprovedAt: at(20), ApprovedBy: "alice", ExecutedAt: at(21), ExecutedBy: "host:1", FinishedAt: at(23), Result: "leader moved"}
	recs := []action.Record{
		{ID: 9, DryRun: false, Success: true, FinishedAt: *at(23)},
		{ID: 8, Event: action.EventApproval, Success: true, ApprovedBy: "alice", Message: "approved by alice", FinishedAt: *at(20)},
		{ID: 7, DryRun: true, Success: true, ExecutedBy: "alice", Message: "valid", FinishedAt: *at(10)},
	}
	got := History(p, recs)
	want := []action.Status{action.Proposed, action.DryRun, action.Approved, action.Executing, action.Completed}
	if len(got) != len(want) {
		t.Fatalf("history = %+v", got)
	}
	for i, e := range got {
		if e.Status != want[i] {
			t.Errorf("event %d = %+v, want %s", i, e, want[i])
		}
	}
	if got[1].By != "alice" || got[2].By != "alice" || got[2].Detail != "record 8" || got[4].Detail != "leader moved" {
		t.Errorf("history = %+v", got)
	}
}
