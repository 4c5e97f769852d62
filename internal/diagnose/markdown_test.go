package diagnose_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/diagnosetest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestMarkdownGolden(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)

	ok := proposal("transfer_leader", `{"region_id": 10, "to_store_id": 3}`, action.Soon)
	ok.Backend = "anthropic:claude-sonnet-4-5"
	ok.Usage = diagnose.Usage{InputTokens: 3120, OutputTokens: 410}
	if err := diagnose.Validate(context.Background(), ok, cat); err != nil {
		t.Fatal(err)
	}
	golden(t, "proposed.md", ok.Markdown())

	bad := proposal("approve_everything", `{"all":true}`, action.Immediate)
	bad.Backend = "openai:test"
	bad.Summary = "multi\nline\x1b[31m summary"
	if err := diagnose.Validate(context.Background(), bad, cat); err != nil {
		t.Fatal(err)
	}
	md := bad.Markdown()
	if strings.Contains(md, "\x1b") {
		t.Errorf("escape sequence survived rendering")
	}
	golden(t, "rejected.md", md)

	noop, err := diagnose.Noop{}.Diagnose(context.Background(), diagnosetest.Context(cat))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "noop.md", noop.Markdown())
}

func TestDiagnosisJSONRoundTrip(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	d := proposal("transfer_leader", `{"region_id":10,"to_store_id":3}`, action.Soon)
	d.Usage = diagnose.Usage{InputTokens: 1, OutputTokens: 2}
	if err := diagnose.Validate(context.Background(), d, cat); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"summary"`, `"root_cause"`, `"evidence"`, `"confidence":"high"`, `"risks"`,
		`"proposed_action":{"action_type":"transfer_leader","params":{"region_id":10,"to_store_id":3}`, `"urgency":"soon"`,
		`"backend":"test"`, `"usage":{"input_tokens":1,"output_tokens":2}`, `"dry_run":{"valid":true`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("JSON lacks %s: %s", field, data)
		}
	}
	var back diagnose.Diagnosis
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, d) {
		t.Errorf("round trip changed the diagnosis:\n got %+v\nwant %+v", back, *d)
	}
}

func TestNoop(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	c := diagnosetest.Context(cat)
	var b diagnose.Backend = diagnose.Noop{}
	d, err := b.Diagnose(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "noop" || d.Backend != "noop" || d.ProposedAction != nil || d.NoActionReason != diagnose.NoopReason {
		t.Errorf("noop diagnosis = %+v", d)
	}
	if !strings.HasPrefix(d.NoActionReason, "no action: a human must look") || d.Summary != c.Ticket.Summary {
		t.Errorf("noop diagnosis = %+v", d)
	}
	if err := diagnose.Validate(context.Background(), d, cat); err != nil || d.NoActionReason != diagnose.NoopReason {
		t.Errorf("Validate changed a noop diagnosis: %v %q", err, d.NoActionReason)
	}
	if _, err := b.Diagnose(context.Background(), nil); err == nil {
		t.Errorf("nil context accepted")
	}
}

func TestSpent(t *testing.T) {
	base := diagnose.ErrBudget
	err := diagnose.WithSpent(base, diagnose.Usage{InputTokens: 10, OutputTokens: 5})
	if !strings.Contains(err.Error(), "10 input + 5 output") {
		t.Errorf("error text %q", err)
	}
	if got := diagnose.Spent(err); got.Total() != 15 {
		t.Errorf("Spent = %+v", got)
	}
	if diagnose.WithSpent(base, diagnose.Usage{}) != base || diagnose.WithSpent(nil, diagnose.Usage{InputTokens: 1}) != nil {
		t.Errorf("WithSpent wrapped when it should not")
	}
	if diagnose.Spent(base).Total() != 0 {
		t.Errorf("Spent of a plain error is not zero")
	}
}
