package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// TestPruneKeepsTheAudit fills a real SQLite store with old resolved
// tickets with and without proposals and audit records, a recent resolved
// one, an open one linked to an old one, archived diagnoses and delivered
// notifications, prunes at a 90-day cutoff and checks what is gone, what
// stays, and that the audit chain still verifies.
func TestPruneKeepsTheAudit(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	old := t0.Add(-200 * 24 * time.Hour)
	now := t0
	cutoff := now.Add(-90 * 24 * time.Hour)

	resolved := func(subject string, at time.Time) int64 {
		t.Helper()
		tk, _, err := s.Observe(ctx, obs("store_down", subject, `{"state":"Down"}`), at)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ResolveTicket(ctx, tk.ID, at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		return tk.ID
	}
	withProposal := func(subject string, at time.Time) (ticketID, proposalID int64) {
		t.Helper()
		tk, _, err := s.Observe(ctx, obs("store_down", subject, `{"state":"Down"}`), at)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{Markdown: "down", JSON: json.RawMessage(`{}`), Backend: "rules",
			Proposal: &action.Proposal{ActionType: "remove_store", Params: json.RawMessage(`{"store_id":4}`),
				Rationale: "drain it", Risks: []string{"moves data"}, Urgency: action.Soon, ExpiresAt: at.Add(time.Hour)}}, at)
		if err != nil {
			t.Fatal(err)
		}
		return tk.ID, pid
	}

	plain := resolved("store:1", old)
	// An old ticket with a proposal nobody touched (expired when resolved).
	unreferenced, unrefProp := withProposal("store:2", old)
	if err := s.RequestRediagnosis(ctx, unreferenced, "again", old); err != nil {
		t.Fatal(err)
	}
	if err := s.ResolveTicket(ctx, unreferenced, old.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExpireTicketProposals(ctx, unreferenced, old.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// An old ticket whose proposal a person rejected: the rejection is an
	// audit record; ticket and proposal are its subjects and stay.
	audited, auditedProp := withProposal("store:3", old)
	if _, err := s.Reject(ctx, auditedProp, "alice", "not now", old.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestRediagnosis(ctx, audited, "again", old.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.ResolveTicket(ctx, audited, old.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// An old resolved ticket followed by an open one on the same key.
	predecessor := resolved("store:4", old)
	successor, _, err := s.Observe(ctx, obs("store_down", "store:4", `{"state":"Down"}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if successor.PreviousID == nil || *successor.PreviousID != predecessor {
		t.Fatalf("successor previous_id = %v, want %d", successor.PreviousID, predecessor)
	}
	recent := resolved("store:5", now.Add(-24*time.Hour))
	open, _, err := s.Observe(ctx, obs("store_down", "store:6", `{"state":"Down"}`), old)
	if err != nil {
		t.Fatal(err)
	}
	// Old notifications: every delivery final, except one still pending.
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET routed = 1, created_at = ?`, fmtTime(old)); err != nil {
		t.Fatal(err)
	}
	var pendingEvent int64
	if err := s.db.QueryRowContext(ctx, `SELECT min(id) FROM outbox`).Scan(&pendingEvent); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO outbox_deliveries (event_id, sink, status, next_attempt_at, updated_at) VALUES (?, 'slack', 'pending', ?, ?)`,
		pendingEvent, fmtTime(old), fmtTime(old)); err != nil {
		t.Fatal(err)
	}
	var events int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	before, err := s.Verify(ctx)
	if err != nil || !before.OK {
		t.Fatalf("verify before: %+v, %v", before, err)
	}

	rep, err := s.Prune(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prune: %+v (outbox events before: %d)", rep, events)

	for _, id := range []int64{plain, unreferenced, predecessor} {
		if _, err := s.Ticket(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("old resolved ticket %d without audit records: err = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.Proposal(ctx, unrefProp); !errors.Is(err, ErrNotFound) {
		t.Errorf("its unreferenced proposal %d: err = %v, want ErrNotFound", unrefProp, err)
	}
	for _, id := range []int64{audited, recent, open.ID, successor.ID} {
		if _, err := s.Ticket(ctx, id); err != nil {
			t.Errorf("ticket %d must stay: %v", id, err)
		}
	}
	if p, err := s.Proposal(ctx, auditedProp); err != nil || p.Status != action.Rejected {
		t.Errorf("the rejected proposal (an audit subject) must stay: %+v, %v", p, err)
	}
	if ds, err := s.Diagnoses(ctx, audited); err != nil || len(ds) != 0 {
		t.Errorf("old archived diagnoses of the kept ticket: %d left, %v", len(ds), err)
	}
	if got, err := s.Ticket(ctx, successor.ID); err != nil || got.PreviousID != nil {
		t.Errorf("successor still links to the pruned ticket: %+v, %v", got.PreviousID, err)
	}
	if rep.Tickets != 3 || rep.Proposals != 1 || rep.Diagnoses != 2 {
		t.Errorf("report = %+v, want 3 tickets, 1 proposal, 2 diagnoses", rep)
	}
	var left int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM outbox_deliveries d WHERE d.event_id = o.id AND d.status NOT IN ('delivered', 'dead'))`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 || rep.OutboxEvents != events-1 {
		t.Errorf("final old notifications left: %d (pruned %d of %d)", left, rep.OutboxEvents, events)
	}
	var kept int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE id = ?`, pendingEvent).Scan(&kept); err != nil || kept != 1 {
		t.Errorf("the notification with a pending delivery was pruned (%d, %v)", kept, err)
	}
	after, err := s.Verify(ctx)
	if err != nil || !after.OK || after.Records != before.Records {
		t.Fatalf("verify after: %+v, %v (records before %d)", after, err, before.Records)
	}
	// A second pass finds nothing more.
	if rep2, err := s.Prune(ctx, cutoff); err != nil || rep2.Tickets+rep2.Proposals+rep2.Diagnoses+rep2.OutboxEvents != 0 {
		t.Errorf("second prune: %+v, %v", rep2, err)
	}
}
