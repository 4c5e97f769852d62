package daemon

import (
	"log/slog"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/diagnose"
)

// newRules returns the offline runbook backend.
// TODO(integration): package diagnose/rules has not landed yet; until it
// does, "rules" falls back to Noop (every ticket: "a human must look").
func newRules(_ config.Config, log *slog.Logger) (diagnose.Backend, error) {
	log.Warn("the rules diagnosis backend is not available in this build; using noop (no proposals)")
	return diagnose.Noop{}, nil
}
