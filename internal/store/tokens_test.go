package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTicketTokensAccumulate: on a real SQLite file, tokens spent by failed
// attempts and by diagnoses add up on the ticket, also across a Reopen and
// after closing and reopening the database; negative counts are refused.
func TestTicketTokensAccumulate(t *testing.T) { forEachBackend(t, testTicketTokensAccumulate) }

func testTicketTokensAccumulate(t *testing.T, be backend) {
	s, path := be.openTemp(t)
	ctx := context.Background()
	tk, _, err := s.Observe(ctx, obs("leader_imbalance", "store:1", `{}`), t0)
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, in, out int64, attempts int) {
		t.Helper()
		got, err := s.Ticket(ctx, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.InputTokens != in || got.OutputTokens != out || got.DiagnosisAttempts != attempts {
			t.Errorf("%s: tokens %d+%d attempts %d, want %d+%d attempts %d", step,
				got.InputTokens, got.OutputTokens, got.DiagnosisAttempts, in, out, attempts)
		}
	}

	if err := s.DiagnosisFailedSpent(ctx, tk.ID, "budget", t0.Add(time.Minute), 300, 100); err != nil {
		t.Fatal(err)
	}
	check("first failure", 300, 100, 1)
	if err := s.DiagnosisFailed(ctx, tk.ID, "unreachable", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("failure without tokens", 300, 100, 2)
	if err := s.DiagnosisFailedSpent(ctx, tk.ID, "x", t0, -1, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative input tokens: %v, want ErrInvalid", err)
	}
	check("refused failure", 300, 100, 2)

	if _, err := s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{Markdown: "m", Backend: "openai:x",
		InputTokens: 200, OutputTokens: 50}, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("diagnosis", 500, 150, 0)

	// Re-diagnosis after Reopen keeps charging the same ticket.
	if err := s.Reopen(ctx, tk.ID, t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{Markdown: "m", InputTokens: 0, OutputTokens: -5}, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative output tokens: %v, want ErrInvalid", err)
	}
	if err := s.DiagnosisFailedSpent(ctx, tk.ID, "invalid output", t0.Add(5*time.Minute), 40, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{Markdown: "m2", Backend: "openai:x",
		InputTokens: 60, OutputTokens: 40}, t0.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("after reopen", 600, 200, 0)

	// Persisted: a fresh handle on the same file reads the totals.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	s = s2
	check("reopened database", 600, 200, 0)

	if err := s.DiagnosisFailedSpent(ctx, 999, "x", t0, 1, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("DiagnosisFailedSpent(999): %v, want ErrNotFound", err)
	}
}
