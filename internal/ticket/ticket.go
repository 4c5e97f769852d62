// Package ticket defines the operator's tickets: one per violated invariant
// on one subject, deduplicated by Key, with an explicit lifecycle.
package ticket

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is a ticket's lifecycle state.
type Status string

// Ticket statuses.
const (
	// Open: the violation was seen and is waiting for a diagnosis.
	Open Status = "open"
	// Diagnosed: a diagnosis is stored (with or without a proposal).
	Diagnosed Status = "diagnosed"
	// Resolved: the invariant held again for the quiet period. Final.
	Resolved Status = "resolved"
)

// transitions is the table of legal moves; anything else is refused.
var transitions = map[Status][]Status{
	Open:      {Diagnosed, Resolved},
	Diagnosed: {Open, Resolved}, // Open again: re-diagnosis requested
	Resolved:  {},
}

// CanTransition reports whether a ticket may move from one status to another.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// ErrTransition is returned for a move the table does not allow.
type ErrTransition struct {
	ID       int64
	From, To Status
}

func (e *ErrTransition) Error() string {
	return fmt.Sprintf("ticket %d is %s; cannot move to %s", e.ID, e.From, e.To)
}

// Severity follows the PingCAP alert levels.
type Severity string

// Severities, lowest first.
const (
	Warning   Severity = "warning"
	Critical  Severity = "critical"
	Emergency Severity = "emergency"
)

// Observation is one violation as the monitor reports it to the ticket
// store.
type Observation struct {
	// Invariant is the invariant name, e.g. "store_down".
	Invariant string `json:"invariant"`
	// Subject names what is affected: "store:4", "region:12", "cluster".
	Subject  string   `json:"subject"`
	Severity Severity `json:"severity"`
	// Summary is one line for humans.
	Summary string `json:"summary"`
	// Evidence is the PD values and thresholds behind the violation, as a
	// JSON object.
	Evidence json.RawMessage `json:"evidence"`
}

// Key is the dedup key: invariant + "/" + subject, e.g. "store_down/store:4".
func (o Observation) Key() string { return o.Invariant + "/" + o.Subject }

// Ticket is a stored ticket.
type Ticket struct {
	ID        int64    `json:"id"`
	Key       string   `json:"key"`
	Invariant string   `json:"invariant"`
	Subject   string   `json:"subject"`
	Severity  Severity `json:"severity"`
	Status    Status   `json:"status"`
	Summary   string   `json:"summary"`
	// Evidence is the latest evidence; FirstEvidence the one that opened it.
	Evidence      json.RawMessage `json:"evidence"`
	FirstEvidence json.RawMessage `json:"first_evidence"`
	FirstSeen     time.Time       `json:"first_seen"`
	LastSeen      time.Time       `json:"last_seen"`
	Occurrences   int64           `json:"occurrences"`
	// ClearedAt is when the invariant was first seen holding again since the
	// last violation; nil while the violation persists.
	ClearedAt  *time.Time `json:"cleared_at,omitempty"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// PreviousID links to the resolved ticket with the same key, if any.
	PreviousID *int64 `json:"previous_id,omitempty"`
	// RootID links to the root ticket of the incident this ticket is a
	// symptom of (a store_down ticket for the region_down_peer ticket it
	// causes), set by the monitor; nil for a root or an unlinked ticket.
	RootID *int64 `json:"root_id,omitempty"`
	// ClusterID is PD's cluster id (GET /pd/api/v1/cluster) of the cluster
	// the ticket was opened for.
	ClusterID string `json:"cluster_id,omitempty"`

	// Diagnosis, stored as readable markdown and as JSON.
	DiagnosisMarkdown string          `json:"diagnosis_markdown,omitempty"`
	DiagnosisJSON     json.RawMessage `json:"diagnosis,omitempty"`
	DiagnosedAt       *time.Time      `json:"diagnosed_at,omitempty"`
	// DiagnosisBackend names the backend that wrote the stored diagnosis
	// ("rules", "anthropic:MODEL", ...); InputTokens and OutputTokens are
	// the model tokens spent on this ticket so far, over all diagnosis
	// attempts, failed ones included (0 for rules); the per-ticket token
	// budget is charged against their sum.
	DiagnosisBackend string `json:"diagnosis_backend,omitempty"`
	InputTokens      int64  `json:"input_tokens,omitempty"`
	OutputTokens     int64  `json:"output_tokens,omitempty"`
	// DiagnosisAttempts counts failed diagnosis attempts since the last
	// success; NextDiagnosisAt is when the runner may retry (backoff).
	DiagnosisAttempts int        `json:"diagnosis_attempts"`
	NextDiagnosisAt   *time.Time `json:"next_diagnosis_at,omitempty"`
	LastDiagnosisErr  string     `json:"last_diagnosis_error,omitempty"`
	UpdatedAt         time.Time  `json:"updated_at"`
}
