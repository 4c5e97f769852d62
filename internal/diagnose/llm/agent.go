package llm

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tikvops/operator/internal/diagnose"
)

// Provider is one model API's wire format (Anthropic Messages, OpenAI
// chat completions): a thin adapter under the one agent loop, Agent.
type Provider interface {
	// Label prefixes errors, e.g. "anthropic".
	Label() string
	// Start opens a conversation: the system prompt, the first user
	// message and the tools (submit_diagnosis first).
	Start(system, user string, tools []ToolDef) Conversation
	// Classify is the retry verdict for a failed request.
	Classify(err error) Verdict
}

// Conversation is the message history of one diagnosis, in the
// provider's wire format.
type Conversation interface {
	// RequestBytes is the size of the next request's body, for the token
	// estimate of the budget.
	RequestBytes(maxTokens int64, force bool) (int64, error)
	// Send makes one request with at most maxTokens of output; force
	// requires a submit_diagnosis call, else some tool call is required.
	// Errors are the SDK's (classified by Provider.Classify).
	Send(ctx context.Context, maxTokens int64, force bool) (*Turn, error)
	// Continue records the model's turn and the answers to its tool
	// calls (results, in call order); with no calls it asks the model to
	// submit.
	Continue(t *Turn, results []ToolResult)
}

// Stop is why a model turn ended, as far as the loop cares.
type Stop int

// Stop reasons.
const (
	// StopOther: the model ended its turn (with tool calls, or text).
	StopOther Stop = iota
	// StopMaxTokens: the answer was cut off at max tokens.
	StopMaxTokens
	// StopRefusal: the model or the server refused (content filter).
	StopRefusal
	// StopInvalid: the response is unusable (no choices); Detail says why.
	StopInvalid
)

// ToolCall is one investigation tool call of a turn.
type ToolCall struct {
	ID, Name string
	Input    []byte
}

// ToolResult answers a ToolCall; IsError when the tool failed (the text
// is then the error).
type ToolResult struct {
	Call    ToolCall
	Content string
	IsError bool
}

// Turn is one model response.
type Turn struct {
	// Usage is what the provider charged for the request (input includes
	// cached input); PromptTokens is the input count used to estimate the
	// next request.
	Usage        diagnose.Usage
	PromptTokens int64
	// Submit is the submit_diagnosis input when the model called it.
	Submit []byte
	// Calls are the investigation tool calls (when Submit is nil).
	Calls []ToolCall
	Stop  Stop
	// Detail names the stop (stop_reason / finish_reason, a refusal).
	Detail string
	// Raw is the provider's response message, for Continue.
	Raw any
}

// Agent is the model agent loop every model backend shares: redact the
// context, render the prompt, offer submit_diagnosis and the read-only
// investigation tools, ask for at most MaxTurns turns within the token
// budget (the last one, or the one after which the budget would not allow
// another, forces submit_diagnosis), answer tool calls, parse the
// submission. Provider adapts the wire format.
type Agent struct {
	Provider Provider
	// Name is the backend name stored on diagnoses ("anthropic:model").
	Name string
	// MaxTokens caps each response.
	MaxTokens int64
	// Common holds Budget, MaxTurns, Investigator, Query, Redact, Retry,
	// RequestTimeout and Logger (already defaulted by the backend).
	Common Common
	Log    *slog.Logger
}

