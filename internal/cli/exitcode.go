package cli

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// Exit codes. Scripts can branch on them; they are part of the CLI's
// contract and documented in README.md.
const (
	ExitOK            = 0 // success
	ExitError         = 1 // unexpected failure
	ExitUsage         = 2 // wrong arguments or flags, invalid input or configuration
	ExitNotFound      = 3 // unknown ticket, action or record id
	ExitWrongState    = 4 // the object is not in a state that allows the request
	ExitNoDatabase    = 5 // the SQLite file does not exist
	ExitPDUnreachable = 6 // PD did not answer
	ExitViolations    = 7 // `operator check` found violated invariants
	ExitVerifyFailed  = 8 // `operator audit verify` found a broken chain
	ExitActionFailed  = 9 // the approved action failed, or a dry run found it invalid
	// ExitPendingOutcome: `actions approve` recorded the approval but the
	// outcome is not known within --wait (no executor picked it up, or it
	// is still executing).
	ExitPendingOutcome = 10
	// ExitWrongCluster: the database belongs to another PD cluster than
	// the one PD answers for.
	ExitWrongCluster = 11
	// ExitNotAllowed: no credentials the daemon accepts, or a role that
	// does not allow the request (a viewer approving).
	ExitNotAllowed = 12
	// ExitDaemonUnreachable: nothing answers on the daemon's socket or URL.
	ExitDaemonUnreachable = 13
	// ExitNotPD: the --pd endpoint answers HTTP but is not PD (its
	// /pd/api/v1/stores is missing or not PD's JSON).
	ExitNotPD = 14
	// ExitNotEvaluated: `operator check` could not evaluate some
	// invariants (PD reports no store, or an input an invariant needs is
	// missing) and found no violation among the others: not a pass.
	ExitNotEvaluated = 15
)

// ExitCode maps an error returned by a command to the process exit code.
// Only the top level (Main) calls it; commands return typed errors.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		flagErr    *cmdutil.FlagError
		actionErr  *action.ErrTransition
		ticketErr  *ticket.ErrTransition
		stateErr   *cmdutil.StateError
		unknownCmd = strings.HasPrefix(err.Error(), "unknown command") ||
			strings.HasPrefix(err.Error(), "unknown flag") ||
			strings.HasPrefix(err.Error(), "unknown shorthand flag")
	)
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Code {
		case api.CodeUnauthenticated, api.CodeForbidden:
			return ExitNotAllowed
		case api.CodeWrongCluster:
			return ExitWrongCluster
		case api.CodeNotFound:
			return ExitNotFound
		case api.CodeWrongState, api.CodeExpired, api.CodePolicy:
			return ExitWrongState
		case api.CodePDUnreachable:
			return ExitPDUnreachable
		case api.CodeBadRequest:
			return ExitUsage
		}
	}
	var pdErr *pd.APIError
	switch {
	case errors.Is(err, pd.ErrNotPD):
		return ExitNotPD
	case errors.As(err, &pdErr) && pdErr.Status == http.StatusServiceUnavailable:
		// PD answers 503 when it has no leader: no usable PD.
		return ExitPDUnreachable
	case errors.Is(err, cmdutil.ErrNotEvaluated):
		return ExitNotEvaluated
	case errors.Is(err, api.ErrDaemonUnreachable):
		return ExitDaemonUnreachable
	case errors.Is(err, store.ErrWrongCluster):
		return ExitWrongCluster
	case errors.As(err, &flagErr), unknownCmd:
		return ExitUsage
	case errors.Is(err, store.ErrNoDatabase):
		return ExitNoDatabase
	case errors.Is(err, store.ErrNotFound):
		return ExitNotFound
	case errors.As(err, &actionErr), errors.As(err, &ticketErr), errors.As(err, &stateErr),
		errors.Is(err, store.ErrExpired), errors.Is(err, executor.ErrPolicy):
		return ExitWrongState
	case errors.Is(err, pd.ErrUnreachable):
		return ExitPDUnreachable
	case errors.Is(err, cmdutil.ErrViolations):
		return ExitViolations
	case errors.Is(err, cmdutil.ErrVerifyFailed):
		return ExitVerifyFailed
	case errors.Is(err, cmdutil.ErrActionFailed):
		return ExitActionFailed
	case errors.Is(err, cmdutil.ErrPending):
		return ExitPendingOutcome
	}
	return ExitError
}
