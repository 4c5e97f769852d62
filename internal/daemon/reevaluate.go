package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/monitor"
	"github.com/tikvops/operator/internal/ticket"
)

// Reevaluator re-runs the invariant behind a ticket against a fresh
// snapshot, for the executor's Reevaluate hook: after an execution, a ticket
// whose invariant now holds for its subject is resolved at once instead of
// after the monitor's quiet period.
//
// It keeps its own invariant instances (invariant.Default of the same
// configuration), separate from the monitor's, so that a re-evaluation never
// races with a monitor cycle. Stateful invariants (store_offline_stuck)
// start without history here, so they only see what one snapshot shows; the
// monitor's next cycles keep the final word (a problem that persists opens a
// new ticket linked to the resolved one).
//
// PD's per-store counters (leader_count, region_count in GET /stores) lag
// the region heartbeat that completed an operator by up to a second or two,
// so a violation seen right after an execution is re-read every
// SettleInterval for up to Settle before it counts as still there.
type Reevaluator struct {
	collect monitor.CollectFunc
	now     func() time.Time
	// Settle bounds how long a violation is re-read before Reevaluate
	// reports it (DefaultSettle); SettleInterval is the pause between reads
	// (DefaultSettleInterval).
	Settle, SettleInterval time.Duration

	mu         sync.Mutex
	invariants map[string]invariant.Invariant
}

// Defaults of Reevaluator's settle window.
const (
	DefaultSettle         = 5 * time.Second
	DefaultSettleInterval = 500 * time.Millisecond
)

// NewReevaluator returns a Reevaluator for the invariants cfg configures.
func NewReevaluator(collect monitor.CollectFunc, cfg invariant.Config, now func() time.Time) *Reevaluator {
	r := &Reevaluator{collect: collect, now: now, invariants: map[string]invariant.Invariant{},
		Settle: DefaultSettle, SettleInterval: DefaultSettleInterval}
	for _, inv := range invariant.Default(cfg) {
		r.invariants[inv.Name()] = inv
	}
	return r
}

// Reevaluate reports whether t's invariant holds now for t's subject
// (executor.ReevaluateFunc), re-reading a violation for up to Settle. The
// `for` duration does not apply: the question is whether the violation is
// still there. Errors: PD could not be read, the invariant is unknown or
// disabled, or it could not be evaluated.
func (r *Reevaluator) Reevaluate(ctx context.Context, t ticket.Ticket) (bool, error) {
	deadline := time.Now().Add(r.Settle)
	for {
		held, err := r.once(ctx, t)
		if err != nil || held || !time.Now().Before(deadline) {
			return held, err
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(r.SettleInterval):
		}
	}
}

func (r *Reevaluator) once(ctx context.Context, t ticket.Ticket) (bool, error) {
	snap, err := r.collect(ctx)
	if t.Invariant == invariant.NamePDUnreachable {
		return err == nil, nil
	}
	if err != nil {
		return false, fmt.Errorf("re-evaluate %s: %w", t.Key, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	inv, ok := r.invariants[t.Invariant]
	if !ok {
		return false, fmt.Errorf("re-evaluate %s: invariant %q is not enabled", t.Key, t.Invariant)
	}
	vs, err := inv.Eval(ctx, snap, r.now())
	if err != nil {
		return false, fmt.Errorf("re-evaluate %s: %w", t.Key, err)
	}
	for _, v := range vs {
		if v.Subject == t.Subject {
			return false, nil
		}
	}
	return true, nil
}
