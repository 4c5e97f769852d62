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

// Diagnose asks Claude for a diagnosis of c.Ticket through the shared
// agent loop (llm.Agent). The result is untrusted until diagnose.Validate.
// Errors wrap diagnose.ErrUnavailable (network, 429 or 5xx after the
// retries, other API errors), diagnose.ErrBudget or
// diagnose.ErrInvalidOutput, and carry the tokens spent (diagnose.Spent).
func (b *Backend) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	a := &llm.Agent{Provider: provider{b}, Name: b.Name(), MaxTokens: b.opts.MaxTokens, Common: b.opts.Common, Log: b.log}
	return a.Diagnose(ctx, c)
}

// provider adapts the Messages API (POST /v1/messages) to llm.Agent.
type provider struct{ b *Backend }

func (provider) Label() string { return "anthropic" }

func (provider) Classify(err error) llm.Verdict { return classify(err) }

func (p provider) Start(system, user string, tools []llm.ToolDef) llm.Conversation {
	params := make([]sdk.ToolUnionParam, 0, len(tools))
	for _, d := range tools {
		params = append(params, toolParam(d.Name, d.Description, d.Schema))
	}
	return &conversation{b: p.b, system: system, tools: params,
		messages: []sdk.MessageParam{sdk.NewUserMessage(sdk.NewTextBlock(user))}}
}

// conversation is one diagnosis' Messages API history.
type conversation struct {
	b        *Backend
	system   string
	tools    []sdk.ToolUnionParam
	messages []sdk.MessageParam
}

// params is the next request: tool_choice forces submit_diagnosis
// (parallel tool use off) when force, else "any" (some tool call).
func (c *conversation) params(maxTokens int64, force bool) sdk.MessageNewParams {
	params := sdk.MessageNewParams{
		Model:     sdk.Model(c.b.opts.Model),
		MaxTokens: maxTokens,
		System:    []sdk.TextBlockParam{{Text: c.system}},
		Messages:  c.messages,
		Tools:     c.tools,
	}
	if force {
		choice := sdk.ToolChoiceParamOfTool(llm.SubmitToolName)
		choice.OfTool.DisableParallelToolUse = sdk.Bool(true)
		params.ToolChoice = choice
	} else {
		params.ToolChoice = sdk.ToolChoiceUnionParam{OfAny: &sdk.ToolChoiceAnyParam{}}
	}
	return params
}

func (c *conversation) RequestBytes(maxTokens int64, force bool) (int64, error) {
	body, err := json.Marshal(c.params(maxTokens, force))
	return int64(len(body)), err
}

func (c *conversation) Send(ctx context.Context, maxTokens int64, force bool) (*llm.Turn, error) {
	msg, err := c.b.client.Messages.New(ctx, c.params(maxTokens, force))
	if err != nil {
		return nil, err
	}
	t := &llm.Turn{Usage: usage(msg.Usage), Raw: msg, Detail: fmt.Sprintf("stop_reason %q", msg.StopReason),
		PromptTokens: msg.Usage.InputTokens + msg.Usage.CacheCreationInputTokens + msg.Usage.CacheReadInputTokens}
	for _, blk := range msg.Content {
		if blk.Type != "tool_use" {
			continue
		}
		if blk.Name == llm.SubmitToolName {
			t.Submit = append([]byte(nil), blk.Input...)
			return t, nil
		}
		t.Calls = append(t.Calls, llm.ToolCall{ID: blk.ID, Name: blk.Name, Input: blk.Input})
	}
	switch msg.StopReason {
	case sdk.StopReasonMaxTokens:
		t.Stop = llm.StopMaxTokens
	case sdk.StopReasonRefusal:
		t.Stop, t.Detail = llm.StopRefusal, "stop_reason refusal"
	}
	return t, nil
}

func (c *conversation) Continue(t *llm.Turn, results []llm.ToolResult) {
	if msg, ok := t.Raw.(*sdk.Message); ok {
		c.messages = append(c.messages, msg.ToParam())
	}
	blocks := make([]sdk.ContentBlockParamUnion, 0, len(results))
	for _, r := range results {
		blocks = append(blocks, sdk.NewToolResultBlock(r.Call.ID, r.Content, r.IsError))
	}
	if len(blocks) == 0 {
		blocks = append(blocks, sdk.NewTextBlock("Call "+llm.SubmitToolName+" now."))
	}
	c.messages = append(c.messages, sdk.NewUserMessage(blocks...))
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
