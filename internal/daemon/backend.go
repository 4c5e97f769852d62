package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/anthropic"
	"github.com/tikvops/operator/internal/diagnose/llm"
	"github.com/tikvops/operator/internal/diagnose/openai"
	"github.com/tikvops/operator/internal/diagnose/rules"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// NewBackend returns the diagnosis backend [diagnosis] backend names:
// "rules" (default, offline), "anthropic" (needs an API key: [diagnosis.
// anthropic] api-key or $ANTHROPIC_API_KEY), "openai" (any OpenAI-compatible
// endpoint: base-url and api-key, or $OPENAI_BASE_URL and $OPENAI_API_KEY)
// or "noop". The model backends get PD's read-only investigation tools and,
// with a Prometheus URL, a PromQL query tool.
func NewBackend(cfg config.Config, pdc *pd.Client, prom *tikv.Prom, getenv func(string) string, log *slog.Logger) (diagnose.Backend, error) {
	dc := cfg.Diagnosis
	redact := diagnose.RedactOptions{RedactAddresses: dc.RedactAddresses, RedactLabels: dc.RedactLabels}
	var query llm.QueryFunc
	if prom != nil {
		query = promQuery(prom)
	}
	switch dc.Backend {
	case "", "rules":
		return newRules(cfg, log)
	case "noop":
		return diagnose.Noop{}, nil
	case "anthropic":
		key := dc.Anthropic.APIKey
		if key == "" {
			key = getenv("ANTHROPIC_API_KEY")
		}
		if key == "" {
			return nil, fmt.Errorf("diagnosis backend anthropic needs an API key: set ANTHROPIC_API_KEY or [diagnosis.anthropic] api-key")
		}
		b, err := anthropic.New(anthropic.Options{
			Model: dc.Anthropic.Model, MaxTokens: dc.Anthropic.MaxTokens, APIKey: key, BaseURL: dc.Anthropic.BaseURL,
			Common: llm.Common{
				Budget: dc.TokenBudget, MaxTurns: dc.MaxTurns, Investigator: pdc, Query: query, Redact: redact, Logger: log,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("diagnosis backend anthropic: %w", err)
		}
		return b, nil
	case "openai":
		base := dc.OpenAI.BaseURL
		if base == "" {
			base = getenv("OPENAI_BASE_URL")
		}
		key := dc.OpenAI.APIKey
		if key == "" {
			key = getenv("OPENAI_API_KEY")
		}
		b, err := openai.New(openai.Options{
			Model: dc.OpenAI.Model, BaseURL: base, APIKey: key, MaxTokens: dc.OpenAI.MaxTokens,
			Common: llm.Common{
				Budget: dc.TokenBudget, MaxTurns: dc.MaxTurns, Investigator: pdc, Query: query, Redact: redact, Logger: log,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("diagnosis backend openai: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("unknown diagnosis backend %q (want rules, anthropic, openai or noop)", dc.Backend)
}

// Fallback returns the backend the runner falls back on when the model
// cannot diagnose a ticket (unavailable, token budget spent, invalid
// output): the offline rules for a model backend, nil for the rules and
// noop backends themselves. Its diagnoses are labelled (Diagnosis.
// FallbackFrom).
func Fallback(cfg config.Config, log *slog.Logger) diagnose.Backend {
	switch cfg.Diagnosis.Backend {
	case "anthropic", "openai":
		b, err := newRules(cfg, log)
		if err != nil {
			return nil
		}
		return b
	}
	return nil
}

// Allowed is the per-invariant-family allow-list every proposal is
// validated against, whichever backend made it (rules.Allowed).
func Allowed() diagnose.AllowList { return rules.Allowed }

// promQuery renders an instant query as one "metric{labels} value" line per
// series, the text the model tools expect.
func promQuery(p *tikv.Prom) llm.QueryFunc {
	return func(ctx context.Context, q string) (string, error) {
		v, err := p.Query(ctx, q, time.Now())
		if err != nil {
			return "", err
		}
		switch val := v.(type) {
		case model.Vector:
			var b strings.Builder
			for _, s := range val {
				fmt.Fprintf(&b, "%s %s\n", s.Metric, s.Value)
			}
			return b.String(), nil
		default:
			return v.String(), nil
		}
	}
}
