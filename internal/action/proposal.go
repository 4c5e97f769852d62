package action

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Status is a proposal's lifecycle state (the seed's ActionStatus plus
// expired).
type Status string

// Proposal statuses.
const (
	Proposed  Status = "proposed"  // awaiting a human
	DryRun    Status = "dry_run"   // a dry run was recorded; still awaiting approval
	Approved  Status = "approved"  // a human approved; the executor will claim it
	Rejected  Status = "rejected"  // a human rejected it (final)
	Executing Status = "executing" // claimed by the executor; PD may have been called
	Completed Status = "completed" // executed and effect verified (final)
	Failed    Status = "failed"    // execution failed, preconditions changed, or interrupted (final)
	Expired   Status = "expired"   // not approved in time, approval past its TTL, or its ticket resolved (final)
	// Refused: the executor's claim-time check refused the approval (no
	// valid approval record in the audit chain, another cluster, the
	// approval policy); nothing was sent to PD (final).
	Refused Status = "refused"
)

var transitions = map[Status][]Status{
	Proposed:  {DryRun, Approved, Rejected, Expired},
	DryRun:    {DryRun, Approved, Rejected, Expired},
	Approved:  {Executing, Expired, Refused},
	Executing: {Completed, Failed, Expired, Refused},
	Rejected:  {},
	Completed: {},
	Failed:    {},
	Expired:   {},
	Refused:   {},
}

// CanTransition reports whether a proposal may move from one status to
// another.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Final reports whether no transition leaves s.
func (s Status) Final() bool { return len(transitions[s]) == 0 }

// ErrTransition is returned when a proposal is not in a status from which
// the requested move is legal (including when another process won a race).
type ErrTransition struct {
	ID       int64
	From, To Status
}

func (e *ErrTransition) Error() string {
	switch e.To {
	case Approved:
		return fmt.Sprintf("action %d is %s; only proposed actions can be approved", e.ID, e.From)
	case Rejected:
		return fmt.Sprintf("action %d is %s; only proposed actions can be rejected", e.ID, e.From)
	case DryRun:
		return fmt.Sprintf("action %d is %s; only proposed actions can be dry-run", e.ID, e.From)
	}
	return fmt.Sprintf("action %d is %s; cannot move to %s", e.ID, e.From, e.To)
}

// Urgency of a proposed action, as the diagnosis states it.
type Urgency string

// Urgencies.
const (
	Immediate      Urgency = "immediate"
	Soon           Urgency = "soon"
	WhenConvenient Urgency = "when_convenient"
)

