// Package replay scores the operator's judgement on recorded incidents.
//
// A Tape is an incident as data: the HTTP answers PD gave (per endpoint
// path, per step, from any PD version), optional Prometheus answers, and
// the expected outcome (which invariants must fire; the action a good SRE
// would approve, or "page a human"; actions that must never be proposed).
// Run serves a tape from a loopback server that looks like PD, drives the
// real detection (tikv.Collect, invariant.Default, monitor) and the real
// diagnosis (diagnose.Runner with gather, a backend and the action
// catalog's validation) through their public APIs, one monitor cycle and
// one diagnosis pass per step, with a fake clock at the step's time, and
// scores what they did (Score).
//
// Tapes live in the repository's tapes/ folder, one JSON file per
// incident; docs/replay.md describes the format.
package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// APIPrefix is PD's HTTP API base path. Tape endpoint keys that do not
// start with "/" are relative to it ("stores" is "/pd/api/v1/stores").
const APIPrefix = "/pd/api/v1"

// MaxTapeBytes bounds a tape file (16 MiB); larger files are refused.
const MaxTapeBytes = 16 << 20

// ErrInvalidTape is wrapped by every error about a tape's content.
var ErrInvalidTape = errors.New("invalid tape")

// Tape is one recorded incident. JSON field names are the file format.
type Tape struct {
	// ID is a short stable name ("down-peer-up-store-unrepaired"); it
	// defaults to the file name without ".json".
	ID string `json:"id"`
	// Title is one human line.
	Title string `json:"title"`
	// Class names the failure class (issue 11's list), free text.
	Class string `json:"class,omitempty"`
	// Source cites where the incident comes from: public issue URLs, PD
	// docs, "pingcap/tidb-operator#4483", fixture file names. At least one.
	Source []string `json:"source"`
	// PDVersion is the PD version whose response shapes the bodies follow
	// ("3.0.1", "8.5.0").
	PDVersion string `json:"pd_version"`
	// Notes say how the bodies were built (verbatim, derived from which
	// fixture, what was adjusted).
	Notes string `json:"notes,omitempty"`
	// Start is PD's clock at step 0 (the Date header of its answers).
	// Store heartbeats in the bodies must be consistent with it.
	Start time.Time `json:"start"`
	// Steps are the polls, in increasing At order.
	Steps []Step `json:"steps"`
	// Expect is the outcome a good SRE would reach.
	Expect Expect `json:"expect"`
}

// Step is PD's state from At on. Endpoints a step does not list keep the
// answer of the previous step (carry over); the first step must list
// every endpoint the incident needs.
type Step struct {
	// At is the offset from Tape.Start, a Go duration ("90s", "31m").
	At Duration `json:"at"`
	// Note says what changed, for humans.
	Note string `json:"note,omitempty"`
	// PD maps an endpoint, "path" or "path?query" (relative to APIPrefix
	// unless it starts with "/"), to PD's answer. A query value "*"
	// matches any value (e.g. "operators/records?from=*").
	PD map[string]Response `json:"pd"`
	// Prometheus maps a PromQL instant query, exactly as the operator
	// sends it, to the "data" object of Prometheus' /api/v1/query answer
	// ({"resultType":"vector","result":[...]}). Queries not listed answer
	// an empty vector. A tape without any Prometheus entry replays with no
	// Prometheus configured.
	Prometheus map[string]json.RawMessage `json:"prometheus,omitempty"`
}

// Response is one PD answer.
type Response struct {
	// Status is the HTTP status; 0 means 200.
	Status int `json:"status,omitempty"`
	// Body is the JSON PD sent, verbatim (an object, an array, or a JSON
	// string for PD's error messages such as "operator not found").
	Body json.RawMessage `json:"body,omitempty"`
	// Text is a non-JSON body (sent as text/plain), e.g. Go's
	// "404 page not found". Body and Text are exclusive.
	Text string `json:"text,omitempty"`
}

// Expect is the expected outcome of a tape.
type Expect struct {
	// Detect lists detections that must all fire at some step.
	Detect []Detection `json:"detect"`
	// NotFire lists invariants that must not fire (false positives, e.g.
	// leader_imbalance when PD's scores are even).
	NotFire []string `json:"not_fire,omitempty"`
	// Response lists acceptable answers; the tape is answered right when
	// one of them matches. An empty list means any answer is right.
	Response []Answer `json:"response"`
	// Never lists proposals that make the tape unsafe.
	Never []Match `json:"never,omitempty"`
}

// Detection is satisfied when one of the named invariants fires (reaches
// firing, past its `for`), on Subject when given.
type Detection struct {
	// AnyOf names invariants ("region_down_peer"); any one firing counts.
	AnyOf []string `json:"any_of"`
	// Subject, when set, must equal the violation's subject ("region:5",
	// "store:4", "cluster").
	Subject string `json:"subject,omitempty"`
}

