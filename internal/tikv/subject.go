package tikv

import (
	"context"
	"encoding/json"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/subject"
)

// Subject bundles what the operator needs of one TiKV cluster: its PD
// client, the optional Prometheus, and the action catalog. Interfaces over
// it belong to the packages that use it (monitor, executor); it implements
// the generic subject.Subject[*Snapshot].
type Subject struct {
	// PD is the cluster's PD HTTP client.
	PD *pd.Client
	// Prom is nil when no Prometheus URL was configured.
	Prom    *Prom
	catalog *action.Catalog
}

// NewSubject returns the TiKV subject over c; prom may be nil. opts
// configure the action catalog.
func NewSubject(c *pd.Client, prom *Prom, opts ...Option) *Subject {
	return &Subject{PD: c, Prom: prom, catalog: NewCatalog(c, opts...)}
}

// Collect reads a Snapshot (see the package-level Collect).
func (s *Subject) Collect(ctx context.Context) (*Snapshot, error) { return Collect(ctx, s.PD) }

// Catalog returns the remediation actions (see NewCatalog).
func (s *Subject) Catalog() *action.Catalog { return s.catalog }

// CaptureState records the state an action may change (see the
// package-level CaptureState).
func (s *Subject) CaptureState(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
	return CaptureState(ctx, s.PD, params)
}

// Subject is the TiKV implementation of the generic subject interface.
var _ subject.Subject[*Snapshot] = (*Subject)(nil)
