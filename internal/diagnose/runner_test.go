package diagnose_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// scripted is a Backend answering per ticket id.
type scripted map[int64]func() (*diagnose.Diagnosis, error)

func (scripted) Name() string { return "scripted" }

func (s scripted) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	if len(c.Actions) == 0 {
		return nil, errors.New("runner did not pass the catalog")
	}
	return s[c.Ticket.ID]()
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), t.TempDir()+"/operator.db", store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func observe(t *testing.T, s *store.Store, subject string, now time.Time) ticket.Ticket {
	t.Helper()
	tk, _, err := s.Observe(context.Background(), ticket.Observation{
		Invariant: "leader_imbalance", Subject: subject, Severity: ticket.Warning,
		Summary: "leaders skewed on " + subject, Evidence: json.RawMessage(`{"start_key":"7480000000000000FF2D5F72","store_id":1}`),
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestRunnerStoresOutcomes drives the runner over a real SQLite file: a
// valid proposal is created in status proposed, a rejected one leaves a
// diagnosis without a proposal, an unavailable backend leaves the ticket
// open with a backoff, and repeated failures end in a fallback diagnosis.
func TestRunnerStoresOutcomes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	good := observe(t, s, "store:1", now)
	bad := observe(t, s, "store:2", now)
	down := observe(t, s, "store:3", now)
	flaky := observe(t, s, "store:4", now)

	cat, fakes := diagnosetest.Catalog(nil)
	backend := scripted{
		good.ID: func() (*diagnose.Diagnosis, error) {
			return proposal("transfer_leader", `{"region_id":10,"to_store_id":3}`, action.Soon), nil
		},
		bad.ID: func() (*diagnose.Diagnosis, error) {
			return proposal("approve_all", `{}`, action.Immediate), nil
		},
		down.ID: func() (*diagnose.Diagnosis, error) {
			return nil, diagnose.WithSpent(fmt.Errorf("%w: 503", diagnose.ErrUnavailable), diagnose.Usage{InputTokens: 7})
		},
		flaky.ID: func() (*diagnose.Diagnosis, error) {
			return nil, fmt.Errorf("%w: no tool call", diagnose.ErrInvalidOutput)
		},
	}
	gathered := 0
	r := &diagnose.Runner{
		Source: s,
		Gather: diagnose.GatherFunc(func(ctx context.Context, tk ticket.Ticket) (*diagnose.Context, error) {
			gathered++
			return &diagnose.Context{Ticket: tk}, nil
		}),
		Backend:     backend,
		Catalog:     cat,
		Sink:        diagnosetest.StoreSink{S: s},
		MaxAttempts: 2,
		Backoff:     func(int) time.Duration { return 10 * time.Minute },
		Logger:      slog.New(slog.DiscardHandler),
	}
	st, err := r.RunOnce(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st != (diagnose.Stats{Diagnosed: 2, Proposals: 1, Rejected: 1, Failed: 2}) || gathered != 4 {
		t.Errorf("first pass stats %+v, gathered %d", st, gathered)
	}

	// Good: diagnosed, one proposal in status proposed.
	tk, _ := s.Ticket(ctx, good.ID)
	if tk.Status != ticket.Diagnosed || !strings.Contains(tk.DiagnosisMarkdown, "`transfer_leader`") {
		t.Errorf("good ticket %s: %q", tk.Status, tk.DiagnosisMarkdown)
	}
	var stored diagnose.Diagnosis
	if err := json.Unmarshal(tk.DiagnosisJSON, &stored); err != nil || stored.ProposedAction == nil || stored.DryRun == nil {
		t.Errorf("stored JSON %s: %v", tk.DiagnosisJSON, err)
	}
	ps, err := s.Proposals(ctx, store.ProposalFilter{TicketID: good.ID})
	if err != nil || len(ps) != 1 {
		t.Fatalf("good proposals %v %v", ps, err)
	}
	p := ps[0]
	if p.Status != action.Proposed || p.ActionType != "transfer_leader" || string(p.Params) != `{"region_id":10,"to_store_id":3}` ||
		p.ProposedBy != "test" || !p.ExpiresAt.Equal(now.Add(diagnose.DefaultProposalTTL)) {
		t.Errorf("proposal %+v", p)
	}

	// Bad: diagnosed, no proposal, reason stored.
	tk, _ = s.Ticket(ctx, bad.ID)
	if tk.Status != ticket.Diagnosed || !strings.Contains(tk.DiagnosisMarkdown, `proposed action "approve_all" rejected`) {
		t.Errorf("bad ticket %s: %q", tk.Status, tk.DiagnosisMarkdown)
	}
	if ps, _ := s.Proposals(ctx, store.ProposalFilter{TicketID: bad.ID}); len(ps) != 0 {
		t.Errorf("a proposal was created from a rejected action: %+v", ps)
	}

	// Down: still open, one attempt, retried after the backoff.
	tk, _ = s.Ticket(ctx, down.ID)
	if tk.Status != ticket.Open || tk.DiagnosisAttempts != 1 || tk.NextDiagnosisAt == nil ||
		!tk.NextDiagnosisAt.Equal(now.Add(10*time.Minute)) || !strings.Contains(tk.LastDiagnosisErr, "unavailable") {
		t.Errorf("unavailable ticket: %+v", tk)
	}

	// Before the backoff nothing is due; after it, the two failing tickets
	// fail again and, at MaxAttempts, get the fallback diagnosis.
	if st, _ := r.RunOnce(ctx, now.Add(time.Minute)); st != (diagnose.Stats{}) {
		t.Errorf("pass inside the backoff did something: %+v", st)
	}
	st, err = r.RunOnce(ctx, now.Add(11*time.Minute))
	if err != nil || st != (diagnose.Stats{Diagnosed: 2, GaveUp: 2}) {
		t.Errorf("second pass %+v %v", st, err)
	}
	tk, _ = s.Ticket(ctx, down.ID)
	if tk.Status != ticket.Diagnosed || !strings.Contains(tk.DiagnosisMarkdown, "no action: a human must look (diagnosis failed 2 times") {
		t.Errorf("gave-up ticket %s: %q", tk.Status, tk.DiagnosisMarkdown)
	}
	if ps, _ := s.Proposals(ctx, store.ProposalFilter{}); len(ps) != 1 {
		t.Errorf("%d proposals in the store, want 1", len(ps))
	}
	if fakes.Executed() != 0 {
		t.Errorf("an action was executed")
	}
}

func TestRunnerGatherAndValidateFailures(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a := observe(t, s, "store:1", now)
	b := observe(t, s, "store:2", now)
	// PD unreachable: dry runs cannot be made.
	cat, _ := diagnosetest.Catalog(errors.New("connection refused"))
	r := &diagnose.Runner{
		Source: s,
		Gather: diagnose.GatherFunc(func(ctx context.Context, tk ticket.Ticket) (*diagnose.Context, error) {
			if tk.ID == a.ID {
				return nil, errors.New("pd: GET /pd/api/v1/stores: connection refused")
			}
			return &diagnose.Context{Ticket: tk}, nil
		}),
		Backend: scripted{b.ID: func() (*diagnose.Diagnosis, error) {
			return proposal("cancel_drain", `{"store_id":2}`, action.Soon), nil
		}},
		Catalog: cat,
		Sink:    diagnosetest.StoreSink{S: s},
		Logger:  slog.New(slog.DiscardHandler),
	}
	st, err := r.RunOnce(ctx, now)
	if err != nil || st.Failed != 2 || st.Diagnosed != 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	for _, id := range []int64{a.ID, b.ID} {
		tk, _ := s.Ticket(ctx, id)
		if tk.Status != ticket.Open || tk.DiagnosisAttempts != 1 || !tk.NextDiagnosisAt.Equal(now.Add(diagnose.DefaultBackoff(1))) {
			t.Errorf("ticket %d: %+v", id, tk)
		}
	}
	if ps, _ := s.Proposals(ctx, store.ProposalFilter{}); len(ps) != 0 {
		t.Errorf("proposal created without a dry run: %+v", ps)
	}
}

func TestDefaultBackoff(t *testing.T) {
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute}
	for i, w := range want {
		if got := diagnose.DefaultBackoff(i + 1); got != w {
			t.Errorf("DefaultBackoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := diagnose.DefaultBackoff(30); got != time.Hour {
		t.Errorf("DefaultBackoff(30) = %v", got)
	}
}

type cancellingSource struct {
	cancel func()
	calls  int
}

func (s *cancellingSource) TicketsToDiagnose(ctx context.Context, now time.Time, limit int) ([]ticket.Ticket, error) {
	s.calls++
	s.cancel()
	return nil, nil
}

func TestRunnerRunStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &cancellingSource{cancel: cancel}
	r := &diagnose.Runner{Source: src, Backend: diagnose.Noop{}, Logger: slog.New(slog.DiscardHandler)}
	if err := r.Run(ctx, time.Hour); !errors.Is(err, context.Canceled) || src.calls != 1 {
		t.Errorf("Run = %v after %d passes", err, src.calls)
	}
	if err := r.Run(context.Background(), 0); err == nil {
		t.Errorf("zero interval accepted")
	}
}
