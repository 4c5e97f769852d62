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

// Diagnose asks the model for a diagnosis of c.Ticket through the shared
// agent loop (llm.Agent). The result is untrusted until diagnose.Validate.
// Errors wrap diagnose.ErrUnavailable (network, 429 or 5xx after the
// retries, other API errors), diagnose.ErrBudget or
// diagnose.ErrInvalidOutput, and carry the tokens spent (diagnose.Spent).
func (b *Backend) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	a := &llm.Agent{Provider: provider{b}, Name: b.Name(), MaxTokens: b.opts.MaxTokens, Common: b.opts.Common, Log: b.log}
	return a.Diagnose(ctx, c)
}

// provider adapts chat completions (POST {base}/chat/completions) to
// llm.Agent.
type provider struct{ b *Backend }

func (provider) Label() string { return "openai" }

func (provider) Classify(err error) llm.Verdict { return classify(err) }

func (p provider) Start(system, user string, tools []llm.ToolDef) llm.Conversation {
	params := make([]sdk.ChatCompletionToolUnionParam, 0, len(tools))
	for _, d := range tools {
		params = append(params, toolParam(d.Name, d.Description, d.Schema))
	}
	return &conversation{b: p.b, tools: params,
		messages: []sdk.ChatCompletionMessageParamUnion{sdk.SystemMessage(system), sdk.UserMessage(user)}}
}

// conversation is one diagnosis' chat history.
type conversation struct {
	b        *Backend
	tools    []sdk.ChatCompletionToolUnionParam
	messages []sdk.ChatCompletionMessageParamUnion
}

// params is the next request: tool_choice names submit_diagnosis when
// force, else "required" (some tool call).
func (c *conversation) params(maxTokens int64, force bool) sdk.ChatCompletionNewParams {
	params := sdk.ChatCompletionNewParams{
		Model:    shared.ChatModel(c.b.opts.Model),
		Messages: c.messages,
		Tools:    c.tools,
	}
	if c.b.opts.LegacyMaxTokens {
		params.MaxTokens = sdk.Int(maxTokens)
	} else {
		params.MaxCompletionTokens = sdk.Int(maxTokens)
	}
	if force {
		params.ToolChoice = sdk.ToolChoiceOptionFunctionToolChoice(sdk.ChatCompletionNamedToolChoiceFunctionParam{Name: llm.SubmitToolName})
	} else {
		params.ToolChoice = sdk.ChatCompletionToolChoiceOptionUnionParam{OfAuto: sdk.String("required")}
	}
	return params
}

func (c *conversation) RequestBytes(maxTokens int64, force bool) (int64, error) {
	body, err := json.Marshal(c.params(maxTokens, force))
	return int64(len(body)), err
}

func (c *conversation) Send(ctx context.Context, maxTokens int64, force bool) (*llm.Turn, error) {
	params := c.params(maxTokens, force)
	reqBytes, _ := c.RequestBytes(maxTokens, force)
	resp, err := c.b.client.Chat.Completions.New(ctx, params)
	if err != nil {
		return nil, err
	}
	t := &llm.Turn{Usage: usage(resp, reqBytes), PromptTokens: resp.Usage.PromptTokens}
	if len(resp.Choices) == 0 {
		t.Stop, t.Detail = llm.StopInvalid, "response has no choices"
		return t, nil
	}
	choice := resp.Choices[0]
	msg := choice.Message
	t.Raw, t.Detail = msg, fmt.Sprintf("finish_reason %q", choice.FinishReason)
	for _, tc := range msg.ToolCalls {
		if tc.Type != "" && tc.Type != "function" {
			continue
		}
		if tc.Function.Name == llm.SubmitToolName {
			t.Submit = []byte(tc.Function.Arguments)
			return t, nil
		}
		t.Calls = append(t.Calls, llm.ToolCall{ID: tc.ID, Name: tc.Function.Name, Input: []byte(tc.Function.Arguments)})
	}
	if len(msg.ToolCalls) == 0 {
		if obj := jsonObjectIn(msg.Content); obj != nil {
			// A server that ignored tool_choice and wrote the object.
			t.Submit = obj
			return t, nil
		}
	}
	switch {
	case choice.FinishReason == "length":
		t.Stop = llm.StopMaxTokens
	case choice.FinishReason == "content_filter" || msg.Refusal != "":
		t.Stop, t.Detail = llm.StopRefusal, msg.Refusal
	}
	return t, nil
}

func (c *conversation) Continue(t *llm.Turn, results []llm.ToolResult) {
	if msg, ok := t.Raw.(sdk.ChatCompletionMessage); ok {
		c.messages = append(c.messages, msg.ToParam())
	}
	for _, r := range results {
		out := r.Content
		if r.IsError {
			out = "error: " + out
		}
		c.messages = append(c.messages, sdk.ToolMessage(out, r.Call.ID))
	}
	if len(results) == 0 {
		c.messages = append(c.messages, sdk.UserMessage("Call "+llm.SubmitToolName+" now."))
	}
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
