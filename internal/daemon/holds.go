package daemon

import (
	"context"

	"github.com/tikvops/operator/internal/ticket"
)

// Holds reports whether t's invariant holds now for t's subject, from one
// fresh snapshot and without Reevaluate's settle window (the executor asks
// right before it sends an approved action: a violation that is gone means
// the approval no longer applies). Errors as Reevaluate's.
func (r *Reevaluator) Holds(ctx context.Context, t ticket.Ticket) (bool, error) {
	return r.once(ctx, t)
}
