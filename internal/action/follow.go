package action

import (
	"context"
	"encoding/json"
)

// Follower is implemented by catalog actions whose effect is carried out
// by a PD operator: when Execute returned Running (the operator had not
// finished by the execution deadline), Follow keeps reading PD until the
// operator finishes — SUCCESS or the effect visible (Success), TIMEOUT,
// CANCEL or REPLACE (failed) — or ctx ends (Running again). It sends
// nothing. out is Execute's outcome; the result keeps its Requests.
type Follower interface {
	Follow(ctx context.Context, params json.RawMessage, out Outcome) (Outcome, error)
}
