package cmdutil

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/store"
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
	// ErrNotEvaluated: `operator check` could not evaluate some invariants
	// and found no violation among the others (exit 15).
	ErrNotEvaluated = errors.New("invariants not evaluated")
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

// NotFoundError is an unknown ticket or action id (exit 3). It matches
// store.ErrNotFound.
type NotFoundError struct {
	Kind string // "ticket", "action"
	ID   int64
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %d not found", e.Kind, e.ID) }

// Unwrap returns store.ErrNotFound.
func (e *NotFoundError) Unwrap() error { return store.ErrNotFound }

// StateError is a request the object's status does not allow (exit 4),
// with a message for humans; it unwraps to the store's or executor's
// error (*action.ErrTransition, store.ErrExpired, executor.ErrPolicy).
type StateError struct {
	Msg string
	Err error
}

func (e *StateError) Error() string { return e.Msg }

// Unwrap returns the underlying error.
func (e *StateError) Unwrap() error { return e.Err }

// Clean turns the store's and executor's errors about the object kind/id
// into the short messages the CLI prints: "action 7 not found",
// "action 7 is rejected; only proposed actions can be approved". Other
// errors are returned unchanged.
func Clean(kind string, id int64, err error) error {
	if err == nil {
		return nil
	}
	var (
		te *action.ErrTransition
		ae *api.Error
	)
	if errors.As(err, &ae) {
		switch ae.Code {
		case api.CodeNotFound:
			return &NotFoundError{Kind: kind, ID: id}
		case api.CodeWrongState, api.CodeExpired, api.CodePolicy:
			return &StateError{Msg: trimVerb(ae.Message, id), Err: err}
		}
		return err
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &NotFoundError{Kind: kind, ID: id}
	case errors.As(err, &te):
		msg := te.Error()
		if te.To == action.DryRun {
			msg = fmt.Sprintf("action %d is %s; only proposed actions can be dry-run", te.ID, te.From)
		}
		return &StateError{Msg: msg, Err: err}
	case errors.Is(err, store.ErrExpired):
		return &StateError{Msg: strings.TrimPrefix(err.Error(), fmt.Sprintf("approve action %d: ", id)), Err: err}
	case errors.Is(err, executor.ErrPolicy):
		return &StateError{Msg: strings.TrimPrefix(err.Error(), fmt.Sprintf("approve action %d: ", id)), Err: err}
	}
	return err
}

// trimVerb drops the "approve action 7: " prefix of a daemon's message.
func trimVerb(msg string, id int64) string {
	for _, verb := range []string{"approve", "reject", "dry run"} {
		msg = strings.TrimPrefix(msg, fmt.Sprintf("%s action %d: ", verb, id))
	}
	return msg
}
