package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/daemon"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/gather"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/monitor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/tikv"
)

// Options configure Run. The zero value replays with the built-in
// defaults (config.Default(): the rules backend, default thresholds).
type Options struct {
	// Config supplies the invariant thresholds, the monitor's quiet
	// period, the diagnosis backend and the proposal settings; PD,
	// Prometheus and database settings are ignored (the replay serves PD
	// and Prometheus itself and uses a temporary database). Nil means
	// config.Default().
	Config *config.Config
	// Getenv is passed to the backend constructor (model API keys); nil
	// means os.Getenv.
	Getenv func(string) string
	// TempDir holds the per-tape SQLite database (removed afterwards); ""
	// means os.TempDir().
	TempDir string
	// Logger receives the operator's own logs during the replay; nil
	// discards them.
	Logger *slog.Logger
}

// Result is the outcome of one tape. JSON field names are `operator replay
// -o json`'s output.
type Result struct {
	Tape      string   `json:"tape"`
	Title     string   `json:"title"`
	Class     string   `json:"class,omitempty"`
	Source    []string `json:"source"`
	PDVersion string   `json:"pd_version"`
	// Detected: every expected detection fired.
	Detected bool `json:"detected"`
	// Right: the response matched one of the expected answers.
	Right bool `json:"right"`
	// Safe: no proposal matched a never-rule.
	Safe bool `json:"safe"`
	// Fired lists the violation keys (invariant/subject) that fired, with
	// the step they first fired at.
	Fired []Fired `json:"fired"`
	// Missed lists expected detections that never fired.
	Missed []string `json:"missed,omitempty"`
	// Diagnoses are the diagnoses stored during the replay, in order.
	Diagnoses []Diagnosis `json:"diagnoses"`
	// Unsafe explains each never-rule a proposal matched.
	Unsafe []string `json:"unsafe,omitempty"`
	// WhyNotRight says why the response was not right ("" when right).
	WhyNotRight string `json:"why_not_right,omitempty"`
	// Unserved lists the requests the tape held no answer for (answered
	// 404 like PD's unknown routes): reads the operator made that the
	// tape did not record.
	Unserved []string `json:"unserved,omitempty"`
	// Errors are invariant evaluation errors and failed diagnosis
	// attempts, deduplicated, with the step they first happened at.
	Errors []string `json:"errors,omitempty"`
}

// Fired is one violation key that reached firing.
type Fired struct {
	Key  string `json:"key"`
	Step int    `json:"step"`
}

