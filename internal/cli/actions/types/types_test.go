package types

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/tikv"
)

// TestTypes runs the command on the real catalog: the table lists every
// action with its params, -o json decodes back into the specs, and one
// type shows its rollback.
func TestTypes(t *testing.T) {
	run := func(args ...string) (string, error) {
		f, out, _ := clitest.Factory(t, "unused.db")
		cmd := NewCmdTypes(f, nil)
		cmd.SetArgs(args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if len(args) > 0 && args[0] == "-o" {
			f.Flags.Output = args[1]
			cmd.SetArgs(args[2:])
		}
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"TYPE", "resume_scheduler", "name*:string", "drain_store", "high", "set_replica_schedule_limit", "limit*:integer[1..100000]",
		"set_store_limit", "type*:string{add-peer|remove-peer}",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "drain_store ") && !strings.Contains(line, "yes") {
			t.Errorf("drain_store not marked capacity-reducing: %q", line)
		}
	}

	out, err = run("-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var specs []action.Spec
	if err := json.Unmarshal([]byte(out), &specs); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	names := map[string]action.Spec{}
	for _, s := range specs {
		names[s.Name] = s
	}
	if s, ok := names[tikv.ActionResumeScheduler]; !ok || s.Rollback == "" || len(s.Params) != 1 || s.Params[0].Name != "name" {
		t.Errorf("resume_scheduler in json: %+v", s)
	}
	if !names[tikv.ActionDrainStore].Capacity || len(specs) < 20 {
		t.Errorf("%d specs; drain_store %+v", len(specs), names[tikv.ActionDrainStore])
	}

	out, err = run("pause_scheduler")
	if err != nil || !strings.Contains(out, "Rollback: temporary by itself") || !strings.Contains(out, "delay_seconds*:integer[1..86400]") {
		t.Errorf("one type: %v\n%s", err, out)
	}
	if _, err := run("no_such_action"); err == nil || !strings.Contains(err.Error(), `unknown action type "no_such_action"`) {
		t.Errorf("unknown type: %v", err)
	}
}
