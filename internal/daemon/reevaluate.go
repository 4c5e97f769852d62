package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/monitor"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
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
// the region heartbeat that completed an operator by up to a second or two.
// With a Feed (the daemon's), a re-check reads nothing from PD: it waits
// for the monitor's first snapshot collected SettleLag or more after it was
// asked, and evaluates that (issue 17: the cycle's snapshot is shared; a
// re-check no longer re-reads the cluster). Without a Feed, or when no
// such snapshot comes within FeedWait, a violation is re-read from PD
// every SettleInterval for up to Settle before it counts as still there.
type Reevaluator struct {
	collect monitor.CollectFunc
	now     func() time.Time
	// Feed, when not nil, is the monitor's snapshots; see above.
	Feed *SnapshotFeed
	// SettleLag is how long after the re-check was asked the snapshot it
	// uses must have started (DefaultSettleLag); FeedWait bounds the wait
	// for it (DefaultFeedWait).
	SettleLag, FeedWait time.Duration
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
	DefaultSettleLag      = 2 * time.Second
	// DefaultFeedWait covers one default monitor interval (10 s) after
	// the settle lag; the executor's step timeout (15 s) bounds it too.
	DefaultFeedWait = 12 * time.Second
)

// NewReevaluator returns a Reevaluator for the invariants cfg configures.
func NewReevaluator(collect monitor.CollectFunc, cfg invariant.Config, now func() time.Time) *Reevaluator {
	r := &Reevaluator{collect: collect, now: now, invariants: map[string]invariant.Invariant{},
		Settle: DefaultSettle, SettleInterval: DefaultSettleInterval, SettleLag: DefaultSettleLag, FeedWait: DefaultFeedWait}
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
	if r.Feed != nil && t.Invariant != invariant.NamePDUnreachable {
		wctx, cancel := context.WithTimeout(ctx, r.FeedWait)
		snap, ok := r.Feed.Next(wctx, time.Now().Add(r.SettleLag))
		cancel()
		if ok {
			return r.eval(ctx, t, snap)
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("re-evaluate %s: no monitor snapshot before the deadline: %w", t.Key, ctx.Err())
		}
		// No monitor cycle came (PD slow, monitor stopped): read PD.
	}
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
	return r.eval(ctx, t, snap)
}

// eval evaluates t's invariant on snap for t's subject.
func (r *Reevaluator) eval(ctx context.Context, t ticket.Ticket, snap *tikv.Snapshot) (bool, error) {
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

// SnapshotFeed hands the monitor's snapshots to those who would otherwise
// read the cluster themselves: diagnoses (Recent) and re-checks after an
// execution (Next). Safe for concurrent use; the snapshots are read-only.
type SnapshotFeed struct {
	mu      sync.Mutex
	snap    *tikv.Snapshot
	started time.Time // when the collection of snap began
	at      time.Time // when it ended
	changed chan struct{}
}

// NewSnapshotFeed returns an empty feed.
func NewSnapshotFeed() *SnapshotFeed { return &SnapshotFeed{changed: make(chan struct{})} }

// Publish records snap, whose collection began at started, and wakes the
// waiters of Next.
func (f *SnapshotFeed) Publish(snap *tikv.Snapshot, started time.Time) {
	f.mu.Lock()
	f.snap, f.started, f.at = snap, started, time.Now()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Recent returns the last snapshot when it was collected within maxAge,
// else nil.
func (f *SnapshotFeed) Recent(maxAge time.Duration) *tikv.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.snap != nil && time.Since(f.at) <= maxAge {
		return f.snap
	}
	return nil
}

// Next returns the first snapshot whose collection began at or after
// after, waiting for it until ctx ends (ok false then).
func (f *SnapshotFeed) Next(ctx context.Context, after time.Time) (*tikv.Snapshot, bool) {
	for {
		f.mu.Lock()
		snap, started, ch := f.snap, f.started, f.changed
		f.mu.Unlock()
		if snap != nil && !started.Before(after) {
			return snap, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-ch:
		}
	}
}