// Proposal is an action proposed by a diagnosis (the seed's ActionProposal).
type Proposal struct {
	ID         int64           `json:"id"`
	TicketID   int64           `json:"ticket_id"`
	ActionType string          `json:"action_type"`
	Params     json.RawMessage `json:"params"`
	Rationale  string          `json:"rationale"`
	Risks      []string        `json:"risks"`
	Urgency    Urgency         `json:"urgency"`
	Status     Status          `json:"status"`
	// ProposedBy names the diagnosis backend ("rules", "anthropic:MODEL").
	ProposedBy string    `json:"proposed_by"`
	ProposedAt time.Time `json:"proposed_at"`
	// ExpiresAt: after it the proposal can no longer be approved.
	ExpiresAt       time.Time  `json:"expires_at"`
	ApprovedBy      string     `json:"approved_by,omitempty"`
	ApprovedAt      *time.Time `json:"approved_at,omitempty"`
	RejectedBy      string     `json:"rejected_by,omitempty"`
	RejectedAt      *time.Time `json:"rejected_at,omitempty"`
	RejectionReason string     `json:"rejection_reason,omitempty"`
	// ExecutedBy names the executor that claimed it (host:pid).
	ExecutedBy string     `json:"executed_by,omitempty"`
	ExecutedAt *time.Time `json:"executed_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Result     string     `json:"result,omitempty"`
	UpdatedAt  time.Time  `json:"updated_at"`
	// ClusterID is PD's cluster id (GET /pd/api/v1/cluster) of the cluster
	// the proposal was made for.
	ClusterID string `json:"cluster_id,omitempty"`
	// ApprovalExpiresAt is when the approval stops authorising execution
	// ([actions] approval-ttl after the approval); nil until approved.
	ApprovalExpiresAt *time.Time `json:"approval_expires_at,omitempty"`
}

// HumanProposer is the ProposedBy prefix of an action a person proposed
// ("user:alice"); diagnosis backends propose under their own name
// ("rules", "anthropic:MODEL").
const HumanProposer = "user:"

// Audit record events (Record.Event).
const (
	// EventExecution: the action was executed against PD (Finish);
	// Success is whether it completed.
	EventExecution = "execution"
	// EventDryRun: a dry run was recorded (DryRun is true); Success is
	// its verdict.
	EventDryRun = "dry_run"
	// EventApproval: a human approved the action (ApprovedBy); Success is
	// true.
	EventApproval = "approval"
	// EventRejection: a human rejected the action; Message names who and
	// why; Success is false.
	EventRejection = "rejection"
	// EventRefusal: the executor refused an approved action at claim time
	// (Message says why); nothing was sent to PD; Success is false.
	EventRefusal = "refusal"
	// EventExpiry: an approved action expired (approval TTL passed, its
	// ticket resolved, or its invariant held again) before anything was
	// sent to PD; Success is false.
	EventExpiry = "expiry"
	// EventRevert: something happened to the scheduled revert of a
	// temporary change (on the original action's id; ActionType and
	// Params are the revert's): carried out without a new approval
	// (Success true), proposed for approval because PD no longer showed
	// the value the action set or the revert failed (Success false), or
	// cancelled or extended by a person (ExecutedBy, ActorRole).
	EventRevert = "revert"
)

// ValidEvent reports whether e is a known record event.
func ValidEvent(e string) bool {
	switch e {
	case EventExecution, EventDryRun, EventApproval, EventRejection, EventRefusal, EventExpiry, EventRevert:
		return true
	}
	return false
}

// Record hash versions (Record.HashVersion).
const (
	// HashV1 is the original encoding: it covers the event only for
	// approvals and rejections. Records written before schema version 3.
	HashV1 = 1
	// HashV2 covers every field of the record, the event and the
	// approval binding included. Every record written since schema 3.
	HashV2 = 2
)

// Record is an immutable audit record of a dry run, an execution, an
// approval or a rejection (the seed's ActionRecord plus the hash chain).
// Records are append-only: the database refuses UPDATE and DELETE, and
// each record carries the hash of the previous one.
type Record struct {
	ID         int64           `json:"id"`
	ProposalID int64           `json:"proposal_id"`
	TicketID   int64           `json:"ticket_id"`
	ActionType string          `json:"action_type"`
	Params     json.RawMessage `json:"params"`
	// Event is what the record attests: EventExecution, EventDryRun,
	// EventApproval or EventRejection. Records written before events
	// existed read back as "dry_run" or "execution" from DryRun.
	Event       string          `json:"event"`
	DryRun      bool            `json:"dry_run"`
	Success     bool            `json:"success"`
	Message     string          `json:"message"`
	ApprovedBy  string          `json:"approved_by"`
	ExecutedBy  string          `json:"executed_by"`
	StartedAt   time.Time       `json:"started_at"`
	FinishedAt  time.Time       `json:"finished_at"`
	Requests    json.RawMessage `json:"requests"`     // []Request as JSON
	StateBefore json.RawMessage `json:"state_before"` // cluster state JSON
	StateAfter  json.RawMessage `json:"state_after"`
	PrevHash    string          `json:"prev_hash"` // hex sha256; "" for the first
	Hash        string          `json:"hash"`      // hex sha256 over PrevHash and the fields above

	// HashVersion is the encoding of Hash: HashV1 or HashV2.
	HashVersion int `json:"hash_version"`
	// ClusterID is PD's cluster id (GET /pd/api/v1/cluster) the record
	// was made for; "" for records written before schema version 3.
	ClusterID string `json:"cluster_id,omitempty"`
	// ActorRole is the authenticated role of the person behind an
	// approval, rejection or dry run (viewer, approver, admin).
	ActorRole string `json:"actor_role,omitempty"`
	// OnBehalfOf names the person an admin acted for, when not the admin.
	OnBehalfOf string `json:"on_behalf_of,omitempty"`
	// ActionDigest binds an approval to exactly one action: see
	// ActionDigest.
	ActionDigest string `json:"action_digest,omitempty"`
	// EvidenceDigest binds an approval to the evidence the approver saw:
	// the hash of the proposal's latest dry-run record, or "" when none.
	EvidenceDigest string `json:"evidence_digest,omitempty"`
	// ExpiresAt is when an approval stops authorising execution.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Signature is the base64 Ed25519 signature of Hash by the daemon's
	// audit key (a key file outside the database); "" when unsigned.
	Signature string `json:"signature,omitempty"`
}

// IsExecution reports whether r records an execution against PD (not a
// dry run, approval or rejection). An empty Event counts as an execution
// unless DryRun is set, as for records written before events existed.
func (r Record) IsExecution() bool {
	if r.DryRun {
		return false
	}
	return r.Event == "" || r.Event == EventExecution
}

// ActionDigest returns the hex SHA-256 that binds an approval to one
// action: over "operator.action.v1\n", the action type, a newline and the
// params as canonical JSON (object keys sorted, no insignificant
// whitespace; numbers as written). Two params that differ only in key
// order or spacing digest the same; any other change does not.
func ActionDigest(actionType string, params json.RawMessage) string {
	canon := canonicalJSON(params)
	h := sha256.New()
	h.Write([]byte("operator.action.v1\n"))
	h.Write([]byte(actionType))
	h.Write([]byte{'\n'})
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalJSON re-encodes raw with sorted keys; invalid JSON is returned
// as it is (it then digests as its bytes).
func canonicalJSON(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	b, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return raw
	}
	return b
}
