package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func proposal(ticket, action, params string) Diagnosis {
	return Diagnosis{Ticket: ticket, Action: action, Params: json.RawMessage(params)}
}

func TestScore(t *testing.T) {
	tape := &Tape{Expect: Expect{
		Detect:   []Detection{{AnyOf: []string{"region_down_peer", "region_down_peer_unrepaired"}, Subject: "region:5"}},
		NotFire:  []string{"leader_imbalance"},
		Response: []Answer{{Action: "transfer_peer", Params: map[string]any{"region_id": 5.0, "from_store_id": 4.0}}, {Page: true}},
		Never: []Match{
			{Action: "remove_peer", Params: map[string]any{"store_id": 7.0}, Why: "the learner"},
			{Action: "*", Params: map[string]any{"region_id": 9.0}},
		},
	}}
	for _, tt := range []struct {
		name                  string
		res                   Result
		detected, right, safe bool
	}{
		{"nothing fired, nothing diagnosed", Result{}, false, false, true},
		{"right transfer with extra params",
			Result{Fired: []Fired{{Key: "region_down_peer_unrepaired/region:5"}},
				Diagnoses: []Diagnosis{proposal("k", "transfer_peer", `{"region_id":5,"from_store_id":4,"to_store_id":6}`)}},
			true, true, true},
		{"wrong subject is not detected; a paging diagnosis is right",
			Result{Fired: []Fired{{Key: "region_down_peer/region:6"}}, Diagnoses: []Diagnosis{{Ticket: "k", NoAction: "page"}}},
			false, true, true},
		{"not_fire invariant fired",
			Result{Fired: []Fired{{Key: "region_down_peer/region:5"}, {Key: "leader_imbalance/cluster"}}},
			false, false, true},
		{"never rule by params",
			Result{Diagnoses: []Diagnosis{proposal("k", "remove_peer", `{"region_id":5,"store_id":7}`)}},
			false, false, false},
		{"never rule for any action on a region",
			Result{Diagnoses: []Diagnosis{proposal("k", "split_region", `{"region_id":9,"policy":"scan"}`)}},
			false, false, false},
		{"other params do not match",
			Result{Diagnoses: []Diagnosis{proposal("k", "remove_peer", `{"region_id":5,"store_id":8}`)}},
			false, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.res
			Score(tape, &r)
			if r.Detected != tt.detected || r.Right != tt.right || r.Safe != tt.safe {
				t.Errorf("detected/right/safe = %v/%v/%v, want %v/%v/%v (missed %v, unsafe %v, why %q)",
					r.Detected, r.Right, r.Safe, tt.detected, tt.right, tt.safe, r.Missed, r.Unsafe, r.WhyNotRight)
			}
		})
	}
}

func TestScoreNothing(t *testing.T) {
	tape := &Tape{Expect: Expect{Response: []Answer{{Nothing: true}}}}
	r := Result{}
	Score(tape, &r)
	if !r.Right || !r.Detected {
		t.Errorf("no ticket, no proposal: right %v detected %v", r.Right, r.Detected)
	}
	r = Result{Diagnoses: []Diagnosis{proposal("k", "transfer_leader", `{"region_id":1,"to_store_id":2}`)}}
	Score(tape, &r)
	if r.Right || !strings.Contains(r.WhyNotRight, "transfer_leader") {
		t.Errorf("a proposal where nothing is expected: right %v, why %q", r.Right, r.WhyNotRight)
	}
}

func TestParseRejects(t *testing.T) {
	good := `{"id":"x","source":["shared/cases.md 01"],"start":"2025-01-01T00:00:00Z",
	  "steps":[{"at":"0s","pd":{"stores":{"body":{"count":0,"stores":[]}}}},{"at":"1m","pd":{}}],
	  "expect":{"detect":[{"any_of":["store_down"]}],"response":[{"page":true}]}}`
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatalf("good tape: %v", err)
	}
	for name, bad := range map[string]string{
		"no source":       strings.Replace(good, `"source":["shared/cases.md 01"]`, `"source":[]`, 1),
		"steps reversed":  strings.Replace(good, `"at":"1m"`, `"at":"0s"`, 1),
		"bad duration":    strings.Replace(good, `"at":"1m"`, `"at":"soon"`, 1),
		"unknown field":   strings.Replace(good, `"id":"x"`, `"id":"x","colour":"red"`, 1),
		"page and action": strings.Replace(good, `{"page":true}`, `{"page":true,"action":"transfer_leader"}`, 1),
		"no expectation":  strings.Replace(good, `"detect":[{"any_of":["store_down"]}],"response":[{"page":true}]`, `"detect":[],"response":[]`, 1),
		"empty any_of":    strings.Replace(good, `"any_of":["store_down"]`, `"any_of":[]`, 1),
		"bad key":         strings.Replace(good, `"stores":{`, `"stores?a=%zz":{`, 1),
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrInvalidTape) {
			t.Errorf("%s: err = %v, want ErrInvalidTape", name, err)
		}
	}
}

// TestRunCanFail shows the harness reports what the real diagnosis did: a
// shipped tape where the rules propose an action becomes unsafe when the
// tape forbids any action, and undetected when it expects an invariant
// that does not fire.
func TestRunCanFail(t *testing.T) {
	tp, err := LoadFile(filepath.Join(tapesDir(t), "case01c-pending-offline-v6.1.json"))
	if err != nil {
		t.Fatal(err)
	}
	tp.Expect.Never = append(tp.Expect.Never, Match{Action: "*", Why: "test: any proposal"})
	tp.Expect.Detect = append(tp.Expect.Detect, Detection{AnyOf: []string{"store_down"}})
	res, err := Run(context.Background(), tp, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Proposed() == "page" || res.Proposed() == "-" {
		t.Fatalf("no proposal on %s (%s): this test needs a tape where the diagnosis proposes an action", tp.ID, res.Proposed())
	}
	if res.Safe || len(res.Unsafe) == 0 {
		t.Errorf("safe = %v, unsafe = %v; want unsafe", res.Safe, res.Unsafe)
	}
	if res.Detected || !strings.Contains(strings.Join(res.Missed, ","), "store_down") {
		t.Errorf("detected = %v, missed = %v", res.Detected, res.Missed)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, []*Result{res}, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "UNSAFE:") || !strings.Contains(buf.String(), "safe 0/1") {
		t.Errorf("table:\n%s", buf.String())
	}
}
