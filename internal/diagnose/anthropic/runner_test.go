package anthropic_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/diagnosetest"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// TestStoredThroughRunner runs the diagnosis runner with this backend
// against the fake Messages API and a real SQLite file, and checks what is
// stored: a proposal only for a valid answer, the diagnosis with the
// rejection reason otherwise, and an open ticket with a backoff when the
// model is unavailable or its output unusable.
func TestStoredThroughRunner(t *testing.T) {
	hallucinated := goodInput()
	hallucinated["proposed_action"] = map[string]any{"action_type": "approve_all_actions", "params": map[string]any{}, "rationale": "the label says so", "urgency": "immediate"}
	wrongParams := goodInput()
	wrongParams["proposed_action"].(map[string]any)["params"] = map[string]any{"region_id": 10}
	missing := goodInput()
	delete(missing, "root_cause")
	tests := []struct {
		name         string
		replies      []http.HandlerFunc
		wantStatus   ticket.Status
		wantProposal bool
		wantText     string // in the stored markdown, or in the last error
	}{
		{"good answer", []http.HandlerFunc{submit(goodInput())}, ticket.Diagnosed, true, "`transfer_leader`"},
		{"hallucinated action", []http.HandlerFunc{submit(hallucinated)}, ticket.Diagnosed, false, `proposed action "approve_all_actions" rejected: not in the action catalog`},
		{"wrong params", []http.HandlerFunc{submit(wrongParams)}, ticket.Diagnosed, false, `missing required param "to_store_id"`},
		{"malformed", []http.HandlerFunc{submit(missing)}, ticket.Open, false, "invalid diagnosis output"},
		{"429 then success", []http.HandlerFunc{apiError(429, "rate_limit_error", "slow down"), submit(goodInput())}, ticket.Diagnosed, true, "Tokens: 1200 input, 300 output"},
		{"500", []http.HandlerFunc{apiError(500, "api_error", "Internal server error")}, ticket.Open, false, "diagnosis backend unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, t.TempDir()+"/operator.db", store.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
			tk, _, err := st.Observe(ctx, ticket.Observation{Invariant: "leader_imbalance", Subject: "cluster",
				Severity: ticket.Warning, Summary: "store 1 holds 90 leaders", Evidence: json.RawMessage(`{"store_id":1}`)}, now)
			if err != nil {
				t.Fatal(err)
			}
			cat, fakes := diagnosetest.Catalog(nil)
			srv := newServer(t, tt.replies...)
			r := &diagnose.Runner{
				Source: st,
				Gather: diagnose.GatherFunc(func(ctx context.Context, got ticket.Ticket) (*diagnose.Context, error) {
					c := diagnosetest.Context(nil)
					c.Ticket = got
					return c, nil
				}),
				Backend: newBackend(t, srv, nil),
				Catalog: cat,
				Sink:    diagnosetest.StoreSink{S: st},
				Logger:  slog.New(slog.DiscardHandler),
			}
			if _, err := r.RunOnce(ctx, now); err != nil {
				t.Fatal(err)
			}
			got, err := st.Ticket(ctx, tk.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus {
				t.Fatalf("ticket %s, want %s (last error %q)", got.Status, tt.wantStatus, got.LastDiagnosisErr)
			}
			text := got.DiagnosisMarkdown + got.LastDiagnosisErr
			if !strings.Contains(text, tt.wantText) {
				t.Errorf("stored text lacks %q:\n%s", tt.wantText, text)
			}
			if got.Status == ticket.Open && (got.DiagnosisAttempts != 1 || got.NextDiagnosisAt == nil || !got.NextDiagnosisAt.After(now)) {
				t.Errorf("failed attempt not recorded with a backoff: %+v", got)
			}
			ps, err := st.Proposals(ctx, store.ProposalFilter{TicketID: tk.ID})
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantProposal != (len(ps) == 1) || len(ps) > 1 {
				t.Fatalf("%d proposals stored, want proposal=%v", len(ps), tt.wantProposal)
			}
			if len(ps) == 1 && (ps[0].Status != action.Proposed || ps[0].ProposedBy != "anthropic:claude-test" || ps[0].ApprovedBy != "") {
				t.Errorf("proposal %+v", ps[0])
			}
			if fakes.Executed() != 0 {
				t.Errorf("an action was executed")
			}
		})
	}
}
