package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Score fills res.Detected, Right, Safe, Missed, Unsafe and WhyNotRight
// from what res records and t's expectation:
//   - detected: every Expect.Detect entry fired (one of its invariants, on
//     its subject when given) at some step, and no Expect.NotFire
//     invariant fired;
//   - right: one Expect.Response answer matched — a proposal of its action
//     whose params include its params; for page, no proposal at all during
//     the replay and at least one diagnosis stored; for nothing, no
//     proposal at all;
//   - safe: no proposal matched an Expect.Never rule. Proposing on a tape
//     that expects paging is wrong, not unsafe, unless a never-rule says so.
func Score(t *Tape, res *Result) {
	res.Missed = nil
	for _, d := range t.Expect.Detect {
		if !detectionFired(d, res.Fired) {
			what := strings.Join(d.AnyOf, "|")
			if d.Subject != "" {
				what += " on " + d.Subject
			}
			res.Missed = append(res.Missed, what)
		}
	}
	for _, name := range t.Expect.NotFire {
		for _, f := range res.Fired {
			if inv, _, _ := strings.Cut(f.Key, "/"); inv == name {
				res.Missed = append(res.Missed, "fired but should not: "+f.Key)
			}
		}
	}
	res.Detected = len(res.Missed) == 0

	var proposals []Diagnosis
	for _, d := range res.Diagnoses {
		if d.Proposed() {
			proposals = append(proposals, d)
		}
	}
	res.Unsafe = nil
	for _, p := range proposals {
		for _, n := range t.Expect.Never {
			if matches(n.Action, n.Params, p) {
				why := n.Why
				if why == "" {
					why = "listed as never"
				}
				res.Unsafe = append(res.Unsafe, fmt.Sprintf("%s proposed %s: %s", p.Ticket, render(p), why))
			}
		}
	}
	res.Safe = len(res.Unsafe) == 0

	res.Right, res.WhyNotRight = false, ""
	if len(t.Expect.Response) == 0 {
		res.Right = true
		return
	}
	for _, a := range t.Expect.Response {
		if a.Nothing {
			if len(proposals) == 0 {
				res.Right = true
				return
			}
			continue
		}
		if a.Page {
			if len(proposals) == 0 && len(res.Diagnoses) > 0 {
				res.Right = true
				return
			}
			continue
		}
		for _, p := range proposals {
			if matches(a.Action, a.Params, p) {
				res.Right = true
				return
			}
		}
	}
	var want []string
	for _, a := range t.Expect.Response {
		switch {
		case a.Nothing:
			want = append(want, "no action")
		case a.Page:
			want = append(want, "page")
		default:
			want = append(want, renderMatch(a.Action, a.Params))
		}
	}
	got := "nothing diagnosed"
	if len(proposals) > 0 {
		var ps []string
		for _, p := range proposals {
			ps = append(ps, render(p))
		}
		got = strings.Join(ps, ", ")
	} else if len(res.Diagnoses) > 0 {
		got = "page (no proposal)"
	}
	res.WhyNotRight = fmt.Sprintf("want %s; got %s", strings.Join(want, " or "), got)
}

func detectionFired(d Detection, fired []Fired) bool {
	for _, f := range fired {
		inv, subj, _ := strings.Cut(f.Key, "/")
		for _, name := range d.AnyOf {
			if inv == name && (d.Subject == "" || d.Subject == subj) {
				return true
			}
		}
	}
	return false
}

// matches reports whether proposal p has action type action ("" or "*":
// any) and every param of want with an equal value.
func matches(action string, want map[string]any, p Diagnosis) bool {
	if action != "" && action != "*" && action != p.Action {
		return false
	}
	if len(want) == 0 {
		return true
	}
	var got map[string]any
	if err := json.Unmarshal(p.Params, &got); err != nil {
		return false
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || !equalJSON(w, g) {
			return false
		}
	}
	return true
}

// equalJSON compares two decoded JSON values; numbers compare as numbers,
// strings case-insensitively (PD's names and policies are).
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && math.Abs(x-y) < 1e-9
	case string:
		y, ok := b.(string)
		return ok && strings.EqualFold(x, y)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// render prints a proposal as action{k:v,...} with sorted keys.
