package invariant

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/tikv"
)

// Runbooks: the rules diagnosis of every invariant family lives in the
// family's file, next to its detector; families.go ties each invariant to
// its runbook and allowed actions. Package rules (the "rules" diagnosis
// backend) dispatches to Diagnose.

// NoActionPrefix starts every NoActionReason of the runbooks.
const NoActionPrefix = "no action: a human must look — "

// RunbookOptions configure the runbooks (the rules backend's Options).
// Zero fields take the defaults noted there (rules.New applies them).
type RunbookOptions struct {
	// SlowScore is the slow_score from which a store counts as slow (PD's
	// IsSlow: 80).
	SlowScore uint64
	// MinSplitSizeMiB: rules.DefaultMinSplitSizeMiB.
	MinSplitSizeMiB int64
	// UrgentRegionSizeMiB: rules.DefaultUrgentRegionSizeMiB.
	UrgentRegionSizeMiB int64
}

// runbook diagnoses one invariant's ticket.
type runbook func(f *facts) *diagnose.Diagnosis

// Diagnose runs the runbook of c.Ticket.Invariant over c (the gatherer's
// reads; it never reads the cluster) and completes the diagnosis: what
// could not be read is listed in its evidence and withdraws a proposal
// that depends on it (fail closed); an invariant without a runbook gets a
// generic "a human must look" diagnosis. Diagnosis.Backend is left to the
// caller. c must not be nil.
func Diagnose(c *diagnose.Context, opts RunbookOptions) *diagnose.Diagnosis {
	f := newFacts(c, opts)
	rb := unknownInvariant
	if fam, ok := families[c.Ticket.Invariant]; ok {
		rb = fam.runbook
	}
	d := rb(f)
	f.failClosed(d)
	if len(d.Evidence) == 0 {
		d.Evidence = []string{fmt.Sprintf("ticket %s: %s", c.Ticket.Key, c.Ticket.Summary)}
	}
	if d.Risks == nil {
		d.Risks = []string{}
	}
	if d.ProposedAction == nil && d.NoActionReason == "" {
		d.NoActionReason = page("the runbook found nothing safe to propose")
	}
	return d
}

// page returns a NoActionReason.
func page(why string, args ...any) string {
	return NoActionPrefix + fmt.Sprintf(why, args...)
}

// propose builds a ProposedAction; params is rendered as a JSON object
// with sorted keys.
func propose(actionType string, params map[string]any, urgency action.Urgency, rationale string, args ...any) *diagnose.ProposedAction {
	raw, err := json.Marshal(params)
	if err != nil {
		// Params are built from ids and fixed strings; this cannot fail.
		raw = []byte("{}")
	}
	return &diagnose.ProposedAction{ActionType: actionType, Params: raw, Rationale: fmt.Sprintf(rationale, args...), Urgency: urgency}
}

// unknownInvariant pages for a ticket no runbook knows.
func unknownInvariant(f *facts) *diagnose.Diagnosis {
	t := f.c.Ticket
	summary := t.Summary
	if summary == "" {
		summary = fmt.Sprintf("%s on %s", t.Invariant, t.Subject)
	}
	return &diagnose.Diagnosis{
		Summary:    summary,
		RootCause:  fmt.Sprintf("The rules backend has no runbook for invariant %q, so it cannot tell the cause.", t.Invariant),
		Evidence:   []string{fmt.Sprintf("ticket %s (%s, severity %s): %s", t.Key, t.Subject, t.Severity, t.Summary)},
		Confidence: diagnose.ConfidenceLow,
		Risks:      []string{"Unknown invariant: doing nothing may leave a real problem unattended."},
		NoActionReason: page("no runbook for invariant %q; read the ticket's evidence and PD's state (pd-ctl store, pd-ctl operator show)",
			t.Invariant),
	}
}

// coreSources are the PD reads every proposal depends on: limits and
// halt-scheduling, max-replicas and location labels, schedulers and
// evict-leader stores, and PD's running operators (a proposal must not
// fight them). The gatherer's reads of the involved regions ("region/N",
// "regions/store/N") count too; PD's check lists (regions/check/*, absent
// from old PDs) and hotspot reads do not.
var coreSources = []string{tikv.SourceSchedule, tikv.SourceReplication, tikv.SourceSchedulers,
	tikv.SourcePaused, tikv.SourceEvictLeader, tikv.SourceOperators}

// failClosed lists in d's evidence what the gatherer could not read and,
// when a read a proposal depends on failed, withdraws the proposal and
// names the missing inputs: a check that lacks an input refuses.
func (f *facts) failClosed(d *diagnose.Diagnosis) {
	errs := f.c.SourceErrors
	if len(errs) == 0 {
		return
	}
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var missing []string
	for _, k := range keys {
		d.Evidence = append(d.Evidence, fmt.Sprintf("could not read %s: %s", k, clipText(errs[k], 200)))
		if slices.Contains(coreSources, k) || strings.HasPrefix(k, "region/") || strings.HasPrefix(k, "regions/store/") {
			missing = append(missing, k)
		}
	}
	if d.ProposedAction == nil || len(missing) == 0 {
		return
	}
	d.RejectedAction = nil
	d.ProposedAction = nil
	d.Confidence = diagnose.ConfidenceLow
	d.NoActionReason = page("this diagnosis would propose an action, but PD could not be read for %s, which it depends on; re-diagnose once PD answers", strings.Join(missing, ", "))
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// subjectStore returns the store id of a "store:N" subject.
func subjectStore(f *facts) (uint64, bool) {
	return subjectID(f.c.Ticket.Subject, "store:")
}

func subjectRegion(f *facts) (uint64, bool) {
	return subjectID(f.c.Ticket.Subject, "region:")
}

func subjectID(subject, prefix string) (uint64, bool) {
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || id == 0 {
		return 0, false
	}
	return id, true
}

func roundMap(m map[uint64]float64) map[uint64]float64 {
	out := make(map[uint64]float64, len(m))
	for k, v := range m {
		out[k] = math.Round(v)
	}
	return out
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " {("); i > 0 {
		return s[:i]
	}
	return s
}
