package daemon

import (
	"log/slog"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/rules"
)

// newRules returns the offline runbook backend, with the slow-store
// threshold of the invariants so that a runbook and its invariant agree.
func newRules(cfg config.Config, _ *slog.Logger) (diagnose.Backend, error) {
	return rules.New(rules.Options{SlowScore: cfg.Invariants.SlowScore}), nil
}
