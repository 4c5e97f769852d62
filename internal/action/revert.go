package action

import (
	"context"
	"encoding/json"
	"time"
)

// Revert is the scheduled undo of a temporary change: an action executed
// with a duration param records one (or a few) of these, and the executor
// carries each out After the execution completed — without a new approval
// only while PD still shows Expect (the value the action set), so that
// restoring Restore (the recorded previous value) changes nothing else.
type Revert struct {
	// ActionType and Params are the catalog action that restores the
	// previous value (e.g. remove_evict_leader {"store_id": 4}).
	ActionType string          `json:"action_type"`
	Params     json.RawMessage `json:"params"`
	// After is the duration the change lasts, from the completion.
	After time.Duration `json:"after"`
	// Expect is what the revert action's RevertState reads while the
	// change is in place; Restore what it reads once reverted.
	Expect  json.RawMessage `json:"expect"`
	Restore json.RawMessage `json:"restore"`
}

// Temporary is implemented by catalog actions that can be made temporary
// (a duration param).
type Temporary interface {
	// Reverts returns the reverts an execution with params that ended with
	// out needs: none when params carry no duration, or when out.Previous
	// does not say what to restore (then nothing is scheduled and the
	// error says why).
	Reverts(params json.RawMessage, out Outcome) ([]Revert, error)
}

// RevertTarget is implemented by catalog actions that serve as a revert:
// RevertState reads from PD the value an execution with params restores,
// in the shape of Revert.Expect and Revert.Restore.
type RevertTarget interface {
	RevertState(ctx context.Context, params json.RawMessage) (json.RawMessage, error)
}
