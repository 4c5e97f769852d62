package show

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

func TestRenderInvalidDryRunSendsNothing(t *testing.T) {
	req := action.Request{Method: "POST", Path: "/pd/api/v1/operators", Body: json.RawMessage(`{"name":"transfer-leader"}`)}
	var b bytes.Buffer
	RenderDryRun(&b, action.DryRunResult{Valid: false, Message: "store 2 is Down",
		Preconditions: []action.Check{{Name: "target_store_up", Passed: false, Detail: "store 2 is Down"}},
		Requests:      []action.Request{req}})
	s := b.String()
	if strings.Contains(s, "PD requests an execution would send") || strings.Contains(s, "/pd/api/v1/operators") {
		t.Errorf("an invalid dry run lists requests:\n%s", s)
	}
	if !strings.Contains(s, "Nothing would be sent: the action is invalid (failed: target_store_up)") {
		t.Errorf("no reason:\n%s", s)
	}
	b.Reset()
	RenderDryRun(&b, action.DryRunResult{Valid: true, Message: "ok", Requests: []action.Request{req}})
	if !strings.Contains(b.String(), "PD requests an execution would send:\n  POST /pd/api/v1/operators") {
		t.Errorf("valid dry run:\n%s", b.String())
	}
}

func TestNextHintUsesTheBinaryRun(t *testing.T) {
	old := os.Args[0]
	defer func() { os.Args[0] = old }()
	os.Args[0] = "bin/operator"
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := &View{Action: action.Proposal{ID: 7, ActionType: "transfer_leader", Status: action.Proposed, ProposedAt: now,
		Params: json.RawMessage(`{}`), ExpiresAt: now.Add(time.Hour)}}
	var b bytes.Buffer
	if err := Render(&b, v, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Next: bin/operator actions approve 7 --dry-run   bin/operator actions approve 7") {
		t.Errorf("hint:\n%s", b.String())
	}
}
