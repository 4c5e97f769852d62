package diagnose_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/diagnosetest"
)

func proposal(typ, params string, urgency action.Urgency) *diagnose.Diagnosis {
	return &diagnose.Diagnosis{
		Summary:    "leader imbalance",
		RootCause:  "store 1 holds most leaders",
		Evidence:   []string{"store 1: 90 leaders"},
		Confidence: diagnose.ConfidenceHigh,
		Risks:      []string{"brief latency spike on region 10"},
		ProposedAction: &diagnose.ProposedAction{
			ActionType: typ, Params: json.RawMessage(params), Rationale: "move load", Urgency: urgency,
		},
		// A model may also write a reason; a valid proposal clears it.
		NoActionReason: "",
		Backend:        "test",
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name       string
		d          *diagnose.Diagnosis
		wantAction bool
		wantReason string // substring of NoActionReason when rejected
	}{
		{"valid transfer_leader", proposal("transfer_leader", `{"region_id":10,"to_store_id":3}`, action.Soon), true, ""},
		{"valid with spaces and 1.0", proposal("transfer_leader", ` { "region_id": 10.0, "to_store_id": 2 } `, action.Immediate), true, ""},
		{"valid optional param omitted", proposal("split_region", `{"region_id":11}`, action.WhenConvenient), true, ""},
		{"hallucinated type", proposal("approve_everything", `{}`, action.Soon), false, `proposed action "approve_everything" rejected: not in the action catalog`},
		{"empty type", proposal("", `{}`, action.Soon), false, "not in the action catalog"},
		{"string id", proposal("transfer_leader", `{"region_id":"10","to_store_id":3}`, action.Soon), false, `param "region_id"`},
		{"unknown param", proposal("cancel_drain", `{"store_id":2,"force":true}`, action.Soon), false, "unknown param(s) force"},
		{"missing param", proposal("transfer_leader", `{"region_id":10}`, action.Soon), false, "missing required param \"to_store_id\""},
		{"below minimum", proposal("cancel_drain", `{"store_id":0}`, action.Soon), false, "below the minimum"},
		{"bad enum", proposal("split_region", `{"region_id":10,"policy":"random"}`, action.Soon), false, `"random" is not one of`},
		{"params not object", proposal("cancel_drain", `[2]`, action.Soon), false, "params must be a JSON object"},
		{"bad urgency", proposal("cancel_drain", `{"store_id":2}`, "yesterday"), false, `urgency "yesterday"`},
		{"dry run invalid", proposal("transfer_leader", `{"region_id":11,"to_store_id":3}`, action.Soon), false, "dry run not valid: precondition failed; target holds a voter: store 3 holds no voter of region 11"},
		{"unknown region", proposal("split_region", `{"region_id":999}`, action.Soon), false, "region 999 not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat, fakes := diagnosetest.Catalog(nil)
			orig := *tt.d.ProposedAction
			if err := diagnose.Validate(context.Background(), tt.d, cat); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			d := tt.d
			if tt.wantAction {
				if d.ProposedAction == nil {
					t.Fatalf("proposal rejected: %s", d.NoActionReason)
				}
				if d.NoActionReason != "" || d.RejectedAction != nil {
					t.Errorf("valid proposal left reason %q / rejected %v", d.NoActionReason, d.RejectedAction)
				}
				if d.DryRun == nil || !d.DryRun.Valid || len(d.DryRun.Requests) == 0 {
					t.Errorf("dry run not recorded: %+v", d.DryRun)
				}
				p := d.Proposal(42, time.Unix(1000, 0), time.Hour)
				if p == nil || p.Status != action.Proposed || p.ActionType != orig.ActionType || p.TicketID != 42 {
					t.Errorf("Proposal = %+v", p)
				}
			} else {
				if d.ProposedAction != nil {
					t.Fatalf("invalid proposal kept: %+v", d.ProposedAction)
				}
				if !strings.Contains(d.NoActionReason, tt.wantReason) {
					t.Errorf("NoActionReason = %q, want it to contain %q", d.NoActionReason, tt.wantReason)
				}
				if !strings.HasPrefix(d.NoActionReason, "proposed action ") {
					t.Errorf("NoActionReason = %q, want the rejection form", d.NoActionReason)
				}
				if d.RejectedAction == nil || d.RejectedAction.ActionType != orig.ActionType {
					t.Errorf("RejectedAction = %+v", d.RejectedAction)
				}
				if p := d.Proposal(42, time.Now(), time.Hour); p != nil {
					t.Errorf("a proposal was built from a rejected action: %+v", p)
				}
			}
			if n := fakes.Executed(); n != 0 {
				t.Errorf("Execute called %d times during validation", n)
			}
		})
	}
}

func TestValidateDryRunError(t *testing.T) {
	cat, _ := diagnosetest.Catalog(errors.New("dial tcp 127.0.0.1:2379: connection refused"))
	d := proposal("cancel_drain", `{"store_id":2}`, action.Soon)
	err := diagnose.Validate(context.Background(), d, cat)
	if !errors.Is(err, diagnose.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if d.ProposedAction != nil || !strings.Contains(d.NoActionReason, "dry run could not be made: dial tcp") {
		t.Errorf("after a failed dry run: action %+v, reason %q", d.ProposedAction, d.NoActionReason)
	}
}

func TestValidateNoAction(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	d := &diagnose.Diagnosis{Summary: "s", RootCause: "r", Confidence: diagnose.ConfidenceLow}
	if err := diagnose.Validate(context.Background(), d, cat); err != nil {
		t.Fatal(err)
	}
	if d.NoActionReason != diagnose.NoReasonGiven {
		t.Errorf("NoActionReason = %q", d.NoActionReason)
	}
	d = &diagnose.Diagnosis{NoActionReason: "no action: a human must look: store 4 is Down"}
	if err := diagnose.Validate(context.Background(), d, cat); err != nil {
		t.Fatal(err)
	}
	if d.NoActionReason != "no action: a human must look: store 4 is Down" {
		t.Errorf("NoActionReason changed to %q", d.NoActionReason)
	}
	if err := diagnose.Validate(context.Background(), nil, cat); err == nil {
		t.Errorf("nil diagnosis accepted")
	}
	d = proposal("cancel_drain", `{"store_id":2}`, action.Soon)
	if err := diagnose.Validate(context.Background(), d, nil); err != nil || d.ProposedAction != nil {
		t.Errorf("nil catalog: err %v, action %+v", err, d.ProposedAction)
	}
}

func TestProposalNeverApproved(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	d := proposal("cancel_drain", `{"store_id":2}`, action.Immediate)
	d.Backend = "anthropic:test"
	if err := diagnose.Validate(context.Background(), d, cat); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p := d.Proposal(5, now, 24*time.Hour)
	if p.Status != action.Proposed || p.ApprovedBy != "" || p.ApprovedAt != nil || p.ExecutedAt != nil {
		t.Errorf("proposal not in plain proposed state: %+v", p)
	}
	if p.ProposedBy != "anthropic:test" || !p.ExpiresAt.Equal(now.Add(24*time.Hour)) || string(p.Params) != `{"store_id":2}` {
		t.Errorf("proposal fields: %+v", p)
	}
	if len(p.Risks) != 1 || p.Urgency != action.Immediate {
		t.Errorf("risks/urgency: %+v", p)
	}
}
