package diagnose_test

import (
	"context"
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

// call is one backend call as the fake saw it.
type call struct {
	ticketID int64
	budget   int64
}

// spender is a Backend that answers each ticket from a queue of replies, in
// order, and records the Context.Budget of every call.
type spender struct {
	replies map[int64][]func() (*diagnose.Diagnosis, error)
	calls   []call
}

func (*spender) Name() string { return "spender" }

func (s *spender) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	s.calls = append(s.calls, call{c.Ticket.ID, c.Budget})
	q := s.replies[c.Ticket.ID]
	if len(q) == 0 {
		return nil, fmt.Errorf("%w: no reply scripted for ticket %d", diagnose.ErrUnavailable, c.Ticket.ID)
	}
	s.replies[c.Ticket.ID] = q[1:]
	return q[0]()
}

// TestRunnerTicketBudget drives the runner over a real SQLite file with a
// per-ticket budget of 1000 tokens: tokens spent by a failed attempt are
// stored and lower the next attempt's budget, a success adds its usage to
// them, and a ticket whose budget is spent is not sent to the backend again
// but gets a no-action diagnosis.
func TestRunnerTicketBudget(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	retried := observe(t, s, "store:1", now)
	greedy := observe(t, s, "store:2", now)

	cat, _ := diagnosetest.Catalog(nil)
	be := &spender{replies: map[int64][]func() (*diagnose.Diagnosis, error){
		retried.ID: {
			func() (*diagnose.Diagnosis, error) {
				return nil, diagnose.WithSpent(fmt.Errorf("%w: 529 overloaded", diagnose.ErrUnavailable),
					diagnose.Usage{InputTokens: 300, OutputTokens: 100})
			},
			func() (*diagnose.Diagnosis, error) {
				d := proposal("transfer_leader", `{"region_id":10,"to_store_id":3}`, action.Soon)
				d.Usage = diagnose.Usage{InputTokens: 200, OutputTokens: 50}
				return d, nil
			},
		},
		greedy.ID: {
			func() (*diagnose.Diagnosis, error) {
				return nil, diagnose.WithSpent(fmt.Errorf("%w: 3 turns", diagnose.ErrBudget),
					diagnose.Usage{InputTokens: 700, OutputTokens: 300})
			},
		},
	}}
	gathered := map[int64]int{}
	r := &diagnose.Runner{
		Source: s,
		Gather: diagnose.GatherFunc(func(ctx context.Context, tk ticket.Ticket) (*diagnose.Context, error) {
			gathered[tk.ID]++
			return &diagnose.Context{Ticket: tk}, nil
		}),
		Backend:      be,
		Catalog:      cat,
		Sink:         diagnosetest.StoreSink{S: s},
		TicketBudget: 1000,
		Backoff:      func(int) time.Duration { return 10 * time.Minute },
		Logger:       slog.New(slog.DiscardHandler),
	}

	// Pass 1: both fail after spending tokens; the spent tokens are stored.
	st, err := r.RunOnce(ctx, now)
	if err != nil || st != (diagnose.Stats{Failed: 2}) {
		t.Fatalf("first pass %+v %v", st, err)
	}
	tokens := func(id int64) (ticket.Ticket, [2]int64) {
		t.Helper()
		tk, err := s.Ticket(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return tk, [2]int64{tk.InputTokens, tk.OutputTokens}
	}
	if tk, got := tokens(retried.ID); tk.Status != ticket.Open || tk.DiagnosisAttempts != 1 || got != [2]int64{300, 100} {
		t.Errorf("retried after failure: %s attempts %d tokens %v", tk.Status, tk.DiagnosisAttempts, got)
	}
	if tk, got := tokens(greedy.ID); tk.Status != ticket.Open || got != [2]int64{700, 300} {
		t.Errorf("greedy after failure: %s tokens %v", tk.Status, got)
	}

	// Pass 2: the retried ticket gets what is left (1000-400) and succeeds;
	// the greedy one has nothing left and is not gathered nor sent.
	st, err = r.RunOnce(ctx, now.Add(11*time.Minute))
	if err != nil || st != (diagnose.Stats{Diagnosed: 2, Proposals: 1, OverBudget: 1}) {
		t.Fatalf("second pass %+v %v", st, err)
	}
	want := []call{{retried.ID, 1000}, {greedy.ID, 1000}, {retried.ID, 600}}
	if fmt.Sprint(be.calls) != fmt.Sprint(want) {
		t.Errorf("backend calls (ticket, budget) = %v, want %v", be.calls, want)
	}
	if gathered[greedy.ID] != 1 {
		t.Errorf("over-budget ticket gathered %d times, want 1", gathered[greedy.ID])
	}

	tk, got := tokens(retried.ID)
	if tk.Status != ticket.Diagnosed || got != [2]int64{500, 150} {
		t.Errorf("retried after success: %s tokens %v, want diagnosed [500 150]", tk.Status, got)
	}
	if ps, _ := s.Proposals(ctx, store.ProposalFilter{TicketID: retried.ID}); len(ps) != 1 {
		t.Errorf("retried ticket has %d proposals, want 1", len(ps))
	}

	tk, got = tokens(greedy.ID)
	if tk.Status != ticket.Diagnosed || got != [2]int64{700, 300} ||
		!strings.Contains(tk.DiagnosisMarkdown, "no action: a human must look — token budget for this ticket spent (1000 tokens)") {
		t.Errorf("greedy after budget: %s tokens %v markdown %q", tk.Status, got, tk.DiagnosisMarkdown)
	}
	if ps, _ := s.Proposals(ctx, store.ProposalFilter{TicketID: greedy.ID}); len(ps) != 0 {
		t.Errorf("over-budget ticket got a proposal: %+v", ps)
	}
}

// TestRunnerNoTicketBudget: without TicketBudget the backend's own budget
// applies (Context.Budget stays 0) and failed attempts' tokens are still
// recorded.
func TestRunnerNoTicketBudget(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tk := observe(t, s, "store:1", now)
	cat, _ := diagnosetest.Catalog(nil)
	be := &spender{replies: map[int64][]func() (*diagnose.Diagnosis, error){tk.ID: {
		func() (*diagnose.Diagnosis, error) {
			return nil, diagnose.WithSpent(fmt.Errorf("%w: bad JSON", diagnose.ErrInvalidOutput), diagnose.Usage{InputTokens: 5000, OutputTokens: 900})
		},
	}}}
	r := &diagnose.Runner{
		Source: s, Backend: be, Catalog: cat, Sink: diagnosetest.StoreSink{S: s},
		Gather: diagnose.GatherFunc(func(ctx context.Context, tk ticket.Ticket) (*diagnose.Context, error) {
			return &diagnose.Context{Ticket: tk}, nil
		}),
		Logger: slog.New(slog.DiscardHandler),
	}
	if st, err := r.RunOnce(ctx, now); err != nil || st != (diagnose.Stats{Failed: 1}) {
		t.Fatalf("pass %+v %v", st, err)
	}
	if len(be.calls) != 1 || be.calls[0].budget != 0 {
		t.Errorf("calls %v, want one with budget 0", be.calls)
	}
	got, _ := s.Ticket(ctx, tk.ID)
	if got.InputTokens != 5000 || got.OutputTokens != 900 || got.DiagnosisAttempts != 1 {
		t.Errorf("ticket after failure: tokens %d+%d attempts %d", got.InputTokens, got.OutputTokens, got.DiagnosisAttempts)
	}
}
