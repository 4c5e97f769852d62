// Package action holds what every remediation action shares, whatever the
// subject: its catalog entry (Spec), the result of a dry run, the exact
// HTTP requests an execution sends, the proposal lifecycle and the
// immutable execution record.
//
// The TiKV subject (package tikv) implements Action for each PD call; the
// executor (package executor) runs approved proposals through it.
package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Risk is how much harm a wrong execution of an action can do.
type Risk string

// Risk levels, lowest first.
const (
	RiskLow    Risk = "low"    // a wrong call costs some scheduling work, nothing more
	RiskMedium Risk = "medium" // moves data or changes cluster-wide scheduling
	RiskHigh   Risk = "high"   // can reduce redundancy or is hard to undo
)

// ParamType is the JSON type of an action parameter.
type ParamType string

// Parameter types; they map one to one onto JSON Schema types.
const (
	ParamInteger ParamType = "integer"
	ParamNumber  ParamType = "number"
	ParamString  ParamType = "string"
	// ParamStringList is a JSON array of strings.
	ParamStringList ParamType = "string_list"
)

// Param describes one parameter of an action.
type Param struct {
	Name        string    `json:"name"`
	Type        ParamType `json:"type"`
	Required    bool      `json:"required"`
	Description string    `json:"description"`
	// Enum, when not empty, lists the only values a string accepts.
	Enum []string `json:"enum,omitempty"`
	// Min and Max bound integers and numbers when not nil (inclusive).
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// Spec is an action's catalog entry: what it does, what it takes, how risky
// it is and how to undo it.
type Spec struct {
	// Name is the action type, snake_case, e.g. "transfer_leader".
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Params      []Param `json:"params"`
	Risk        Risk    `json:"risk"`
	// Reversible tells whether another catalog action undoes this one.
	Reversible bool `json:"reversible"`
	// Rollback says how to undo it, in words (e.g. "cancel_drain while the
	// store is still Offline; irreversible once Tombstone").
	Rollback string `json:"rollback"`
	// Targets names the params that identify the region or store the action
	// touches ("region_id", "store_id", ...), used to serialise executions.
	Targets []string `json:"targets,omitempty"`
	// Capacity marks an action that reduces where replicas or leaders can
	// live (drain a store, evict leaders, remove a peer, lower a limit
	// that stops repair). The executor runs such actions one at a time
	// per cluster, and each re-checks its preconditions on PD after the
	// previous one's effect, so two of them approved together can never
	// both go out when together they would break max-replicas.
	Capacity bool `json:"capacity,omitempty"`
	// Settle is how long PD's own schedulers may take to show the action's
	// effect on the ticket's invariant after a completed execution (zero:
	// it shows at once). Resuming balance-leader-scheduler fixes nothing
	// by itself: PD then moves leaders a few at a time (its
	// leader-schedule-limit, 4 per store by default, per scheduling round).
	// A re-check that still sees the violation within Settle does not
	// reopen the ticket for a new diagnosis, which would propose work PD is
	// about to do; it looks again once Settle has passed.
	Settle time.Duration `json:"settle,omitempty"`
}

// Request is one HTTP request an execution sends to PD, exactly as sent.
type Request struct {
	Method string `json:"method"`
	// Path includes the query string, e.g. "/pd/api/v1/store/4/state?state=Up".
	Path string `json:"path"`
	// Body is the JSON body, or nil for none.
	Body json.RawMessage `json:"body,omitempty"`
}

// String renders the request as "METHOD PATH BODY".
func (r Request) String() string {
	if len(r.Body) == 0 {
		return r.Method + " " + r.Path
	}
	return r.Method + " " + r.Path + " " + string(r.Body)
}

// Check is one precondition evaluated against live cluster state.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// DryRunResult is what a dry run found: whether the action may run now, the
// preconditions it checked, warnings that do not block it, and the exact
// requests an execution would send. A dry run never changes the cluster.
type DryRunResult struct {
	Valid         bool      `json:"valid"`
	Message       string    `json:"message"`
	Preconditions []Check   `json:"preconditions"`
	Warnings      []string  `json:"warnings,omitempty"`
	Requests      []Request `json:"requests"`
}

// Outcome is what an execution did and whether its effect was verified.
type Outcome struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
	// Requests are the requests actually sent, in order.
	Requests []Request `json:"requests"`
	// Previous holds values replaced by the action (e.g. the old
	// leader-schedule-limit), so that it can be rolled back.
	Previous map[string]any `json:"previous,omitempty"`
	// Observed holds what verification saw, e.g. {"operator_status":
	// "SUCCESS", "leader_store_id": 5}, for the audit trail.
	Observed map[string]any `json:"observed,omitempty"`
	// Running: the effect was not visible by the deadline but PD's
	// operator was still running (not failed): the outcome is not decided
	// yet (see Follower).
	Running bool `json:"running,omitempty"`
}

// Action is one entry of a subject's catalog.
type Action interface {
	// Spec returns the catalog entry.
	Spec() Spec
	// DryRun validates params and checks preconditions against live state.
	// It returns an error only when the check itself could not be made
	// (e.g. PD unreachable); a failed precondition is Valid=false.
	DryRun(ctx context.Context, params json.RawMessage) (DryRunResult, error)
	// Execute re-checks preconditions, sends the requests, and waits (up to
	// a deadline taken from ctx or the action's own) for the effect. A
	// failed precondition or unverified effect is Success=false with a
	// message; error is reserved for failures whose effect is unknown.
	Execute(ctx context.Context, params json.RawMessage) (Outcome, error)
}

// ErrUnknownAction is returned by Catalog.Lookup for an action type the
// catalog does not hold.
var ErrUnknownAction = errors.New("unknown action type")

// Catalog is a set of actions keyed by name.
type Catalog struct {
	byName map[string]Action
}

// NewCatalog builds a catalog; a duplicate name panics (programming error,
// never input).
func NewCatalog(actions ...Action) *Catalog {
	c := &Catalog{byName: make(map[string]Action, len(actions))}
	for _, a := range actions {
		name := a.Spec().Name
		if _, dup := c.byName[name]; dup {
			panic("action: duplicate action " + name)
		}
		c.byName[name] = a
	}
	return c
}

// Lookup returns the action named name, or an error wrapping
// ErrUnknownAction.
func (c *Catalog) Lookup(name string) (Action, error) {
	a, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownAction, name)
	}
	return a, nil
}

// Specs returns every entry, sorted by name.
func (c *Catalog) Specs() []Spec {
	specs := make([]Spec, 0, len(c.byName))
	for _, a := range c.byName {
		specs = append(specs, a.Spec())
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs
}
