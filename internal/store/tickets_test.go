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

func TestObserveDedup(t *testing.T) { forEachBackend(t, testObserveDedup) }

func testObserveDedup(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()

	t1, opened, err := s.Observe(ctx, obs("store_down", "store:4", `{"down_for_s":1900}`), t0)
	if err != nil || !opened {
		t.Fatalf("first Observe: opened=%v err=%v", opened, err)
	}
	if t1.Status != ticket.Open || t1.Key != "store_down/store:4" || t1.Occurrences != 1 || t1.PreviousID != nil {
		t.Errorf("new ticket = %+v", t1)
	}
	if !t1.FirstSeen.Equal(t0) || !t1.LastSeen.Equal(t0) {
		t.Errorf("first/last seen = %v/%v, want %v", t1.FirstSeen, t1.LastSeen, t0)
	}

	o := obs("store_down", "store:4", `{"down_for_s":1910}`)
	o.Severity, o.Summary = ticket.Emergency, "still down"
	t2, opened, err := s.Observe(ctx, o, t0.Add(10*time.Second))
	if err != nil || opened {
		t.Fatalf("second Observe: opened=%v err=%v", opened, err)
	}
	if t2.ID != t1.ID || t2.Occurrences != 2 {
		t.Errorf("second Observe made id=%d occ=%d, want id=%d occ=2", t2.ID, t2.Occurrences, t1.ID)
	}
	if string(t2.FirstEvidence) != `{"down_for_s":1900}` || string(t2.Evidence) != `{"down_for_s":1910}` {
		t.Errorf("evidence first=%s latest=%s", t2.FirstEvidence, t2.Evidence)
	}
	if t2.Severity != ticket.Emergency || t2.Summary != "still down" || !t2.LastSeen.Equal(t0.Add(10*time.Second)) {
		t.Errorf("updated ticket = %+v", t2)
	}
	// An observation with an older timestamp (another process's clock)
	// never moves last_seen backwards.
	t3, _, err := s.Observe(ctx, o, t0.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !t3.LastSeen.Equal(t0.Add(10 * time.Second)) {
		t.Errorf("last_seen moved backwards to %v", t3.LastSeen)
	}

	// Another subject is another ticket.
	if _, opened, _ := s.Observe(ctx, obs("store_down", "store:5", `{}`), t0); !opened {
		t.Error("different subject did not open a ticket")
	}
	all, err := s.Tickets(ctx, TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Subject != "store:5" {
		t.Errorf("Tickets = %d tickets, first %q; want 2 newest first", len(all), all[0].Subject)
	}
}

func TestObserveInvalid(t *testing.T) { forEachBackend(t, testObserveInvalid) }

func testObserveInvalid(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	for name, o := range map[string]ticket.Observation{
		"no subject":   {Invariant: "x", Severity: ticket.Warning},
		"bad severity": {Invariant: "x", Subject: "y", Severity: "meh"},
		"bad evidence": {Invariant: "x", Subject: "y", Severity: ticket.Warning, Evidence: json.RawMessage(`{"a":`)},
	} {
		if _, _, err := s.Observe(ctx, o, t0); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if all, _ := s.Tickets(ctx, TicketFilter{}); len(all) != 0 {
		t.Errorf("invalid observations stored %d tickets", len(all))
	}
}

func TestSweepQuietPeriodAndRecurrence(t *testing.T) {
	forEachBackend(t, testSweepQuietPeriodAndRecurrence)
}

func testSweepQuietPeriodAndRecurrence(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	quiet := 60 * time.Second
	down := obs("store_down", "store:4", `{"n":1}`)
	slow := obs("slow_store", "store:2", `{"score":90}`)
	first, _, _ := s.Observe(ctx, down, t0)
	slowT, _, _ := s.Observe(ctx, slow, t0)
	evaluated := []string{"store_down"} // slow_store failed to evaluate this cycle

	// Cycle 1: store_down holds again -> cleared_at set, not resolved.
	res, err := s.Sweep(ctx, evaluated, map[string]bool{}, t0.Add(10*time.Second), quiet)
	if err != nil || len(res) != 0 {
		t.Fatalf("sweep 1: resolved %d, err %v", len(res), err)
	}
	got, _ := s.Ticket(ctx, first.ID)
	if got.ClearedAt == nil || !got.ClearedAt.Equal(t0.Add(10*time.Second)) || got.Status != ticket.Open {
		t.Fatalf("after sweep 1: cleared_at=%v status=%s", got.ClearedAt, got.Status)
	}
	// The violation returns before the quiet period ends: cleared_at reset.
	if _, _, err := s.Observe(ctx, down, t0.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Ticket(ctx, first.ID); got.ClearedAt != nil {
		t.Fatalf("Observe did not reset cleared_at: %v", got.ClearedAt)
	}
	// Still violated this cycle: nothing changes.
	if res, _ = s.Sweep(ctx, evaluated, map[string]bool{down.Key(): true}, t0.Add(30*time.Second), quiet); len(res) != 0 {
		t.Fatalf("violated ticket resolved")
	}
	// Holds from t0+40s; at t0+99s not yet quiet long enough, at t0+100s resolved.
	s.Sweep(ctx, evaluated, nil, t0.Add(40*time.Second), quiet)
	if res, _ = s.Sweep(ctx, evaluated, nil, t0.Add(99*time.Second), quiet); len(res) != 0 {
		t.Fatalf("resolved before the quiet period: %+v", res)
	}
	res, err = s.Sweep(ctx, evaluated, nil, t0.Add(100*time.Second), quiet)
	if err != nil || len(res) != 1 || res[0].ID != first.ID {
		t.Fatalf("sweep at quiet end: %+v, %v", res, err)
	}
	if res[0].Status != ticket.Resolved || !res[0].ResolvedAt.Equal(t0.Add(100*time.Second)) {
		t.Errorf("resolved ticket = status %s resolved_at %v", res[0].Status, res[0].ResolvedAt)
	}
	// The slow_store ticket was never evaluated: untouched.
	if got, _ = s.Ticket(ctx, slowT.ID); got.Status != ticket.Open || got.ClearedAt != nil {
		t.Errorf("ticket of a non-evaluated invariant changed: %+v", got)
	}
	if _, err := s.OpenTicket(ctx, down.Key()); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenTicket after resolve: %v, want ErrNotFound", err)
	}

	// The problem comes back: a new ticket linking to the old one.
	again, opened, err := s.Observe(ctx, down, t0.Add(200*time.Second))
	if err != nil || !opened || again.ID == first.ID {
		t.Fatalf("recurrence: opened=%v id=%d err=%v", opened, again.ID, err)
	}
	if again.PreviousID == nil || *again.PreviousID != first.ID {
		t.Errorf("recurrence PreviousID = %v, want %d", again.PreviousID, first.ID)
	}
	// quiet = 0 resolves in the first sweep that sees it hold.
	if res, _ = s.Sweep(ctx, evaluated, nil, t0.Add(210*time.Second), 0); len(res) != 1 || res[0].ID != again.ID {
		t.Errorf("quiet=0 sweep resolved %+v", res)
	}
	third, _, _ := s.Observe(ctx, down, t0.Add(300*time.Second))
	if third.PreviousID == nil || *third.PreviousID != again.ID {
		t.Errorf("third PreviousID = %v, want newest resolved %d", third.PreviousID, again.ID)
	}
}

func TestDedupAcrossReopen(t *testing.T) { forEachBackend(t, testDedupAcrossReopen) }

func testDedupAcrossReopen(t *testing.T, be backend) {
	s, path := be.openTemp(t)
	ctx := context.Background()
	o := obs("region_down_peer", "region:12", `{}`)
	first, _, _ := s.Observe(ctx, o, t0)
	s.Close()
	s2 := openAt(t, path)
	got, opened, err := s2.Observe(ctx, o, t0.Add(time.Minute))
	if err != nil || opened || got.ID != first.ID || got.Occurrences != 2 {
		t.Fatalf("after restart: opened=%v id=%d occ=%d err=%v", opened, got.ID, got.Occurrences, err)
	}
}

func TestPartialUniqueIndex(t *testing.T) { forEachBackend(t, testPartialUniqueIndex) }

func testPartialUniqueIndex(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	s.Observe(ctx, obs("a", "b", `{}`), t0)
	// Bypass Observe: the database itself refuses a second active ticket.
	_, err := s.db.ExecContext(ctx, `INSERT INTO tickets (key, invariant, subject, severity, first_seen, last_seen, updated_at)
VALUES ('a/b', 'a', 'b', 'warning', 'x', 'x', 'x')`)
	if err == nil {
		t.Fatal("second non-resolved ticket for one key was accepted")
	}
}

func TestDiagnosisLifecycle(t *testing.T) { forEachBackend(t, testDiagnosisLifecycle) }

func testDiagnosisLifecycle(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	tk, _, _ := s.Observe(ctx, obs("store_down", "store:4", `{}`), t0)

	todo, err := s.TicketsToDiagnose(ctx, t0, 10)
	if err != nil || len(todo) != 1 {
		t.Fatalf("TicketsToDiagnose = %d, %v", len(todo), err)
	}
	// A failed attempt backs off.
	if err := s.DiagnosisFailed(ctx, tk.ID, "model timeout", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Ticket(ctx, tk.ID)
	if got.DiagnosisAttempts != 1 || got.LastDiagnosisErr != "model timeout" || got.Status != ticket.Open {
		t.Errorf("after failure: %+v", got)
	}
	if todo, _ = s.TicketsToDiagnose(ctx, t0.Add(30*time.Second), 10); len(todo) != 0 {
		t.Errorf("ticket offered during backoff")
	}
	if todo, _ = s.TicketsToDiagnose(ctx, t0.Add(time.Minute), 10); len(todo) != 1 {
		t.Errorf("ticket not offered after backoff")
	}

	pid, err := s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{
		Markdown: "# Store 4 is down", JSON: json.RawMessage(`{"root_cause":"disk"}`),
		Backend: "anthropic:claude", InputTokens: 1200, OutputTokens: 300,
		Proposal: &action.Proposal{ActionType: "remove_store", Params: json.RawMessage(`{"store_id":4}`),
			Risks: []string{"data movement"}, ExpiresAt: t0.Add(2 * time.Hour)},
	}, t0.Add(2*time.Minute))
	if err != nil || pid == 0 {
		t.Fatalf("SaveDiagnosis: pid=%d err=%v", pid, err)
	}
	got, _ = s.Ticket(ctx, tk.ID)
	if got.Status != ticket.Diagnosed || got.DiagnosisMarkdown != "# Store 4 is down" ||
		string(got.DiagnosisJSON) != `{"root_cause":"disk"}` || got.DiagnosisAttempts != 0 ||
		got.NextDiagnosisAt != nil || got.InputTokens != 1200 || got.OutputTokens != 300 ||
		got.DiagnosisBackend != "anthropic:claude" || got.DiagnosedAt == nil {
		t.Errorf("after SaveDiagnosis: %+v", got)
	}
	p, err := s.Proposal(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != action.Proposed || p.TicketID != tk.ID || p.ProposedBy != "anthropic:claude" ||
		!p.ProposedAt.Equal(t0.Add(2*time.Minute)) || !p.ExpiresAt.Equal(t0.Add(2*time.Hour)) ||
		len(p.Risks) != 1 || string(p.Params) != `{"store_id":4}` {
		t.Errorf("proposal = %+v", p)
	}
	if todo, _ = s.TicketsToDiagnose(ctx, t0.Add(time.Hour), 10); len(todo) != 0 {
		t.Errorf("diagnosed ticket offered for diagnosis")
	}

	// A second diagnosis of a diagnosed ticket is refused, with no proposal.
	_, err = s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{Markdown: "again",
		Proposal: &action.Proposal{ActionType: "x", ExpiresAt: t0.Add(time.Hour)}}, t0.Add(3*time.Minute))
	var te *ticket.ErrTransition
	if !errors.As(err, &te) || te.From != ticket.Diagnosed || te.To != ticket.Diagnosed {
		t.Fatalf("second SaveDiagnosis: %v, want ErrTransition from diagnosed", err)
	}
	if ps, _ := s.Proposals(ctx, ProposalFilter{TicketID: tk.ID}); len(ps) != 1 {
		t.Errorf("refused diagnosis still inserted a proposal: %d proposals", len(ps))
	}
	if err := s.DiagnosisFailed(ctx, tk.ID, "x", t0); !errors.As(err, &te) {
		t.Errorf("DiagnosisFailed on diagnosed ticket: %v", err)
	}

	// Reopen for re-diagnosis; then a diagnosis without a proposal.
	if err := s.Reopen(ctx, tk.ID, t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(ctx, tk.ID, t0.Add(4*time.Minute)); !errors.As(err, &te) || te.From != ticket.Open {
		t.Errorf("Reopen of open ticket: %v", err)
	}
	if pid, err = s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{Markdown: "transient", Backend: "rules"}, t0.Add(5*time.Minute)); err != nil || pid != 0 {
		t.Errorf("SaveDiagnosis without proposal: pid=%d err=%v", pid, err)
	}

	if err := s.ResolveTicket(ctx, tk.ID, t0.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Ticket(ctx, tk.ID)
	if got.Status != ticket.Resolved || got.ResolvedAt == nil {
		t.Errorf("after ResolveTicket: %+v", got)
	}
	if err := s.ResolveTicket(ctx, tk.ID, t0); !errors.As(err, &te) || te.From != ticket.Resolved {
		t.Errorf("second ResolveTicket: %v", err)
	}
	if err := s.Reopen(ctx, tk.ID, t0); !errors.As(err, &te) {
		t.Errorf("Reopen resolved: %v", err)
	}
	if _, err := s.Ticket(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Ticket(999): %v", err)
	}
	if err := s.ResolveTicket(ctx, 999, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResolveTicket(999): %v", err)
	}
	if _, err := s.SaveDiagnosis(ctx, 999, DiagnosisInput{}, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("SaveDiagnosis(999): %v", err)
	}
}

func TestSaveDiagnosisInvalidProposal(t *testing.T) {
	forEachBackend(t, testSaveDiagnosisInvalidProposal)
}

func testSaveDiagnosisInvalidProposal(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	tk, _, _ := s.Observe(ctx, obs("a", "b", `{}`), t0)
	for name, p := range map[string]action.Proposal{
		"no type":      {ExpiresAt: t0},
		"no expiry":    {ActionType: "x"},
		"bad params":   {ActionType: "x", ExpiresAt: t0, Params: json.RawMessage(`{`)},
		"other ticket": {ActionType: "x", ExpiresAt: t0, TicketID: tk.ID + 1},
	} {
		p := p
		if _, err := s.SaveDiagnosis(ctx, tk.ID, DiagnosisInput{Proposal: &p}, t0); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if got, _ := s.Ticket(ctx, tk.ID); got.Status != ticket.Open {
		t.Errorf("refused diagnosis changed status to %s", got.Status)
	}
}

func TestTicketsFilter(t *testing.T) { forEachBackend(t, testTicketsFilter) }

func testTicketsFilter(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	for i, sub := range []string{"store:1", "store:2", "store:3"} {
		s.Observe(ctx, obs("store_down", sub, `{}`), t0.Add(time.Duration(i)*time.Second))
	}
	s.Sweep(ctx, []string{"store_down"}, map[string]bool{"store_down/store:1": true, "store_down/store:3": true}, t0.Add(time.Minute), 0)
	open, _ := s.Tickets(ctx, TicketFilter{Statuses: []ticket.Status{ticket.Open}})
	if len(open) != 2 || open[0].Subject != "store:3" || open[1].Subject != "store:1" {
		t.Errorf("open tickets = %+v", open)
	}
	limited, _ := s.Tickets(ctx, TicketFilter{Limit: 1})
	if len(limited) != 1 || limited[0].Subject != "store:3" {
		t.Errorf("limit 1 = %+v", limited)
	}
	todo, _ := s.TicketsToDiagnose(ctx, t0.Add(time.Hour), 1)
	if len(todo) != 1 || todo[0].Subject != "store:1" {
		t.Errorf("TicketsToDiagnose oldest first = %+v", todo)
	}
}