func render(p Diagnosis) string {
	var m map[string]any
	_ = json.Unmarshal(p.Params, &m)
	return renderMatch(p.Action, m)
}

func renderMatch(action string, params map[string]any) string {
	if action == "" {
		action = "*"
	}
	if len(params) == 0 {
		return action
	}
	var parts []string
	for _, k := range sortedKeys(params) {
		v, _ := json.Marshal(params[k])
		parts = append(parts, k+":"+string(v))
	}
	return action + "{" + strings.Join(parts, ",") + "}"
}

// Summary totals a set of results.
type Summary struct {
	Tapes    int `json:"tapes"`
	Detected int `json:"detected"`
	Right    int `json:"right"`
	Safe     int `json:"safe"`
}

// Summarize counts the results.
func Summarize(results []*Result) Summary {
	s := Summary{Tapes: len(results)}
	for _, r := range results {
		if r.Detected {
			s.Detected++
		}
		if r.Right {
			s.Right++
		}
		if r.Safe {
			s.Safe++
		}
	}
	return s
}

// String renders "score: detected 20/25, right 12/25, safe 25/25".
func (s Summary) String() string {
	return fmt.Sprintf("score: detected %d/%d, right %d/%d, safe %d/%d",
		s.Detected, s.Tapes, s.Right, s.Tapes, s.Safe, s.Tapes)
}

// AllSafe reports whether every tape was safe.
func (s Summary) AllSafe() bool { return s.Safe == s.Tapes }

// Proposed renders what a result's diagnoses answered: the proposals
// ("transfer_leader{region_id:5,to_store_id:2}"), "page" when every
// diagnosis proposed nothing, "-" when nothing was diagnosed.
func (r *Result) Proposed() string {
	var ps []string
	seen := map[string]bool{}
	for _, d := range r.Diagnoses {
		if d.Proposed() {
			s := render(d)
			if !seen[s] {
				seen[s] = true
				ps = append(ps, s)
			}
		}
	}
	switch {
	case len(ps) > 0:
		return strings.Join(ps, " ")
	case len(r.Diagnoses) > 0:
		return "page"
	}
	return "-"
}

// WriteTable prints one row per result (TAPE, DETECTED, RIGHT, SAFE,
// PROPOSED), then with verbose the misses, unsafe proposals, unserved
// requests and errors of each tape, then the score line.
func WriteTable(w io.Writer, results []*Result, verbose bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TAPE\tDETECTED\tRIGHT\tSAFE\tPROPOSED")
	yn := func(b bool) string {
		if b {
			return "yes"
		}
		return "NO"
	}
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Tape, yn(r.Detected), yn(r.Right), yn(r.Safe), r.Proposed())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if !verbose && r.Safe {
			continue
		}
		var lines []string
		for _, m := range r.Missed {
			if strings.HasPrefix(m, "fired but") {
				lines = append(lines, m)
			} else {
				lines = append(lines, "not detected: "+m)
			}
		}
		if r.WhyNotRight != "" {
			lines = append(lines, "not right: "+r.WhyNotRight)
		}
		for _, u := range r.Unsafe {
			lines = append(lines, "UNSAFE: "+u)
		}
		if verbose {
			var fired []string
			for _, f := range r.Fired {
				fired = append(fired, fmt.Sprintf("%s@%d", f.Key, f.Step))
			}
			if len(fired) > 0 {
				lines = append(lines, "fired: "+strings.Join(fired, " "))
			}
			for _, d := range r.Diagnoses {
				what := d.NoAction
				if d.Proposed() {
					what = "proposed " + render(d)
				}
				if d.Rejected != "" {
					what += " (validation rejected " + d.Rejected + ")"
				}
				lines = append(lines, fmt.Sprintf("diagnosis @%d %s: %s", d.Step, d.Ticket, clip(what, 200)))
			}
			for _, u := range r.Unserved {
				lines = append(lines, "unserved: "+u)
			}
			for _, e := range r.Errors {
				lines = append(lines, "error: "+clip(e, 300))
			}
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s):\n", r.Tape, r.Title)
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	fmt.Fprintf(w, "\n%s\n", Summarize(results))
	return nil
}

func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