// Diagnose runs the loop for c. Errors wrap diagnose.ErrUnavailable
// (network, 429 or 5xx after the retries, other API errors),
// diagnose.ErrBudget or diagnose.ErrInvalidOutput, and carry the tokens
// spent (diagnose.Spent).
func (a *Agent) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	label := a.Provider.Label()
	if c == nil {
		return nil, fmt.Errorf("%s: nil context", label)
	}
	red := diagnose.NewRedactor(a.Common.Redact)
	rc := red.Context(c)
	prompt, err := UserPrompt(rc)
	if err != nil {
		return nil, err
	}
	tools := &Tools{Investigator: a.Common.Investigator, Query: a.Common.Query, Redactor: red}
	defs := append([]ToolDef{{Name: SubmitToolName, Description: SubmitToolDescription, Schema: SubmitSchema(rc.Actions)}}, tools.Defs()...)
	maxTurns := 1
	if tools.Enabled() {
		maxTurns = a.Common.MaxTurns
	}
	budget := NewBudget(a.Common.Budget, c)
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("ticket", c.Ticket.ID)
	conv := a.Provider.Start(SystemPrompt, prompt, defs)
	fail := func(err error) error { return diagnose.WithSpent(err, budget.Used) }

	var prevIn, prevBytes int64
	for turn := 0; turn < maxTurns; turn++ {
		curBytes, err := conv.RequestBytes(a.MaxTokens, false)
		if err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", label, err)
		}
		maxTok, last, err := budget.Plan(EstimateInput(prevIn, prevBytes, curBytes), a.MaxTokens)
		if err != nil {
			return nil, fail(fmt.Errorf("%s: %w", label, err))
		}
		force := last || turn == maxTurns-1
		t, attempts, err := Retry(ctx, a.Common.Retry, log, func(ctx context.Context) (*Turn, error) {
			rctx, cancel := context.WithTimeout(ctx, a.Common.RequestTimeout)
			defer cancel()
			return conv.Send(rctx, maxTok, force)
		}, a.Provider.Classify)
		if err != nil {
			return nil, fail(fmt.Errorf("%w: %s: %d attempt(s): %w", diagnose.ErrUnavailable, label, attempts, err))
		}
		budget.Add(t.Usage)
		prevIn, prevBytes = t.PromptTokens, curBytes

		if t.Submit != nil {
			d, err := ParseSubmission(t.Submit)
			if err != nil {
				return nil, fail(fmt.Errorf("%s: %w", label, err))
			}
			d.Backend = a.Name
			d.Usage = budget.Used
			log.Info("diagnosed", "turns", turn+1, "input_tokens", d.Usage.InputTokens, "output_tokens", d.Usage.OutputTokens)
			return d, nil
		}
		switch {
		case t.Stop == StopMaxTokens && maxTok < a.MaxTokens:
			return nil, fail(fmt.Errorf("%w: %s: response cut off at %d tokens, all the budget left", diagnose.ErrBudget, label, maxTok))
		case t.Stop == StopMaxTokens:
			return nil, fail(fmt.Errorf("%w: %s: response cut off at max tokens %d", diagnose.ErrInvalidOutput, label, maxTok))
		case t.Stop == StopInvalid:
			return nil, fail(fmt.Errorf("%w: %s: %s", diagnose.ErrInvalidOutput, label, clip(t.Detail)))
		case t.Stop == StopRefusal:
			return nil, fail(fmt.Errorf("%w: %s: the model refused (%s)", diagnose.ErrInvalidOutput, label, clip(t.Detail)))
		case force:
			return nil, fail(fmt.Errorf("%w: %s: the model did not call %s (%s)", diagnose.ErrInvalidOutput, label, SubmitToolName, clip(t.Detail)))
		}

		// An investigation turn: answer every tool call, then go on.
		results := make([]ToolResult, 0, len(t.Calls))
		for _, call := range t.Calls {
			out, err := tools.Call(ctx, call.Name, call.Input)
			if err != nil {
				log.Info("investigation tool failed", "tool", call.Name, "err", err)
				results = append(results, ToolResult{Call: call, Content: err.Error(), IsError: true})
				continue
			}
			log.Debug("investigation tool", "tool", call.Name, "bytes", len(out))
			results = append(results, ToolResult{Call: call, Content: out})
		}
		conv.Continue(t, results)
	}
	// Unreachable: the last turn forces submit_diagnosis and returns.
	return nil, fail(fmt.Errorf("%w: %s: no diagnosis after %d turns", diagnose.ErrInvalidOutput, label, maxTurns))
}