// Answer is one acceptable response: Page (no action proposed during the
// whole replay, and at least one ticket diagnosed), Nothing (no action
// proposed; no ticket needed: the cluster is healthy or PD is already
// working on it), or a proposal of Action whose params include Params.
type Answer struct {
	Page    bool           `json:"page,omitempty"`
	Nothing bool           `json:"nothing,omitempty"`
	Action  string         `json:"action,omitempty"`
	Params  map[string]any `json:"params,omitempty"`
	// Why explains the answer, for humans.
	Why string `json:"why,omitempty"`
}

// Match selects proposals: Action "*" (or "") matches any action type;
// every key of Params must be present in the proposal's params with an
// equal value (numbers compare as numbers).
type Match struct {
	Action string         `json:"action"`
	Params map[string]any `json:"params,omitempty"`
	// Why says why the proposal would be unsafe.
	Why string `json:"why,omitempty"`
}

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration struct{ time.Duration }

// UnmarshalJSON accepts "90s"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"90s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON renders the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// LoadFile reads and validates the tape at path. Errors name the file;
// content errors wrap ErrInvalidTape.
func LoadFile(path string) (*Tape, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tape %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTapeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("tape %s: %w", path, err)
	}
	if len(data) > MaxTapeBytes {
		return nil, fmt.Errorf("tape %s: %w: larger than %d bytes", path, ErrInvalidTape, MaxTapeBytes)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("tape %s: %w", path, err)
	}
	if t.ID == "" {
		t.ID = strings.TrimSuffix(filepath.Base(path), ".json")
	}
	return t, nil
}

// LoadDir loads every *.json tape in dir, sorted by file name.
func LoadDir(dir string) ([]*Tape, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []*Tape
	for _, p := range paths {
		t, err := LoadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no *.json tape in %s", dir)
	}
	return out, nil
}

// Parse decodes and validates a tape; unknown fields are errors.
func Parse(data []byte) (*Tape, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var t Tape
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTape, err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate checks the tape's structure: steps in increasing order,
// endpoint keys that parse, bodies that are JSON, an expectation.
func (t *Tape) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidTape, fmt.Sprintf(format, args...))
	}
	if len(t.Source) == 0 {
		return bad("no source: cite the issue, doc or case the incident comes from")
	}
	if t.Start.IsZero() {
		return bad("no start time (PD's clock at step 0)")
	}
	if len(t.Steps) == 0 {
		return bad("no steps")
	}
	for i, s := range t.Steps {
		if i > 0 && s.At.Duration <= t.Steps[i-1].At.Duration {
			return bad("step %d: at %s is not after step %d's %s", i, s.At, i-1, t.Steps[i-1].At)
		}
		if s.At.Duration < 0 {
			return bad("step %d: negative offset", i)
		}
		for k, r := range s.PD {
			if _, _, err := parseKey(k); err != nil {
				return bad("step %d: endpoint %q: %v", i, k, err)
			}
			if len(r.Body) > 0 && r.Text != "" {
				return bad("step %d: endpoint %q: body and text are exclusive", i, k)
			}
			if len(r.Body) > 0 && !json.Valid(r.Body) {
				return bad("step %d: endpoint %q: body is not JSON", i, k)
			}
			if r.Status != 0 && (r.Status < 100 || r.Status > 599) {
				return bad("step %d: endpoint %q: status %d", i, k, r.Status)
			}
		}
		for q, v := range s.Prometheus {
			if !json.Valid(v) {
				return bad("step %d: prometheus query %q: data is not JSON", i, q)
			}
		}
	}
	if len(t.Expect.Detect) == 0 && len(t.Expect.NotFire) == 0 && len(t.Expect.Response) == 0 {
		return bad("expect: no detection and no response")
	}
	for i, d := range t.Expect.Detect {
		if len(d.AnyOf) == 0 {
			return bad("expect.detect[%d]: any_of is empty", i)
		}
	}
	for i, a := range t.Expect.Response {
		n := 0
		for _, set := range []bool{a.Page, a.Nothing, a.Action != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			return bad("expect.response[%d]: give exactly one of page, nothing and action", i)
		}
	}
	return nil
}

// hasPrometheus reports whether any step carries Prometheus answers.
func (t *Tape) hasPrometheus() bool {
	return slices.ContainsFunc(t.Steps, func(s Step) bool { return len(s.Prometheus) > 0 })
}

// parseKey turns "stores/check?state=tombstone" into its absolute path
// and query.
func parseKey(k string) (string, url.Values, error) {
	k = strings.TrimSpace(k)
	if k == "" {
		return "", nil, errors.New("empty")
	}
	p, q, _ := strings.Cut(k, "?")
	if !strings.HasPrefix(p, "/") {
		p = APIPrefix + "/" + p
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return "", nil, err
	}
	return p, vals, nil
}
