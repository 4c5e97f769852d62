package monitor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/invariant"
)

// TestUnreachableLoggedOnChange: a PD that stays unreachable is logged
// once when the state changes, then reminded every UnreachableReminder,
// and its return is logged once; the cycles in between log at debug only.
func TestUnreachableLoggedOnChange(t *testing.T) {
	var logs bytes.Buffer
	col := &fakeCollect{}
	m := New(Options{Invariants: []invariant.Invariant{&fakeInv{name: "store_down"}}, Collect: col.collect, Sink: &memSink{},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	runOnce(t, m, at(0))
	col.setErr(errors.New("dial tcp 127.0.0.1:2379: connection refused"))
	// 45 s of 10 s cycles (the 24 lines), then 6 minutes more.
	for s := 10; s <= 45; s += 2 {
		runOnce(t, m, at(s))
	}
	for s := 60; s <= 420; s += 10 {
		runOnce(t, m, at(s))
	}
	col.setErr(nil)
	runOnce(t, m, at(430))
	runOnce(t, m, at(440))
	out := logs.String()
	if n := strings.Count(out, "level=WARN msg=\"PD unreachable"); n != 1 {
		t.Errorf("%d 'PD unreachable' warnings, want 1:\n%s", n, out)
	}
	// Reminders at t+310 s (5 min after t+10 s); the next would be t+610 s.
	if n := strings.Count(out, "PD still unreachable"); n != 1 {
		t.Errorf("%d reminders, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "PD reachable again"); n != 1 || !strings.Contains(out, "unreachable_for=7m0s") {
		t.Errorf("%d 'reachable again', want 1 with unreachable_for=7m0s:\n%s", n, out)
	}
	if lines := strings.Count(out, "\n"); lines > 6 {
		t.Errorf("%d log lines for a 7-minute outage:\n%s", lines, out)
	}
}

// TestCycleDebugLogHasDuration: the debug line of a cycle carries the
// cycle's real duration (it was 0: set after the result was returned).
func TestCycleDebugLogHasDuration(t *testing.T) {
	var logs bytes.Buffer
	col := &fakeCollect{delay: 3 * time.Millisecond}
	m := New(Options{Collect: col.collect, Sink: &memSink{},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	m.runCycle(context.Background())
	res, err := m.RunOnce(context.Background(), at(1))
	if err != nil {
		t.Fatal(err)
	}
	if res.Duration < 3*time.Millisecond {
		t.Errorf("RunOnce's Duration = %s, want >= the collection's 3ms", res.Duration)
	}
	out := logs.String()
	if !strings.Contains(out, "msg=\"monitor cycle\"") || strings.Contains(out, "duration=0s") {
		t.Errorf("debug line:\n%s", out)
	}
}
