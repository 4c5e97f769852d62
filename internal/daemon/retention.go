package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/store"
)

// retentionFirstDelay is how long after start the first prune waits: the
// monitor's first cycles go first.
const retentionFirstDelay = time.Minute

// runRetention prunes resolved history older than [retention]
// resolved-tickets every [retention] interval (store.Prune: small
// batches, never the audit trail), off the monitor's path. A failed prune
// is logged and retried at the next interval; it never stops the daemon.
// Disabled (returns at once) when resolved-tickets is 0.
func runRetention(ctx context.Context, r config.Retention, st *store.Store, log *slog.Logger) error {
	keep := r.ResolvedTickets.Duration
	if keep <= 0 || r.Interval.Duration <= 0 {
		log.Info("retention disabled: resolved history is kept forever")
		return nil
	}
	log = log.With("component", "retention", "keep", keep)
	wait := min(retentionFirstDelay, r.Interval.Duration)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = r.Interval.Duration
		start := time.Now()
		rep, err := st.Prune(ctx, start.Add(-keep))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("prune resolved history", "err", err, "pruned", rep)
			continue
		}
		if rep.Tickets+rep.Proposals+rep.Diagnoses+rep.OutboxEvents > 0 {
			log.Info("pruned resolved history", "tickets", rep.Tickets, "proposals", rep.Proposals,
				"diagnoses", rep.Diagnoses, "outbox_events", rep.OutboxEvents, "batches", rep.Batches,
				"took", time.Since(start).Round(time.Millisecond))
		}
	}
}
