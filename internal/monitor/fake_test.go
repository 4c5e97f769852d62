package monitor

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// memSink is an in-memory Sink with the ticket store's semantics (one
// non-resolved ticket per key, cleared_at + quiet before resolving), for
// pure-logic tests; the real SQLite store is used in real_test.go.
type memSink struct {
	mu       sync.Mutex
	tickets  []ticket.Ticket
	observes int
	sweeps   [][]string // evaluated lists received
	failNext error
}

func (s *memSink) Observe(_ context.Context, obs ticket.Observation, now time.Time) (ticket.Ticket, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observes++
	if err := s.failNext; err != nil {
		s.failNext = nil
		return ticket.Ticket{}, false, err
	}
	var prev *int64
	for i := range s.tickets {
		t := &s.tickets[i]
		if t.Key != obs.Key() {
			continue
		}
		if t.Status != ticket.Resolved {
			t.LastSeen, t.Occurrences, t.ClearedAt, t.Evidence, t.Summary = now, t.Occurrences+1, nil, obs.Evidence, obs.Summary
			return *t, false, nil
		}
		id := t.ID
		prev = &id
	}
	t := ticket.Ticket{ID: int64(len(s.tickets) + 1), Key: obs.Key(), Invariant: obs.Invariant, Subject: obs.Subject,
		Severity: obs.Severity, Status: ticket.Open, Summary: obs.Summary, Evidence: obs.Evidence,
		FirstEvidence: obs.Evidence, FirstSeen: now, LastSeen: now, Occurrences: 1, PreviousID: prev}
	s.tickets = append(s.tickets, t)
	return t, true, nil
}

func (s *memSink) Sweep(_ context.Context, evaluated []string, violated map[string]bool, now time.Time, quiet time.Duration) ([]ticket.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweeps = append(s.sweeps, slices.Clone(evaluated))
	var out []ticket.Ticket
	for i := range s.tickets {
		t := &s.tickets[i]
		if t.Status == ticket.Resolved || !slices.Contains(evaluated, t.Invariant) || violated[t.Key] {
			continue
		}
		if t.ClearedAt == nil {
			c := now
			t.ClearedAt = &c
		}
		if !t.ClearedAt.After(now.Add(-quiet)) {
			r := now
			t.Status, t.ResolvedAt = ticket.Resolved, &r
			out = append(out, *t)
		}
	}
	return out, nil
}

// open returns the non-resolved tickets by key.
func (s *memSink) open() map[string]ticket.Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]ticket.Ticket{}
	for _, t := range s.tickets {
		if t.Status != ticket.Resolved {
			out[t.Key] = t
		}
	}
	return out
}

func (s *memSink) all() []ticket.Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tickets)
}

// fakeInv is an invariant driven by the test: it reports the subjects in
// Subjects, or Err, or panics when Panic is set.
type fakeInv struct {
	mu       sync.Mutex
	name     string
	pending  time.Duration
	subjects []string
	err      error
	panicMsg string
	calls    int
}

func (f *fakeInv) Name() string       { return f.name }
func (f *fakeInv) For() time.Duration { return f.pending }

func (f *fakeInv) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]invariant.Violation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	if f.err != nil {
		return nil, f.err
	}
	var out []invariant.Violation
	for _, sub := range f.subjects {
		out = append(out, invariant.Violation{Subject: sub, Severity: ticket.Warning, Summary: f.name + " on " + sub,
			Evidence: map[string]any{"stores": len(s.Stores)}})
	}
	return out, nil
}

func (f *fakeInv) set(subjects ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subjects, f.err, f.panicMsg = subjects, nil, ""
}

func (f *fakeInv) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeInv) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeCollect returns an empty snapshot, or err while it is set.
type fakeCollect struct {
	mu    sync.Mutex
	err   error
	calls int
	delay time.Duration
}

func (c *fakeCollect) collect(ctx context.Context) (*tikv.Snapshot, error) {
	c.mu.Lock()
	c.calls++
	err, delay := c.err, c.delay
	c.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &tikv.Snapshot{}, nil
}

func (c *fakeCollect) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

func (c *fakeCollect) callCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

var errBoom = errors.New("boom")

type tikvSnapshot = tikv.Snapshot
