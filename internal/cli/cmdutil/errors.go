package cmdutil

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FlagError is bad input: a wrong flag, argument or configuration (exit 2).
type FlagError struct{ err error }

func (e *FlagError) Error() string { return e.err.Error() }

// Unwrap returns the underlying error.
func (e *FlagError) Unwrap() error { return e.err }

// FlagErrorf returns a *FlagError with a formatted message.
func FlagErrorf(format string, a ...any) error {
	return &FlagError{err: fmt.Errorf(format, a...)}
}

// FlagErrorWrap marks err as bad input; nil stays nil.
func FlagErrorWrap(err error) error {
	if err == nil {
		return nil
	}
	return &FlagError{err: err}
}

// Outcomes a command reports through its exit code after it printed its
// result; the top level maps each to a documented code.
var (
	// ErrViolations: `operator check` found violated invariants (exit 7).
	ErrViolations = errors.New("invariants violated")
	// ErrVerifyFailed: `operator audit verify` found a broken chain (exit 8).
	ErrVerifyFailed = errors.New("audit trail verification failed")
	// ErrActionFailed: the executed action failed, or a dry run found it
	// invalid (exit 9).
	ErrActionFailed = errors.New("action failed")
	// ErrPending: an approval was recorded but its outcome is not known
	// yet: no executor picked it up, or it is still executing (exit 10).
	ErrPending = errors.New("outcome pending")
)

// SilentError carries an error whose message the command already printed;
// the top level only maps it to an exit code.
type SilentError struct{ Err error }

func (e *SilentError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *SilentError) Unwrap() error { return e.Err }

// Silent wraps err as already reported.
func Silent(err error) error { return &SilentError{Err: err} }

// ParseID parses a ticket, action or record id given on the command line:
// a positive integer, optionally written "#7". Anything else is a
// *FlagError naming kind ("action", "ticket").
func ParseID(kind, arg string) (int64, error) {
	s := strings.TrimPrefix(strings.TrimSpace(arg), "#")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, FlagErrorf("invalid %s id %q: want a positive integer", kind, arg)
	}
	return id, nil
}
