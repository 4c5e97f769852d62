package cli

import (
	"errors"
	"fmt"
)

// Exit codes. Scripts can branch on them; they are part of the CLI's
// contract and documented in README.md.
const (
	ExitOK             = 0 // success
	ExitError          = 1 // unexpected failure
	ExitUsage          = 2 // wrong arguments or flags, invalid input
	ExitNotFound       = 3 // unknown ticket, action or record id
	ExitWrongState     = 4 // the object is not in a state that allows the request
	ExitNoDatabase     = 5 // the SQLite file does not exist
	ExitPDUnreachable  = 6 // PD did not answer
	ExitViolations     = 7 // `operator check` found violated invariants
	ExitVerifyFailed   = 8 // `operator audit verify` found a broken chain
	ExitActionFailed   = 9 // the approved action failed, or a dry run found it invalid
	ExitPendingOutcome = 10
)

// exitError carries an exit code with the error shown to the user.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err with an exit code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageErrorf reports bad input (exit 2).
func usageErrorf(format string, a ...any) error {
	return withCode(ExitUsage, fmt.Errorf(format, a...))
}

// silentExit ends with a code without printing anything more (the command
// already printed its result).
type silentExit int

func (s silentExit) Error() string { return fmt.Sprintf("exit %d", int(s)) }

func codeOf(err error) (int, bool) {
	var s silentExit
	if errors.As(err, &s) {
		return int(s), true
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code, false
	}
	return ExitError, false
}
