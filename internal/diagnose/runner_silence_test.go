package diagnose_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/diagnosetest"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// A silence on store 1 (real store, the daemon's matcher): the ticket of
// store 1 is diagnosed and stored without a proposal, the diagnosis names
// the silence; store 2's ticket gets its proposal. Silences that cannot
// be read drop the proposal too (fail closed).
func TestRunnerSilencedTicketHasNoProposal(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	muted := observe(t, s, "store:1", now)
	loud := observe(t, s, "store:2", now)
	broken := observe(t, s, "store:3", now)
	sl, err := s.CreateSilence(ctx, store.Silence{Subject: "store:1", StartsAt: now.Add(-time.Minute), EndsAt: now.Add(2 * time.Hour),
		Reason: "rolling restart", CreatedBy: "alice", CreatedRole: "approver", CreatedVia: "unix"}, now)
	if err != nil {
		t.Fatal(err)
	}
	m := &store.SilenceMatcher{Store: s}
	cat, _ := diagnosetest.Catalog(nil)
	prop := func() (*diagnose.Diagnosis, error) {
		return proposal("transfer_leader", `{"region_id":10,"to_store_id":3}`, action.Soon), nil
	}
	r := &diagnose.Runner{
		Source: s,
		Gather: diagnose.GatherFunc(func(ctx context.Context, tk ticket.Ticket) (*diagnose.Context, error) {
			return &diagnose.Context{Ticket: tk}, nil
		}),
		Backend: scripted{muted.ID: prop, loud.ID: prop, broken.ID: prop},
		Catalog: cat,
		Sink:    diagnosetest.StoreSink{S: s},
		Logger:  slog.New(slog.DiscardHandler),
		Silenced: func(ctx context.Context, tk ticket.Ticket, at time.Time) (string, error) {
			if tk.ID == broken.ID {
				return "", errors.New("database is locked")
			}
			got, err := m.Match(ctx, tk.Invariant, tk.Subject, at)
			if got == nil || err != nil {
				return "", err
			}
			return got.Note(), nil
		},
	}
	st, err := r.RunOnce(ctx, now)
	if err != nil || st.Diagnosed != 3 || st.Proposals != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
	want := "no action proposed: silenced by #" + "1 until " + sl.EndsAt.Format(time.RFC3339) + " (rolling restart, by alice)"
	tk, _ := s.Ticket(ctx, muted.ID)
	var d diagnose.Diagnosis
	if err := json.Unmarshal(tk.DiagnosisJSON, &d); err != nil {
		t.Fatal(err)
	}
	if tk.Status != ticket.Diagnosed || d.ProposedAction != nil || !strings.HasPrefix(d.NoActionReason, want) ||
		!strings.Contains(tk.DiagnosisMarkdown, "silenced by #1") || !strings.Contains(d.NoActionReason, "transfer_leader") {
		t.Errorf("silenced ticket: status %s, reason %q, markdown %q", tk.Status, d.NoActionReason, tk.DiagnosisMarkdown)
	}
	for id, n := range map[int64]int{muted.ID: 0, loud.ID: 1, broken.ID: 0} {
		if ps, _ := s.Proposals(ctx, store.ProposalFilter{TicketID: id}); len(ps) != n {
			t.Errorf("ticket %d: %d proposals, want %d", id, len(ps), n)
		}
	}
	tk, _ = s.Ticket(ctx, broken.ID)
	if !strings.Contains(tk.DiagnosisMarkdown, "silences could not be read") {
		t.Errorf("unreadable silences: %q", tk.DiagnosisMarkdown)
	}
}
