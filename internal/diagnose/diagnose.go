// Package diagnose turns an open ticket into a Diagnosis a human can act on:
// what is wrong, why, how sure, what could go wrong, and either one concrete
// action to approve or an explicit "no action: a human must look" with the
// reason.
//
// Diagnoses come from pluggable backends behind one small interface,
// Backend: the offline rules (package rules), Claude (package anthropic) and
// any OpenAI-compatible model (package openai), plus Noop. Whatever a backend
// returns is untrusted: Validate checks the proposed action against the
// action catalog and a dry run before a runner may turn it into a proposal,
// and nothing in a Diagnosis can approve or execute anything. Before any
// cluster data reaches a model, a Redactor removes region keys (user data)
// and, when configured, store addresses and labels.
package diagnose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// Errors a Backend returns, wrapped with %w; callers branch with errors.Is.
var (
	// ErrUnavailable: the backend could not be reached or refused to serve
	// (network error, HTTP 429 after the retries, 5xx, auth failure, the
	// caller's context ending). The ticket stays open and the runner retries
	// later with backoff; nothing is lost.
	ErrUnavailable = errors.New("diagnosis backend unavailable")
	// ErrBudget: the per-ticket token budget ran out before the backend
	// produced a diagnosis.
	ErrBudget = errors.New("diagnosis token budget exhausted")
	// ErrInvalidOutput: the model answered, but not with a usable diagnosis
	// (no submit_diagnosis call, arguments that are not JSON, required fields
	// missing, a refusal).
	ErrInvalidOutput = errors.New("invalid diagnosis output")
)

// Backend produces a diagnosis for one ticket.
type Backend interface {
	// Name identifies the backend in stored diagnoses and proposals, e.g.
	// "rules", "noop", "anthropic:claude-sonnet-4-5".
	Name() string
	// Diagnose returns a diagnosis for c.Ticket. The result is untrusted:
	// callers run Validate before creating a proposal. Errors wrap
	// ErrUnavailable, ErrBudget or ErrInvalidOutput; tokens spent before an
	// error are reported by Spent(err).
	Diagnose(ctx context.Context, c *Context) (*Diagnosis, error)
}

// Confidence is how sure a diagnosis is of its root cause.
type Confidence string

// Confidence levels, lowest first.
const (
	ConfidenceLow    Confidence = "low"
	ConfidenceMedium Confidence = "medium"
	ConfidenceHigh   Confidence = "high"
)

// Valid reports whether c is one of the three levels.
func (c Confidence) Valid() bool {
	return c == ConfidenceLow || c == ConfidenceMedium || c == ConfidenceHigh
}

// ValidUrgency reports whether u is one of action.Immediate, action.Soon
// and action.WhenConvenient.
func ValidUrgency(u action.Urgency) bool {
	return u == action.Immediate || u == action.Soon || u == action.WhenConvenient
}

// Usage is the tokens a diagnosis consumed, summed over every model request
// (including retried and investigation turns). Zero for offline backends.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// Total returns input plus output tokens.
func (u Usage) Total() int64 { return u.InputTokens + u.OutputTokens }

// Add returns u plus v.
func (u Usage) Add(v Usage) Usage {
	return Usage{InputTokens: u.InputTokens + v.InputTokens, OutputTokens: u.OutputTokens + v.OutputTokens}
}

// ProposedAction is the one action a diagnosis proposes. It becomes an
// action.Proposal in status proposed only after Validate accepted it.
type ProposedAction struct {
	// ActionType is a catalog name, e.g. "transfer_leader".
	ActionType string `json:"action_type"`
	// Params is the action's parameters as a JSON object, checked against
	// the catalog Spec by Validate.
	Params    json.RawMessage `json:"params"`
	Rationale string          `json:"rationale"`
	Urgency   action.Urgency  `json:"urgency"`
}

// Diagnosis is a backend's answer for one ticket, stored on the ticket as
// JSON (encoding/json of this struct) and as Markdown.
//
// Exactly one of ProposedAction and NoActionReason is set after Validate.
type Diagnosis struct {
	// Summary is one line: what is wrong.
	Summary string `json:"summary"`
	// RootCause explains why, in a few sentences.
	RootCause string `json:"root_cause"`
	// Evidence lists the facts the diagnosis rests on (PD values, ids).
	Evidence   []string   `json:"evidence"`
	Confidence Confidence `json:"confidence"`
	// Risks lists what could go wrong with the proposed action (or with
	// doing nothing).
	Risks          []string        `json:"risks"`
	ProposedAction *ProposedAction `json:"proposed_action,omitempty"`
	// NoActionReason says why no action is proposed ("no action: a human
	// must look: ...", or "proposed action X rejected: ..." set by Validate).
	NoActionReason string `json:"no_action_reason,omitempty"`
	// RejectedAction is what the backend proposed when Validate refused it,
	// kept for the human reading the ticket; it can never become a proposal.
	RejectedAction *ProposedAction `json:"rejected_action,omitempty"`
	// DryRun is the dry run Validate made of ProposedAction: the
	// preconditions checked and the exact PD requests an execution would
	// send.
	DryRun *action.DryRunResult `json:"dry_run,omitempty"`
	// Backend is the Backend.Name() that produced the diagnosis; set by the
	// backend, never by a model.
	Backend string `json:"backend"`
	// FallbackFrom, when set, says that the configured backend could not
	// diagnose the ticket (unavailable, budget spent, invalid output) and
	// Backend (the rules) diagnosed it instead: the configured backend's
	// name and why.
	FallbackFrom string `json:"fallback_from,omitempty"`
	Usage        Usage  `json:"usage"`
}

