package store

import (
	"context"

	"github.com/tikvops/operator/internal/action"
)

// RejectionReasonPrefix starts the re-diagnosis reason the executor
// records when a person rejects a proposal (RequestRediagnosis). Other
// reasons are a person asking for a new diagnosis.
const RejectionReasonPrefix = "rejected: "

// RejectedSinceAsked returns the proposals of ticket ticketID that people
// rejected after the ticket's latest re-diagnosis a person asked for
// (operator tickets rediagnose), oldest first: a diagnosis must not propose
// them again, until someone asks for a fresh look.
func (s *Store) RejectedSinceAsked(ctx context.Context, ticketID int64) ([]action.Proposal, error) {
	return s.queryProposals(ctx, `SELECT `+proposalCols+` FROM action_proposals
WHERE ticket_id = ?1 AND status = 'rejected' AND rejected_at > coalesce((
	SELECT max(archived_at) FROM diagnoses
	WHERE ticket_id = ?1 AND substr(reason, 1, length(?2)) <> ?2), '')
ORDER BY id`, ticketID, RejectionReasonPrefix)
}
