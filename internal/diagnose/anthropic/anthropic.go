// Package anthropic is the Claude diagnosis backend, built on Anthropic's
// official Go SDK (Messages API, POST /v1/messages).
//
// The diagnosis comes back as the input of a forced tool call
// (tool_choice {"type":"tool","name":"submit_diagnosis"}) whose JSON
// Schema is generated from the action catalog. When read-only
// investigation tools are configured, the model may call them for a
// bounded number of turns (tool_choice "any": it must call some tool); the
// last turn, or the turn after which the token budget would not allow
// another, forces submit_diagnosis. Cluster data is redacted first.
package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/llm"
)

// Defaults.
const (
	DefaultModel          = "claude-sonnet-4-5"
	DefaultMaxTokens      = 4096
	DefaultMaxTurns       = 6
	DefaultRequestTimeout = 2 * time.Minute
)

// Options configures the backend. Zero values take the defaults.
type Options struct {
	// Model is the Claude model id; DefaultModel when empty.
	Model string
	// MaxTokens caps each response (max_tokens); DefaultMaxTokens when 0.
	MaxTokens int64
	// APIKey authenticates (x-api-key); $ANTHROPIC_API_KEY when empty.
	APIKey string
	// BaseURL is the API root, e.g. "https://api.anthropic.com" (default)
	// or an httptest server's URL; requests go to BaseURL + "/v1/messages".
	BaseURL string
	// Common holds Budget, MaxTurns (DefaultMaxTurns when 0), Investigator,
	// Query, Redact, Retry, RequestTimeout (DefaultRequestTimeout when 0),
	// HTTPClient (http.DefaultClient's behaviour when nil) and Logger.
	llm.Common
}

// Backend is the Claude diagnosis backend. It is safe for concurrent use.
type Backend struct {
	opts   Options
	client sdk.Client
	log    *slog.Logger
}

var _ diagnose.Backend = (*Backend)(nil)

// New returns a backend for opts. It fails when no API key is configured
// (Options.APIKey or $ANTHROPIC_API_KEY). It ignores every other ANTHROPIC_*
// environment variable and profile file the SDK would read by default.
func New(opts Options) (*Backend, error) {
	if opts.Model == "" {
		opts.Model = DefaultModel
	}
	if opts.MaxTokens <= 0 {
		opts.MaxTokens = DefaultMaxTokens
	}
	log := opts.Defaults(DefaultMaxTurns, DefaultRequestTimeout)
	if opts.APIKey == "" {
		opts.APIKey = os.Getenv("ANTHROPIC_API_KEY")
	}
	if opts.APIKey == "" {
		return nil, errors.New("anthropic: no API key (set ANTHROPIC_API_KEY or diagnosis.anthropic.api-key)")
	}
	copts := []option.RequestOption{
		option.WithoutEnvironmentDefaults(),
		option.WithAPIKey(opts.APIKey),
		option.WithMaxRetries(0), // retries are ours: bounded, logged, testable
	}
	if opts.BaseURL != "" {
		copts = append(copts, option.WithBaseURL(opts.BaseURL))
	}
	if opts.HTTPClient != nil {
		copts = append(copts, option.WithHTTPClient(opts.HTTPClient))
	}
	b := &Backend{opts: opts, client: sdk.NewClient(copts...)}
	b.log = log.With("component", "diagnose", "backend", b.Name())
	return b, nil
}

// Name returns "anthropic:" + the model.
func (b *Backend) Name() string { return "anthropic:" + b.opts.Model }

