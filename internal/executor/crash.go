package executor

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// CrashEnv names the environment variable the daemon reads to enable
// fault injection (NewCrasherFromEnv): its value is a CrashPoint. It exists
// for tests that kill the real process at a step of an execution; never
// set it in production.
const CrashEnv = "OPERATOR_TEST_CRASH_AT"

// CrashPoint names a step of an execution at which a Crasher kills the
// process.
type CrashPoint string

// Crash points, in the order an execution reaches them.
const (
	// CrashBeforeRequest: after the claim, the precondition re-check and
	// the state capture, immediately before the action sends anything.
	CrashBeforeRequest CrashPoint = "before_request"
	// CrashAfterRequest: right after PD answered the first mutating
	// request (any method but GET) of an execution, before the effect is
	// verified. It needs the Crasher's Observer on the PD client.
	CrashAfterRequest CrashPoint = "after_request"
	// CrashBeforeRecord: after the execution and the state capture,
	// immediately before the outcome is written to the store.
	CrashBeforeRecord CrashPoint = "before_record"
)

// Crasher is fault injection for tests: it SIGKILLs its own process when
// an execution reaches its CrashPoint, so that crash safety is tested on
// a real process death (no deferred code, no store write). A nil *Crasher
// does nothing; production code passes nil.
type Crasher struct {
	point CrashPoint
	armed atomic.Int32
	// kill ends the process; replaced in tests of the Crasher itself.
	kill func()
}

// NewCrasher returns a Crasher for point, or an error for an unknown
// point.
func NewCrasher(point CrashPoint) (*Crasher, error) {
	switch point {
	case CrashBeforeRequest, CrashAfterRequest, CrashBeforeRecord:
	default:
		return nil, fmt.Errorf("unknown crash point %q (want %s, %s or %s)", point, CrashBeforeRequest, CrashAfterRequest, CrashBeforeRecord)
	}
	return &Crasher{point: point, kill: killSelf}, nil
}

// NewCrasherFromEnv returns the Crasher selected by $OPERATOR_TEST_CRASH_AT,
// nil when it is unset or empty, or an error for an unknown value.
func NewCrasherFromEnv() (*Crasher, error) {
	v := os.Getenv(CrashEnv)
	if v == "" {
		return nil, nil
	}
	c, err := NewCrasher(CrashPoint(v))
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", CrashEnv, err)
	}
	return c, nil
}

// Point returns the crash point ("" for a nil Crasher).
func (c *Crasher) Point() CrashPoint {
	if c == nil {
		return ""
	}
	return c.point
}

// Observer returns a hook for the PD client (pd.WithObserver; the
// signature is pd.Observer's) that kills the process after the first
// mutating request of an execution when the point is CrashAfterRequest.
// It is nil-safe and does nothing for other points.
func (c *Crasher) Observer() func(method, path string, status int, d time.Duration, bytesRead int64) {
	return func(method, path string, status int, d time.Duration, bytesRead int64) {
		if c == nil || c.point != CrashAfterRequest || method == "GET" || c.armed.Load() == 0 {
			return
		}
		c.kill()
	}
}

// at kills the process when p is the crash point.
func (c *Crasher) at(p CrashPoint) {
	if c != nil && c.point == p {
		c.kill()
	}
}

func (c *Crasher) arm() {
	if c != nil {
		c.armed.Add(1)
	}
}

func (c *Crasher) disarm() {
	if c != nil {
		c.armed.Add(-1)
	}
}

// killSelf sends SIGKILL to this process and waits for it to land.
func killSelf() {
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		_ = p.Kill()
	}
	select {}
}
