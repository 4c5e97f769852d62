// Package subject defines what the operator needs from a system it keeps
// healthy. The daemon, the monitor and the executor see a cluster only
// through a Subject; package tikv is the first implementation (TiKV over
// PD's HTTP API and, optionally, Prometheus).
package subject

import (
	"context"
	"encoding/json"

	"github.com/tikvops/operator/internal/action"
)

// Subject is a system under the operator's care. S is the subject's
// snapshot type (for TiKV, *tikv.Snapshot), the input of its invariants.
type Subject[S any] interface {
	// Collect reads the system's current state for one monitor cycle. It
	// returns an error only when the system cannot be read at all (for TiKV:
	// PD unreachable); partial failures are recorded inside the snapshot.
	Collect(ctx context.Context) (S, error)
	// Catalog returns every remediation action the subject supports.
	Catalog() *action.Catalog
	// CaptureState returns the state an action with these params touches,
	// as JSON, for the audit record's before/after snapshots.
	CaptureState(ctx context.Context, params json.RawMessage) (json.RawMessage, error)
}