// Diagnose asks Claude for a diagnosis of c.Ticket. The result is untrusted
// until diagnose.Validate. Errors wrap diagnose.ErrUnavailable (network,
// 429 or 5xx after the retries, other API errors), diagnose.ErrBudget or
// diagnose.ErrInvalidOutput, and carry the tokens spent (diagnose.Spent).
func (b *Backend) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	if c == nil {
		return nil, errors.New("anthropic: nil context")
	}
	red := diagnose.NewRedactor(b.opts.Redact)
	rc := red.Context(c)
	prompt, err := llm.UserPrompt(rc)
	if err != nil {
		return nil, err
	}
	tools := &llm.Tools{Investigator: b.opts.Investigator, Query: b.opts.Query, Redactor: red}
	toolParams := []sdk.ToolUnionParam{toolParam(llm.SubmitToolName, llm.SubmitToolDescription, llm.SubmitSchema(rc.Actions))}
	for _, d := range tools.Defs() {
		toolParams = append(toolParams, toolParam(d.Name, d.Description, d.Schema))
	}
	maxTurns := 1
	if tools.Enabled() {
		maxTurns = b.opts.MaxTurns
	}
	budget := llm.NewBudget(b.opts.Budget, c)
	log := b.log.With("ticket", c.Ticket.ID)

	messages := []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock(prompt))}
	var prevIn, prevBytes int64
	for turn := 0; turn < maxTurns; turn++ {
		params := sdk.MessageNewParams{
			Model:     sdk.Model(b.opts.Model),
			MaxTokens: b.opts.MaxTokens,
			System:    []sdk.TextBlockParam{{Text: llm.SystemPrompt}},
			Messages:  messages,
			Tools:     toolParams,
		}
		body, err := json.Marshal(params)
		if err != nil {
			return nil, fmt.Errorf("anthropic: encode request: %w", err)
		}
		curBytes := int64(len(body))
		maxTok, last, err := budget.Plan(llm.EstimateInput(prevIn, prevBytes, curBytes), b.opts.MaxTokens)
		if err != nil {
			return nil, diagnose.WithSpent(fmt.Errorf("anthropic: %w", err), budget.Used)
		}
		params.MaxTokens = maxTok
		force := last || turn == maxTurns-1
		if force {
			choice := sdk.ToolChoiceParamOfTool(llm.SubmitToolName)
			choice.OfTool.DisableParallelToolUse = sdk.Bool(true)
			params.ToolChoice = choice
		} else {
			params.ToolChoice = sdk.ToolChoiceUnionParam{OfAny: &sdk.ToolChoiceAnyParam{}}
		}

		msg, attempts, err := llm.Retry(ctx, b.opts.Retry, log, func(ctx context.Context) (*sdk.Message, error) {
			rctx, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
			defer cancel()
			return b.client.Messages.New(rctx, params)
		}, classify)
		if err != nil {
			return nil, diagnose.WithSpent(fmt.Errorf("%w: anthropic: %d attempt(s): %w", diagnose.ErrUnavailable, attempts, err), budget.Used)
		}
		budget.Add(usage(msg.Usage))
		prevIn, prevBytes = msg.Usage.InputTokens+msg.Usage.CacheCreationInputTokens+msg.Usage.CacheReadInputTokens, curBytes

		var toolUses []sdk.ContentBlockUnion
		for _, blk := range msg.Content {
			if blk.Type != "tool_use" {
				continue
			}
			if blk.Name == llm.SubmitToolName {
				d, err := llm.ParseSubmission(blk.Input)
				if err != nil {
					return nil, diagnose.WithSpent(fmt.Errorf("anthropic: %w", err), budget.Used)
				}
				d.Backend = b.Name()
				d.Usage = budget.Used
				log.Info("diagnosed", "turns", turn+1, "input_tokens", d.Usage.InputTokens, "output_tokens", d.Usage.OutputTokens)
				return d, nil
			}
			toolUses = append(toolUses, blk)
		}
		switch msg.StopReason {
		case sdk.StopReasonMaxTokens:
			err := fmt.Errorf("%w: anthropic: response cut off at max_tokens=%d", diagnose.ErrInvalidOutput, maxTok)
			if maxTok < b.opts.MaxTokens {
				err = fmt.Errorf("%w: anthropic: response cut off at max_tokens=%d, all the budget left", diagnose.ErrBudget, maxTok)
			}
			return nil, diagnose.WithSpent(err, budget.Used)
		case sdk.StopReasonRefusal:
			return nil, diagnose.WithSpent(fmt.Errorf("%w: anthropic: the model refused", diagnose.ErrInvalidOutput), budget.Used)
		}
		if force {
			return nil, diagnose.WithSpent(fmt.Errorf("%w: anthropic: the model did not call %s (stop_reason %q)",
				diagnose.ErrInvalidOutput, llm.SubmitToolName, msg.StopReason), budget.Used)
		}

		// An investigation turn: answer every tool call, then go on.
		messages = append(messages, msg.ToParam())
		var results []sdk.ContentBlockParamUnion
		for _, tu := range toolUses {
			out, err := tools.Call(ctx, tu.Name, tu.Input)
			if err != nil {
				log.Info("investigation tool failed", "tool", tu.Name, "err", err)
				results = append(results, sdk.NewToolResultBlock(tu.ID, err.Error(), true))
				continue
			}
			log.Debug("investigation tool", "tool", tu.Name, "bytes", len(out))
			results = append(results, sdk.NewToolResultBlock(tu.ID, out, false))
		}
		if len(results) == 0 {
			results = append(results, sdk.NewTextBlock("Call "+llm.SubmitToolName+" now."))
		}
		messages = append(messages, sdk.NewUserMessage(results...))
	}
	// Unreachable: the last turn forces submit_diagnosis and returns.
	return nil, diagnose.WithSpent(fmt.Errorf("%w: anthropic: no diagnosis after %d turns", diagnose.ErrInvalidOutput, maxTurns), budget.Used)
}

func usage(u sdk.Usage) diagnose.Usage {
	return diagnose.Usage{
		InputTokens:  u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens,
		OutputTokens: u.OutputTokens,
	}
}

func classify(err error) llm.Verdict {
	var apiErr *sdk.Error
	if errors.As(err, &apiErr) {
		var h http.Header
		if apiErr.Response != nil {
			h = apiErr.Response.Header
		}
		return llm.Classify(apiErr.StatusCode, h, err)
	}
	return llm.Classify(0, nil, err)
}

// toolParam converts a JSON Schema object into the SDK's tool definition.
func toolParam(name, desc string, schema map[string]any) sdk.ToolUnionParam {
	in := sdk.ToolInputSchemaParam{ExtraFields: map[string]any{}}
	for k, v := range schema {
		switch k {
		case "type":
		case "properties":
			in.Properties = v
		case "required":
			if r, ok := v.([]string); ok {
				in.Required = r
			}
		default:
			in.ExtraFields[k] = v
		}
	}
	return sdk.ToolUnionParam{OfTool: &sdk.ToolParam{
		Name:        name,
		Description: sdk.String(desc),
		InputSchema: in,
	}}
}
