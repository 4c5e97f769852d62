// Package openai is the diagnosis backend for any OpenAI-compatible chat
// completions endpoint (OpenAI, vLLM, Ollama, LM Studio, ...), built on
// OpenAI's official Go SDK (POST {base}/chat/completions).
//
// The diagnosis comes back as the arguments of a forced function call
// (tool_choice {"type":"function","function":{"name":"submit_diagnosis"}})
// whose JSON Schema is generated from the action catalog. When read-only
// investigation tools are configured, the model may call them for a
// bounded number of turns (tool_choice "required"); the last turn forces
// submit_diagnosis. Servers that ignore tool_choice and answer with the
// JSON object as message content are accepted too, through the same
// parsing. Cluster data is redacted first.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/llm"
)

// Defaults.
const (
	DefaultModel          = "gpt-4o-mini"
	DefaultMaxTokens      = 4096
	DefaultMaxTurns       = 6
	DefaultRequestTimeout = 2 * time.Minute
)

// Options configures the backend. Zero values take the defaults.
type Options struct {
	// Model is the model name the server knows; DefaultModel when empty.
	Model string
	// BaseURL is the API root including /v1, e.g.
	// "http://127.0.0.1:8000/v1" (vLLM), "http://127.0.0.1:11434/v1"
	// (Ollama); $OPENAI_BASE_URL, then https://api.openai.com/v1, when empty.
	BaseURL string
	// APIKey is sent as a bearer token; $OPENAI_API_KEY when empty; none
	// when both are empty (self-hosted servers).
	APIKey string
	// MaxTokens caps each response; DefaultMaxTokens when 0.
	MaxTokens int64
	// LegacyMaxTokens sends max_tokens instead of max_completion_tokens, for
	// servers that only know the older field.
	LegacyMaxTokens bool
	// Common holds Budget (tokens are prompt+completion), MaxTurns
	// (DefaultMaxTurns when 0), Investigator, Query, Redact, Retry,
	// RequestTimeout (DefaultRequestTimeout when 0), HTTPClient (the SDK's
	// default when nil) and Logger.
	llm.Common
}

// Backend is the OpenAI-compatible diagnosis backend. It is safe for
// concurrent use.
type Backend struct {
	opts   Options
	client sdk.Client
	log    *slog.Logger
}

var _ diagnose.Backend = (*Backend)(nil)

