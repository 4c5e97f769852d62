// Package rules is the default diagnosis backend: offline and
// deterministic, one runbook per invariant, written from how TiKV
// operators resolve these problems (public PD and TiKV issue reports) and from PD's
// own behaviour (/work/shared/pd-api.md).
//
// Every Diagnosis has a summary, a root cause, evidence lines carrying the
// actual PD numbers, a confidence and risks, and either exactly one
// concrete action with real store and region ids taken from the Context,
// or a NoActionReason that starts with NoActionPrefix and says why a human
// must look. The same Context always yields the same Diagnosis: nothing
// reads the clock, the network or a random source, and every list is
// sorted.
//
// The backend proposes only; diagnose.Validate dry-runs the proposal
// against PD before a runner stores it, and a human approves it. It never
// proposes a forced store removal, and never raises low-space-ratio.
package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/tikv"
)

// Name is the backend's Name(), recorded on its diagnoses and proposals.
const Name = "rules"

// NoActionPrefix starts every NoActionReason of this backend.
const NoActionPrefix = "no action: a human must look — "

// Defaults of Options.
const (
	// DefaultMinSplitSizeMiB: a hot region smaller than this is not split
	// (PD renders an empty region as 1 MiB; splitting a tiny region moves
	// no load).
	DefaultMinSplitSizeMiB = 2
	// DefaultUrgentRegionSizeMiB: an oversized region at least this large
	// is split "soon" rather than "when convenient" (PingCAP's
	// TiKV_approximate_region_size alert fires at 1 GiB).
	DefaultUrgentRegionSizeMiB = 1024
)

// Options configure the rules backend. Zero fields take the defaults
// noted.
type Options struct {
	// SlowScore is the slow_score from which a store counts as slow (PD's
	// IsSlow: 80).
	SlowScore uint64
	// MinSplitSizeMiB: DefaultMinSplitSizeMiB.
	MinSplitSizeMiB int64
	// UrgentRegionSizeMiB: DefaultUrgentRegionSizeMiB.
	UrgentRegionSizeMiB int64
}

var _ diagnose.Backend = (*Backend)(nil)

// Backend is the rules diagnosis backend. Create it with New; it is safe
// for concurrent use.
type Backend struct {
	opts Options
}

// New returns the rules backend.
func New(opts Options) *Backend {
	if opts.SlowScore == 0 {
		opts.SlowScore = pdSlowScore
	}
	if opts.MinSplitSizeMiB <= 0 {
		opts.MinSplitSizeMiB = DefaultMinSplitSizeMiB
	}
	if opts.UrgentRegionSizeMiB <= 0 {
		opts.UrgentRegionSizeMiB = DefaultUrgentRegionSizeMiB
	}
	return &Backend{opts: opts}
}

// Name returns "rules".
func (b *Backend) Name() string { return Name }

// runbook diagnoses one invariant's ticket.
type runbook func(f *facts) *diagnose.Diagnosis

// Runbooks returns the invariant names this backend has a runbook for
// (Families), sorted. Tickets of any other invariant get a generic "a
// human must look" diagnosis.
func Runbooks() []string { return Families() }

// Diagnose runs the runbook of c.Ticket.Invariant. It fails only for a nil
// c or an ended ctx; it never reads the cluster (the Context holds what
// the gatherer read).
func (b *Backend) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	if c == nil {
		return nil, errors.New("rules: nil context")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", diagnose.ErrUnavailable, err)
	}
	f := newFacts(c, b.opts)
	rb := unknownInvariant
	if fam, ok := families[c.Ticket.Invariant]; ok {
		rb = fam.runbook
	}
	d := rb(f)
	d.Backend = Name
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
	return d, nil
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
