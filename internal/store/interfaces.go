package store

import (
	"context"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// The aggregates the store holds, as small interfaces (issue 14). *Store
// implements every one of them on both databases (SQLite file, PostgreSQL
// URL: see Open); the conformance suite in this package's tests runs the
// same tests against both. Callers that need only one aggregate can take
// the interface; the methods' contracts (errors, transactions, times) are
// documented on *Store.

// TicketStore is the tickets and the monitor's persisted state: dedup of
// observations into tickets (one non-resolved ticket per cluster and key,
// enforced by the database), their lifecycle (ticket.Status transitions as
// compare-and-swap), diagnoses, and the monitor's memory (alerts, `for`
// windows, histories) that lets a new leader continue where the previous
// one stopped.
type TicketStore interface {
	Observe(ctx context.Context, obs ticket.Observation, now time.Time) (ticket.Ticket, bool, error)
	Sweep(ctx context.Context, evaluated []string, violated map[string]bool, now time.Time, quiet time.Duration) ([]ticket.Ticket, error)
	Ticket(ctx context.Context, id int64) (ticket.Ticket, error)
	OpenTicket(ctx context.Context, key string) (ticket.Ticket, error)
	Tickets(ctx context.Context, f TicketFilter) ([]ticket.Ticket, error)
	TicketsToDiagnose(ctx context.Context, now time.Time, limit int) ([]ticket.Ticket, error)
	SaveDiagnosis(ctx context.Context, ticketID int64, d DiagnosisInput, now time.Time) (int64, error)
	DiagnosisFailed(ctx context.Context, ticketID int64, errMsg string, next time.Time) error
	Reopen(ctx context.Context, ticketID int64, now time.Time) error
	ResolveTicket(ctx context.Context, id int64, now time.Time) error
	EscalateTicket(ctx context.Context, id int64, sev ticket.Severity, reason string, now time.Time) (bool, error)
	RequestRediagnosis(ctx context.Context, id int64, reason string, now time.Time) error
	Diagnoses(ctx context.Context, id int64) ([]PastDiagnosis, error)
	LinkTicket(ctx context.Context, childID, rootID int64, now time.Time) error
	TicketRoots(ctx context.Context, ids []int64) (map[int64]int64, error)

	LoadMonitorState(ctx context.Context) (MonitorState, error)
	SaveMonitorState(ctx context.Context, st MonitorState, now time.Time) error
	OpenTicketKeys(ctx context.Context) (map[string]int64, error)
}

// ProposalStore is the action proposals and the decisions on them:
// approval (bound, possibly by several people), rejection, expiry, the
// executor's claim and finish (compare-and-swap on action.Status, fenced
// by the leader's term: WithTerm), and scheduled reverts. Every decision
// appends its audit record in the same transaction.
type ProposalStore interface {
	Proposal(ctx context.Context, id int64) (action.Proposal, error)
	Proposals(ctx context.Context, f ProposalFilter) ([]action.Proposal, error)
	ProposeManual(ctx context.Context, m ManualProposal, now time.Time) (action.Proposal, error)
	ApproveBound(ctx context.Context, id int64, a Approval, now time.Time) (action.Proposal, int, error)
	RejectAs(ctx context.Context, id int64, a Approval, reason string, now time.Time) (action.Proposal, error)
	ExpireProposals(ctx context.Context, now time.Time) (int, error)
	RecordDryRun(ctx context.Context, id int64, rec action.Record, now time.Time) (action.Record, error)
	ClaimNextChecked(ctx context.Context, executor string, now time.Time, o ClaimOptions) (*action.Proposal, []ClaimEnded, error)
	ClaimID(ctx context.Context, id int64, executor string, now time.Time) (action.Proposal, error)
	Executing(ctx context.Context) ([]action.Proposal, error)
	Finish(ctx context.Context, id int64, to action.Status, result string, rec action.Record, now time.Time) (action.Record, error)
	FinishScheduling(ctx context.Context, id int64, to action.Status, result string, rec action.Record, fus []FollowUp, now time.Time) (action.Record, []FollowUp, error)
	ClaimDueFollowUp(ctx context.Context, executor string, now time.Time) (*FollowUp, error)
	FinishFollowUp(ctx context.Context, id int64, to FollowUpStatus, result string, rec action.Record, now time.Time) (action.Record, error)
	AdvanceTerm(ctx context.Context) error
	LeaderTerm(ctx context.Context) (int64, error)
}

// AuditStore is the append-only, hash-chained and signed audit trail of
// action records (RecordHash), and its verification. The database refuses
// UPDATE and DELETE of a record (triggers; on PostgreSQL also the runtime
// role's privileges: PostgresRuntimeGrants); Verify detects what someone
// with more rights changed anyway.
type AuditStore interface {
	AppendRecord(ctx context.Context, rec action.Record) (action.Record, error)
	Records(ctx context.Context, f RecordFilter) ([]action.Record, error)
	Verify(ctx context.Context) (VerifyReport, error)
	VerifyWith(ctx context.Context, o VerifyOptions) (VerifyReport, error)
}

// OutboxStore is the transactional outbox of notifications: events
// written in the transaction of the change they report, routed to sinks,
// and delivered at least once (claim, done, dead, in-doubt recovery).
type OutboxStore interface {
	Enqueue(ctx context.Context, ev OutboxEvent) error
	Route(ctx context.Context, routes func(OutboxEvent) []string, now time.Time) (int, error)
	ClaimDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	RecoverDeliveries(ctx context.Context, now time.Time) (int, error)
	DeliveryDone(ctx context.Context, eventID int64, sink, ref string, sendErr error, dead bool, next, now time.Time) error
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	OutboxEvents(ctx context.Context, after int64) ([]OutboxEvent, error)
	OutboxState(ctx context.Context) (OutboxStats, error)
}

var (
	_ TicketStore   = (*Store)(nil)
	_ ProposalStore = (*Store)(nil)
	_ AuditStore    = (*Store)(nil)
	_ OutboxStore   = (*Store)(nil)
)