// Proposal builds the action proposal for d's validated ProposedAction, in
// status proposed, expiring ttl after now; it returns nil when d proposes
// nothing. Only call it after Validate: the returned proposal is never
// approved, whatever a model wrote.
func (d *Diagnosis) Proposal(ticketID int64, now time.Time, ttl time.Duration) *action.Proposal {
	if d == nil || d.ProposedAction == nil {
		return nil
	}
	pa := d.ProposedAction
	risks := append([]string(nil), d.Risks...)
	if risks == nil {
		risks = []string{}
	}
	return &action.Proposal{
		TicketID:   ticketID,
		ActionType: pa.ActionType,
		Params:     append(json.RawMessage(nil), pa.Params...),
		Rationale:  pa.Rationale,
		Risks:      risks,
		Urgency:    pa.Urgency,
		Status:     action.Proposed,
		ProposedBy: d.Backend,
		ProposedAt: now,
		ExpiresAt:  now.Add(ttl),
		UpdatedAt:  now,
	}
}

// Context is everything a backend sees about one ticket. The runner gathers
// it from PD (and Prometheus when configured); LLM backends receive only a
// Redactor's copy of it.
type Context struct {
	// Time is when the context was gathered (PD's clock when known).
	Time time.Time `json:"time"`
	// Ticket is the ticket to diagnose, with its evidence.
	Ticket ticket.Ticket `json:"ticket"`
	// Stores are the stores involved (the ticket's subject, the stores
	// holding peers of the involved regions), from GET /pd/api/v1/stores;
	// all stores for cluster-wide tickets.
	Stores []pd.StoreInfo `json:"stores"`
	// Regions are the regions involved (GET /pd/api/v1/region/id/{id}).
	Regions []pd.Region `json:"regions"`
	// Operators are PD's running operators
	// (GET /pd/api/v1/operators?object).
	Operators []pd.Operator `json:"operators"`
	// OperatorRecords are the operators PD finished recently, with their
	// outcome (GET /pd/api/v1/operators/records; PD >= 4.0 keeps them 10
	// minutes); nil when not read.
	OperatorRecords []pd.OperatorRecord  `json:"operator_records,omitempty"`
	Schedule        pd.ScheduleConfig    `json:"schedule_config"`
	Replication     pd.ReplicationConfig `json:"replication_config"`
	// Schedulers are the running scheduler names (GET /pd/api/v1/schedulers).
	Schedulers []string `json:"schedulers"`
	// PausedSchedulers are paused scheduler names
	// (GET /pd/api/v1/schedulers?status=paused).
	PausedSchedulers []string `json:"paused_schedulers"`
	// EvictLeaderStores are the store ids an evict-leader scheduler holds.
	EvictLeaderStores []uint64 `json:"evict_leader_stores"`
	// Actions is the action catalog (action.Catalog.Specs()): the only
	// actions a backend may propose.
	Actions []action.Spec `json:"actions"`
	// Prometheus is optional series text (metric{labels} value lines) when a
	// Prometheus URL is configured; "" otherwise.
	Prometheus string `json:"prometheus,omitempty"`
	// SourceErrors names the sources the gatherer could not read (source
	// name as in tikv.Snapshot.Errors, e.g. "hotspot/write", or
	// "prometheus"), with the error text, so a diagnosis can say what it
	// could not check. Nil when everything was read.
	SourceErrors map[string]string `json:"source_errors,omitempty"`
	// Snapshot is the monitor's last read of the cluster, for the rules
	// backend. It is never sent to a model (the Redactor drops it).
	Snapshot *tikv.Snapshot `json:"-"`
	// Budget, when > 0, caps the tokens (input+output) this diagnosis may
	// spend, e.g. what is left of the ticket's budget after failed attempts.
	// Backends use the smaller of it and their configured budget.
	Budget int64 `json:"-"`
}

// SpentError carries the tokens a backend consumed before failing, so a
// runner can charge them to the ticket's budget and record them.
type SpentError struct {
	Usage Usage
	Err   error
}

// Error renders the underlying error and the tokens spent.
func (e *SpentError) Error() string {
	return fmt.Sprintf("%v (after %d input + %d output tokens)", e.Err, e.Usage.InputTokens, e.Usage.OutputTokens)
}

// Unwrap returns the underlying error (which wraps ErrUnavailable,
// ErrBudget or ErrInvalidOutput).
func (e *SpentError) Unwrap() error { return e.Err }

// Spent returns the tokens consumed before err, or zero Usage when err
// carries none.
func Spent(err error) Usage {
	var se *SpentError
	if errors.As(err, &se) {
		return se.Usage
	}
	return Usage{}
}

// WithSpent wraps err with the tokens consumed before it; a nil err or zero
// usage returns err unchanged.
func WithSpent(err error, u Usage) error {
	if err == nil || u.Total() == 0 {
		return err
	}
	return &SpentError{Usage: u, Err: err}
}