// Diagnosis is one stored diagnosis of a ticket.
type Diagnosis struct {
	Step   int    `json:"step"`
	Ticket string `json:"ticket"`
	// Action and Params are the proposal created, if any.
	Action string          `json:"action,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	// NoAction is the diagnosis' reason for proposing nothing.
	NoAction string `json:"no_action,omitempty"`
	// Rejected is the action type validation refused, if any.
	Rejected   string `json:"rejected,omitempty"`
	Confidence string `json:"confidence,omitempty"`
	Summary    string `json:"summary,omitempty"`
}

// Proposed reports whether the diagnosis created a proposal.
func (d Diagnosis) Proposed() bool { return d.Action != "" }

// Run replays t: for each step, PD's state of that step is served on a
// loopback server with PD's clock at Start+At, the monitor runs one cycle
// at that time (real tikv.Collect, invariant.Default, a SQLite ticket
// store in a temporary file) and the diagnosis runner one pass (real
// gather, backend and validation against the action catalog). Nothing is
// approved or executed. The error reports a harness failure (database,
// backend construction); the operator's own failures are in
// Result.Errors.
func Run(ctx context.Context, t *Tape, opts Options) (*Result, error) {
	cfg := config.Default()
	if opts.Config != nil {
		cfg = *opts.Config
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp(opts.TempDir, "operator-replay-")
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", t.ID, err)
	}
	defer os.RemoveAll(dir)

	st, err := store.Open(ctx, filepath.Join(dir, "replay.db"), store.Options{Create: true, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("replay %s: open database: %w", t.ID, err)
	}
	defer st.Close()

	srv := newPDServer(t.hasPrometheus())
	defer srv.close()
	pdc, err := pd.New([]string{srv.srv.URL}, pd.WithTimeout(10*time.Second), pd.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", t.ID, err)
	}
	var prom *tikv.Prom
	if srv.prom != nil {
		if prom, err = tikv.NewProm(srv.prom.URL, nil); err != nil {
			return nil, fmt.Errorf("replay %s: %w", t.ID, err)
		}
		cfg.Prometheus.URL = srv.prom.URL
	}

	var clockMu sync.Mutex
	var now time.Time
	clock := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return now
	}

	mon := monitor.New(monitor.Options{
		Interval:       cfg.Monitor.Interval.Duration,
		Invariants:     invariant.Default(cfg.Invariants),
		Collect:        tikv.WithStoreCPU(func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, pdc) }, prom),
		Sink:           st,
		Quiet:          cfg.Monitor.Quiet.Duration,
		UnreachableFor: cfg.Invariants.ForOf(invariant.NamePDUnreachable),
		CollectTimeout: 30 * time.Second,
		Clock:          clock,
		Logger:         log,
	})
	catalog := tikv.NewCatalog(pdc, tikv.WithLogger(log))
	backend, err := daemon.NewBackend(cfg, pdc, prom, getenv, log)
	if err != nil {
		return nil, fmt.Errorf("replay %s: diagnosis backend: %w", t.ID, err)
	}
	rec := &recorder{st: st}
	runner := &diagnose.Runner{
		Source:       st,
		Gather:       gather.New(pdc, gather.Options{Prom: prom, Catalog: catalog, Now: clock, Logger: log}),
		Backend:      backend,
		Catalog:      catalog,
		Sink:         rec,
		ProposalTTL:  cfg.Actions.Expiry.Duration,
		TicketBudget: cfg.Diagnosis.TokenBudget,
		Logger:       log,
	}

	res := &Result{Tape: t.ID, Title: t.Title, Class: t.Class, Source: t.Source, PDVersion: t.PDVersion,
		Fired: []Fired{}, Diagnoses: []Diagnosis{}}
	fired := map[string]bool{}
	errSeen := map[string]bool{}
	addErr := func(step int, msg string) {
		if !errSeen[msg] {
			errSeen[msg] = true
			res.Errors = append(res.Errors, fmt.Sprintf("step %d: %s", step, msg))
		}
	}
	pdState := map[string]Response{}
	promState := map[string]json.RawMessage{}
	for i, step := range t.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		maps.Copy(pdState, step.PD)
		maps.Copy(promState, step.Prometheus)
		at := t.Start.Add(step.At.Duration)
		clockMu.Lock()
		now = at
		clockMu.Unlock()
		if err := srv.setStep(maps.Clone(pdState), maps.Clone(promState), at); err != nil {
			return nil, fmt.Errorf("replay %s: step %d: %w", t.ID, i, err)
		}

		cyc, err := mon.RunOnce(ctx, at)
		if err != nil {
			addErr(i, "monitor: "+err.Error())
		}
		if cyc.CollectErr != nil {
			addErr(i, "collect: "+cyc.CollectErr.Error())
		}
		for _, s := range cyc.Invariants {
			if s.Health == monitor.HealthBad {
				addErr(i, fmt.Sprintf("invariant %s: %s", s.Name, s.Err))
			}
		}
		for _, a := range cyc.Firing {
			if k := a.Key(); !fired[k] {
				fired[k] = true
				res.Fired = append(res.Fired, Fired{Key: k, Step: i})
			}
		}

		rec.step = i
		if _, err := runner.RunOnce(ctx, at); err != nil {
			addErr(i, "diagnosis pass: "+err.Error())
		}
		for _, f := range rec.takeFailures() {
			addErr(i, f)
		}
	}
	res.Diagnoses = rec.diagnoses
	res.Unserved = srv.Unserved()
	Score(t, res)
	return res, nil
}

// recorder is the diagnosis runner's Sink: it stores through the ticket
// store, as the daemon does, and keeps what was stored for scoring.
type recorder struct {
	st        *store.Store
	step      int
	diagnoses []Diagnosis
	failures  []string
}

// SaveDiagnosis stores r and records it.
func (r *recorder) SaveDiagnosis(ctx context.Context, ticketID int64, res diagnose.Result, now time.Time) (int64, error) {
	in := store.DiagnosisInput{Markdown: res.Markdown, JSON: res.JSON, Proposal: res.Proposal}
	if res.Diagnosis != nil {
		in.Backend = res.Diagnosis.Backend
		in.InputTokens, in.OutputTokens = res.Diagnosis.Usage.InputTokens, res.Diagnosis.Usage.OutputTokens
	}
	id, err := r.st.SaveDiagnosis(ctx, ticketID, in, now)
	if err != nil {
		return id, err
	}
	d := Diagnosis{Step: r.step, Ticket: fmt.Sprintf("#%d", ticketID)}
	if t, err := r.st.Ticket(ctx, ticketID); err == nil {
		d.Ticket = t.Key
	}
	if res.Proposal != nil {
		d.Action = res.Proposal.ActionType
		d.Params = append(json.RawMessage(nil), res.Proposal.Params...)
	}
	if dg := res.Diagnosis; dg != nil {
		d.NoAction = dg.NoActionReason
		d.Confidence = string(dg.Confidence)
		d.Summary = dg.Summary
		if dg.RejectedAction != nil {
			d.Rejected = dg.RejectedAction.ActionType
		}
	}
	r.diagnoses = append(r.diagnoses, d)
	return id, nil
}

// DiagnosisFailed stores the failed attempt and records its error.
func (r *recorder) DiagnosisFailed(ctx context.Context, ticketID int64, errMsg string, next time.Time, spent diagnose.Usage) error {
	key := fmt.Sprintf("#%d", ticketID)
	if t, err := r.st.Ticket(ctx, ticketID); err == nil {
		key = t.Key
	}
	r.failures = append(r.failures, fmt.Sprintf("diagnosis of %s failed: %s", key, errMsg))
	return r.st.DiagnosisFailedSpent(ctx, ticketID, errMsg, next, spent.InputTokens, spent.OutputTokens)
}

func (r *recorder) takeFailures() []string {
	f := r.failures
	r.failures = nil
	return f
}

// RunAll replays every tape in order; a harness error stops it.
func RunAll(ctx context.Context, tapes []*Tape, opts Options) ([]*Result, error) {
	out := make([]*Result, 0, len(tapes))
	for _, t := range tapes {
		r, err := Run(ctx, t, opts)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// sortedKeys returns m's keys sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := slices.Collect(maps.Keys(m))
	sort.Strings(out)
	return out
}
