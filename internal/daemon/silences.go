package daemon

import (
	"context"
	"time"

	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// silenceMatcher finds the silence (API) or configured maintenance window
// ([[maintenance]]) muting a ticket; the deliverer and the diagnosis
// runner share it.
func silenceMatcher(cfg config.Config, st *store.Store) *store.SilenceMatcher {
	return &store.SilenceMatcher{Store: st, Windows: api.MaintenanceSilences(cfg.Maintenance)}
}

// silenceNote adapts m to diagnose.Runner.Silenced.
func silenceNote(m *store.SilenceMatcher) func(ctx context.Context, t ticket.Ticket, now time.Time) (string, error) {
	return func(ctx context.Context, t ticket.Ticket, now time.Time) (string, error) {
		s, err := m.Match(ctx, t.Invariant, t.Subject, now)
		if s == nil || err != nil {
			return "", err
		}
		return s.Note(), nil
	}
}
