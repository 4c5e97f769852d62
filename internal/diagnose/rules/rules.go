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
	"errors"
	"fmt"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/invariant"
)

// Name is the backend's Name(), recorded on its diagnoses and proposals.
const Name = "rules"

// NoActionPrefix starts every NoActionReason of this backend.
const NoActionPrefix = invariant.NoActionPrefix

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

// Options configure the rules backend (invariant.RunbookOptions). Zero
// fields take the defaults: SlowScore PD's 80, MinSplitSizeMiB
// DefaultMinSplitSizeMiB, UrgentRegionSizeMiB DefaultUrgentRegionSizeMiB.
type Options = invariant.RunbookOptions

var _ diagnose.Backend = (*Backend)(nil)

// Backend is the rules diagnosis backend. Create it with New; it is safe
// for concurrent use.
type Backend struct {
	opts Options
}

// New returns the rules backend.
func New(opts Options) *Backend {
	if opts.SlowScore == 0 {
		opts.SlowScore = invariant.DefaultSlowScore
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

// Runbooks returns the invariant names this backend has a runbook for
// (Families), sorted. Tickets of any other invariant get a generic "a
// human must look" diagnosis.
func Runbooks() []string { return Families() }

// Allowed returns the action types a diagnosis of a ticket of invariant
// may propose, sorted, and whether the invariant has a family at all
// (invariant.Allowed: the family table next to the detectors). It is the
// diagnose.AllowList the runner validates every proposal against.
func Allowed(name string) ([]string, bool) { return invariant.Allowed(name) }

// Families returns every invariant with a family, sorted.
func Families() []string { return invariant.Families() }

// Diagnose runs the runbook of c.Ticket.Invariant (invariant.Diagnose). It
// fails only for a nil c or an ended ctx; it never reads the cluster (the
// Context holds what the gatherer read).
func (b *Backend) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	if c == nil {
		return nil, errors.New("rules: nil context")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", diagnose.ErrUnavailable, err)
	}
	d := invariant.Diagnose(c, b.opts)
	d.Backend = Name
	return d, nil
}
