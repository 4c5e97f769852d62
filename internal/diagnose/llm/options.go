package llm

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
)

// Common holds the options every model backend (anthropic, openai) shares.
// Backends embed it in their Options, so its fields read as opts.Budget,
// opts.MaxTurns, ... Zero values take the defaults (see Defaults).
type Common struct {
	// Budget caps the tokens (input+output, all turns) spent on one ticket;
	// DefaultBudget when 0. diagnose.Context.Budget lowers it per call.
	Budget int64
	// MaxTurns caps model requests per ticket when investigation tools are
	// offered (the last one forces submit_diagnosis); the backend's
	// DefaultMaxTurns when 0. Without tools there is exactly one turn.
	MaxTurns int
	// Investigator answers get_store, get_region and list_operators; nil
	// offers none of them.
	Investigator Investigator
	// Query answers query_prometheus; nil does not offer it.
	Query QueryFunc
	// Redact chooses what is hidden from the model besides region keys.
	Redact diagnose.RedactOptions
	// Retry bounds retries on 429, 5xx and network errors.
	Retry RetryPolicy
	// RequestTimeout bounds each HTTP request; the backend's
	// DefaultRequestTimeout when 0.
	RequestTimeout time.Duration
	// HTTPClient sends the requests; the SDK's default client when nil.
	HTTPClient *http.Client
	// Logger receives retries and tool calls; slog.Default() when nil.
	Logger *slog.Logger
}

// Defaults sets MaxTurns to maxTurns and RequestTimeout to requestTimeout
// when they are not positive, and returns the logger to use: Logger, or
// slog.Default() when nil (Logger itself is left as is).
func (c *Common) Defaults(maxTurns int, requestTimeout time.Duration) *slog.Logger {
	if c.MaxTurns <= 0 {
		c.MaxTurns = maxTurns
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = requestTimeout
	}
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}