// New returns a backend for opts. The SDK also reads OPENAI_ORG_ID and
// OPENAI_PROJECT_ID from the environment when set.
func New(opts Options) (*Backend, error) {
	if opts.Model == "" {
		opts.Model = DefaultModel
	}
	if opts.MaxTokens <= 0 {
		opts.MaxTokens = DefaultMaxTokens
	}
	log := opts.Defaults(DefaultMaxTurns, DefaultRequestTimeout)
	if opts.BaseURL == "" {
		opts.BaseURL = os.Getenv("OPENAI_BASE_URL")
	}
	if opts.APIKey == "" {
		opts.APIKey = os.Getenv("OPENAI_API_KEY")
	}
	copts := []option.RequestOption{
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

// Name returns "openai:" + the model.
func (b *Backend) Name() string { return "openai:" + b.opts.Model }

// Diagnose asks the model for a diagnosis of c.Ticket. The result is
// untrusted until diagnose.Validate. Errors wrap diagnose.ErrUnavailable
// (network, 429 or 5xx after the retries, other API errors),
// diagnose.ErrBudget or diagnose.ErrInvalidOutput, and carry the tokens
// spent (diagnose.Spent).
func (b *Backend) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	if c == nil {
		return nil, errors.New("openai: nil context")
	}
	red := diagnose.NewRedactor(b.opts.Redact)
	rc := red.Context(c)
	prompt, err := llm.UserPrompt(rc)
	if err != nil {
		return nil, err
	}
	tools := &llm.Tools{Investigator: b.opts.Investigator, Query: b.opts.Query, Redactor: red}
	toolParams := []sdk.ChatCompletionToolUnionParam{toolParam(llm.SubmitToolName, llm.SubmitToolDescription, llm.SubmitSchema(rc.Actions))}
	for _, d := range tools.Defs() {
		toolParams = append(toolParams, toolParam(d.Name, d.Description, d.Schema))
	}
	maxTurns := 1
	if tools.Enabled() {
		maxTurns = b.opts.MaxTurns
	}
	budget := llm.NewBudget(b.opts.Budget, c)
	log := b.log.With("ticket", c.Ticket.ID)

	messages := []sdk.ChatCompletionMessageParamUnion{
		sdk.SystemMessage(llm.SystemPrompt),
		sdk.UserMessage(prompt),
	}
	var prevIn, prevBytes int64
	for turn := 0; turn < maxTurns; turn++ {
		params := sdk.ChatCompletionNewParams{
			Model:    shared.ChatModel(b.opts.Model),
			Messages: messages,
			Tools:    toolParams,
		}
		body, err := json.Marshal(params)
		if err != nil {
			return nil, fmt.Errorf("openai: encode request: %w", err)
		}
		curBytes := int64(len(body))
		maxTok, last, err := budget.Plan(llm.EstimateInput(prevIn, prevBytes, curBytes), b.opts.MaxTokens)
		if err != nil {
			return nil, diagnose.WithSpent(fmt.Errorf("openai: %w", err), budget.Used)
		}
		if b.opts.LegacyMaxTokens {
			params.MaxTokens = sdk.Int(maxTok)
		} else {
			params.MaxCompletionTokens = sdk.Int(maxTok)
		}
		force := last || turn == maxTurns-1
		if force {
			params.ToolChoice = sdk.ToolChoiceOptionFunctionToolChoice(sdk.ChatCompletionNamedToolChoiceFunctionParam{Name: llm.SubmitToolName})
		} else {
			params.ToolChoice = sdk.ChatCompletionToolChoiceOptionUnionParam{OfAuto: sdk.String("required")}
		}

		resp, attempts, err := llm.Retry(ctx, b.opts.Retry, log, func(ctx context.Context) (*sdk.ChatCompletion, error) {
			rctx, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
			defer cancel()
			return b.client.Chat.Completions.New(rctx, params)
		}, classify)
		if err != nil {
			return nil, diagnose.WithSpent(fmt.Errorf("%w: openai: %d attempt(s): %w", diagnose.ErrUnavailable, attempts, err), budget.Used)
		}
		budget.Add(usage(resp, curBytes))
		prevIn, prevBytes = resp.Usage.PromptTokens, curBytes
		if len(resp.Choices) == 0 {
			return nil, diagnose.WithSpent(fmt.Errorf("%w: openai: response has no choices", diagnose.ErrInvalidOutput), budget.Used)
		}
		choice := resp.Choices[0]
		msg := choice.Message

		var calls []sdk.ChatCompletionMessageToolCallUnion
		for _, tc := range msg.ToolCalls {
			if tc.Type != "" && tc.Type != "function" {
				continue
			}
			if tc.Function.Name == llm.SubmitToolName {
				return b.finish(log, turn, budget, []byte(tc.Function.Arguments))
			}
			calls = append(calls, tc)
		}
		if len(msg.ToolCalls) == 0 {
			if obj := jsonObjectIn(msg.Content); obj != nil {
				// A server that ignored tool_choice and wrote the object.
				return b.finish(log, turn, budget, obj)
			}
		}
		switch {
		case choice.FinishReason == "length":
			err := fmt.Errorf("%w: openai: response cut off at %d tokens", diagnose.ErrInvalidOutput, maxTok)
			if maxTok < b.opts.MaxTokens {
				err = fmt.Errorf("%w: openai: response cut off at %d tokens, all the budget left", diagnose.ErrBudget, maxTok)
			}
			return nil, diagnose.WithSpent(err, budget.Used)
		case choice.FinishReason == "content_filter" || msg.Refusal != "":
			return nil, diagnose.WithSpent(fmt.Errorf("%w: openai: the model refused (%s)", diagnose.ErrInvalidOutput, clip(msg.Refusal)), budget.Used)
		case force:
			return nil, diagnose.WithSpent(fmt.Errorf("%w: openai: the model did not call %s (finish_reason %q)",
				diagnose.ErrInvalidOutput, llm.SubmitToolName, choice.FinishReason), budget.Used)
		}

		// An investigation turn: answer every tool call, then go on.
		messages = append(messages, msg.ToParam())
		for _, tc := range calls {
			out, err := tools.Call(ctx, tc.Function.Name, json.RawMessage(tc.Function.Arguments))
			if err != nil {
				log.Info("investigation tool failed", "tool", tc.Function.Name, "err", err)
				out = "error: " + err.Error()
			}
			messages = append(messages, sdk.ToolMessage(out, tc.ID))
		}
		if len(calls) == 0 {
			messages = append(messages, sdk.UserMessage("Call "+llm.SubmitToolName+" now."))
		}
	}
	// Unreachable: the last turn forces submit_diagnosis and returns.
	return nil, diagnose.WithSpent(fmt.Errorf("%w: openai: no diagnosis after %d turns", diagnose.ErrInvalidOutput, maxTurns), budget.Used)
}

func (b *Backend) finish(log *slog.Logger, turn int, budget *llm.Budget, input []byte) (*diagnose.Diagnosis, error) {
	d, err := llm.ParseSubmission(input)
	if err != nil {
		return nil, diagnose.WithSpent(fmt.Errorf("openai: %w", err), budget.Used)
	}
	d.Backend = b.Name()
	d.Usage = budget.Used
	log.Info("diagnosed", "turns", turn+1, "input_tokens", d.Usage.InputTokens, "output_tokens", d.Usage.OutputTokens)
	return d, nil
}

// usage returns the response's token usage; servers that report none
// (some self-hosted ones) are charged an estimate of about 4 bytes per
// token so that the budget still holds.
func usage(resp *sdk.ChatCompletion, reqBytes int64) diagnose.Usage {
	u := diagnose.Usage{InputTokens: resp.Usage.PromptTokens, OutputTokens: resp.Usage.CompletionTokens}
	if u.Total() > 0 {
		return u
	}
	var out int
	for _, ch := range resp.Choices {
		out += len(ch.Message.Content)
		for _, tc := range ch.Message.ToolCalls {
			out += len(tc.Function.Arguments) + len(tc.Function.Name)
		}
	}
	return diagnose.Usage{InputTokens: reqBytes / 4, OutputTokens: int64(out)/4 + 1}
}

// jsonObjectIn returns the JSON object a message content holds, bare or in
// a ``` fence, or nil.
func jsonObjectIn(content string) []byte {
	s := strings.TrimSpace(content)
	if s == "" {
		return nil
	}
	if strings.HasPrefix(s, "```") {
		s = strings.TrimPrefix(s, "```json")
		s = strings.TrimPrefix(s, "```")
		s = strings.TrimSuffix(strings.TrimSpace(s), "```")
		s = strings.TrimSpace(s)
	}
	b := []byte(s)
	if len(b) == 0 || b[0] != '{' || !json.Valid(b) {
		return nil
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(b, &probe) != nil {
		return nil
	}
	if _, ok := probe["summary"]; !ok {
		return nil
	}
	return bytes.TrimSpace(b)
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

func toolParam(name, desc string, schema map[string]any) sdk.ChatCompletionToolUnionParam {
	return sdk.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:        name,
		Description: sdk.String(desc),
		Parameters:  shared.FunctionParameters(schema),
	})
}

func clip(s string) string {
	if len(s) <= 120 {
		return s
	}
	return s[:120] + "..."
}
