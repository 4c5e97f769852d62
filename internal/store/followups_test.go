package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// Manual proposals get a diagnosed manual ticket tagged with the cluster;
// a resolved or foreign ticket is refused. Scheduled reverts: one claim
// each, cancel and extend only while scheduled, every change audited.
func TestManualProposalsAndFollowUps(t *testing.T) {
	forEachBackend(t, testManualProposalsAndFollowUps)
}

func testManualProposalsAndFollowUps(t *testing.T, be backend) {
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
	prop := action.Proposal{ActionType: "evict_leader", Params: json.RawMessage(`{"store_id":4,"duration":"1h"}`),
		Rationale: "maintenance", ProposedBy: action.HumanProposer + "alice", ExpiresAt: now.Add(time.Hour)}
	p, err := st.ProposeManual(ctx, ManualProposal{Proposal: prop}, now)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := st.Ticket(ctx, p.TicketID)
	if err != nil || tk.Invariant != ManualInvariant || tk.Status != ticket.Diagnosed || tk.ClusterID != "7001" ||
		tk.Subject != "evict_leader:1" || p.ClusterID != "7001" {
		t.Fatalf("ticket %+v (%v), proposal %+v", tk, err, p)
	}
	if _, err := st.ProposeManual(ctx, ManualProposal{TicketID: 99, Proposal: prop}, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown ticket: %v", err)
	}
	bad := prop
	bad.Rationale = ""
	if _, err := st.ProposeManual(ctx, ManualProposal{Proposal: bad}, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("no reason: %v", err)
	}
	if err := st.ResolveTicket(ctx, tk.ID, now); err != nil {
		t.Fatal(err)
	}
	var te *ticket.ErrTransition
	if _, err := st.ProposeManual(ctx, ManualProposal{TicketID: tk.ID, Proposal: prop}, now); !errors.As(err, &te) {
		t.Errorf("resolved ticket: %v", err)
	}

	// A completed temporary change with its revert.
	p2, err := st.ProposeManual(ctx, ManualProposal{Proposal: prop}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Approve(ctx, p2.ID, "bob", now); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimID(ctx, p2.ID, "x:1", now); err != nil {
		t.Fatal(err)
	}
	fu := FollowUp{ActionType: "remove_evict_leader", Params: json.RawMessage(`{"store_id":4}`),
		Expect: json.RawMessage(`{"evicting":true}`), Restore: json.RawMessage(`{"evicting":false}`), DueAt: now.Add(time.Hour)}
	_, fus, err := st.FinishScheduling(ctx, p2.ID, action.Completed, "ok", action.Record{}, []FollowUp{fu}, now)
	if err != nil || len(fus) != 1 || fus[0].Status != FollowUpScheduled || fus[0].ClusterID != "7001" {
		t.Fatalf("%+v %v", fus, err)
	}
	id := fus[0].ID
	if f, err := st.ClaimDueFollowUp(ctx, "x:1", now); err != nil || f != nil {
		t.Fatalf("claimed before due: %+v %v", f, err)
	}
	bob := Approval{By: "bob", Role: "approver"}
	if f, err := st.ExtendFollowUp(ctx, id, bob, 30*time.Minute, now); err != nil || !f.DueAt.Equal(now.Add(90*time.Minute)) {
		t.Fatalf("extend: %+v %v", f, err)
	}
	if f, err := st.ClaimDueFollowUp(ctx, "x:1", now.Add(time.Hour)); err != nil || f != nil {
		t.Fatalf("claimed before the extended due time: %+v %v", f, err)
	}
	f, err := st.ClaimDueFollowUp(ctx, "x:1", now.Add(2*time.Hour))
	if err != nil || f == nil || f.Status != FollowUpRunning {
		t.Fatalf("claim: %+v %v", f, err)
	}
	if again, err := st.ClaimDueFollowUp(ctx, "y:2", now.Add(2*time.Hour)); err != nil || again != nil {
		t.Fatalf("claimed twice: %+v %v", again, err)
	}
	if _, err := st.CancelFollowUp(ctx, id, bob, "keep", now); !errors.Is(err, ErrFollowUpState) {
		t.Fatalf("cancel a running revert: %v", err)
	}
	if n, err := st.RequeueFollowUps(ctx, func(by string) bool { return by == "x:1" }, now); err != nil || n != 1 {
		t.Fatalf("requeue: %d %v", n, err)
	}
	if got, err := st.CancelFollowUp(ctx, id, bob, "keep the eviction", now); err != nil || got.Status != FollowUpCancelled {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	recs, err := st.Records(ctx, RecordFilter{ProposalID: p2.ID})
	if err != nil {
		t.Fatal(err)
	}
	reverts := 0
	for _, r := range recs {
		if r.Event == action.EventRevert {
			reverts++
		}
	}
	if reverts != 2 { // extension, cancellation
		t.Errorf("%d revert records, want 2", reverts)
	}
	if rep, err := st.Verify(ctx); err != nil || !rep.OK {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
