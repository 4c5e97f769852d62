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

// fixed is a Backend that always answers with d (a fresh copy) or err.
type fixed struct {
	name string
	d    func() *diagnose.Diagnosis
	err  error
}

func (f fixed) Name() string { return f.name }

func (f fixed) Diagnose(context.Context, *diagnose.Context) (*diagnose.Diagnosis, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.d(), nil
}

func allowTransfers(inv string) ([]string, bool) {
	if inv == "leader_imbalance" {
		return []string{"transfer_leader"}, true
	}
	return nil, false
}

// TestRunnerFallback: a model backend that is unavailable, or whose
// per-ticket budget is spent, does not leave the ticket undiagnosed: the
// fallback (rules) diagnoses it, labelled, and its proposal is validated
// like any other.
func TestRunnerFallback(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	down := observe(t, s, "store:1", now)
	spent := observe(t, s, "store:2", now)
	if err := s.DiagnosisFailedSpent(ctx, spent.ID, "earlier attempt", now.Add(-time.Hour), 900, 200); err != nil {
		t.Fatal(err)
	}
	cat, _ := diagnosetest.Catalog(nil)
	modelCalls := 0
	r := &diagnose.Runner{
		Source: s,
		Gather: diagnose.GatherFunc(func(ctx context.Context, tk ticket.Ticket) (*diagnose.Context, error) {
			return &diagnose.Context{Ticket: tk}, nil
		}),
		Backend: scripted{down.ID: func() (*diagnose.Diagnosis, error) {
			modelCalls++
			return nil, diagnose.WithSpent(fmt.Errorf("%w: 529 overloaded", diagnose.ErrUnavailable), diagnose.Usage{InputTokens: 50})
		}},
		Fallback: fixed{name: "rules", d: func() *diagnose.Diagnosis {
			return proposal("transfer_leader", `{"region_id":10,"to_store_id":3}`, action.Soon)
		}},
		Allow:        allowTransfers,
		Catalog:      cat,
		Sink:         diagnosetest.StoreSink{S: s},
		TicketBudget: 1000,
		Logger:       slog.New(slog.DiscardHandler),
	}
	st, err := r.RunOnce(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Diagnosed != 2 || st.Proposals != 2 || st.Fallbacks != 1 || st.OverBudget != 1 || st.Failed != 0 || modelCalls != 1 {
		t.Fatalf("stats %+v, model calls %d", st, modelCalls)
	}
	for id, why := range map[int64]string{down.ID: "scripted could not diagnose it", spent.ID: "token budget for this ticket is spent (1100 of 1000 tokens)"} {
		tk, _ := s.Ticket(ctx, id)
		if tk.Status != ticket.Diagnosed || !strings.Contains(tk.DiagnosisMarkdown, "Fallback: diagnosed by rules because") ||
			!strings.Contains(tk.DiagnosisMarkdown, why) {
			t.Errorf("ticket %d %s:\n%s", id, tk.Status, tk.DiagnosisMarkdown)
		}
		ps, _ := s.Proposals(ctx, store.ProposalFilter{TicketID: id})
		if len(ps) != 1 || ps[0].ProposedBy != "rules" {
			t.Errorf("ticket %d proposals %+v", id, ps)
		}
	}
}

// TestAllowList: a proposal outside its invariant family's list, or for
// an invariant without a family, is rejected before any dry run.
func TestAllowList(t *testing.T) {
	cat, fakes := diagnosetest.Catalog(nil)
	for _, tc := range []struct {
		inv, typ, params, want string
	}{
		{"leader_imbalance", "cancel_drain", `{"store_id":2}`, `not allowed for invariant "leader_imbalance" (allowed: transfer_leader)`},
		{"region_no_leader", "transfer_leader", `{"region_id":10,"to_store_id":3}`, `invariant "region_no_leader" has no action family`},
	} {
		d := proposal(tc.typ, tc.params, action.Soon)
		if err := diagnose.ValidateFor(context.Background(), d, cat, tc.inv, allowTransfers); err != nil {
			t.Fatal(err)
		}
		if d.ProposedAction != nil || !strings.Contains(d.NoActionReason, tc.want) {
			t.Errorf("%s/%s: %q", tc.inv, tc.typ, d.NoActionReason)
		}
	}
	d := proposal("transfer_leader", `{"region_id":10,"to_store_id":3}`, action.Soon)
	if err := diagnose.ValidateFor(context.Background(), d, cat, "leader_imbalance", allowTransfers); err != nil || d.ProposedAction == nil {
		t.Errorf("allowed proposal rejected: %v %q", err, d.NoActionReason)
	}
	if fakes.Executed() != 0 {
		t.Error("an action was executed")
	}
}

func TestSanitize(t *testing.T) {
	d := &diagnose.Diagnosis{
		Summary:   "line\x1b[31m red\nnext" + strings.Repeat("x", 1000),
		RootCause: "keeps\nnewlines\x00 but not NUL\u202e",
		Evidence:  make([]string, 100),
		ProposedAction: &diagnose.ProposedAction{ActionType: "transfer_leader\x07",
			Rationale: strings.Repeat("é", 5000)},
	}
	diagnose.Sanitize(d)
	if strings.ContainsAny(d.Summary, "\x1b\n") || len(d.Summary) > diagnose.MaxSummaryBytes+3 {
		t.Errorf("summary %q", d.Summary)
	}
	if d.RootCause != "keeps\nnewlines but not NUL" {
		t.Errorf("root cause %q", d.RootCause)
	}
	if len(d.Evidence) != diagnose.MaxItems+1 || d.ProposedAction.ActionType != "transfer_leader" {
		t.Errorf("evidence %d lines, action %q", len(d.Evidence), d.ProposedAction.ActionType)
	}
	if r := d.ProposedAction.Rationale; len(r) > diagnose.MaxTextBytes+3 || !strings.HasSuffix(r, "é...") {
		t.Errorf("rationale cut badly: %d bytes, ends %q", len(r), r[len(r)-8:])
	}
	if got := diagnose.CleanSourceErrors(map[string]string{"operators": "500 \x1b]0;pwned\x07 " + strings.Repeat("y", 1000)}); len(got["operators"]) > 303 || strings.ContainsAny(got["operators"], "\x1b\x07") {
		t.Errorf("source error %q", got["operators"])
	}
}
