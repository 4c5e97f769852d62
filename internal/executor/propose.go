package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/store"
)

// DefaultProposalTTL is how long a person's proposal can be approved.
const DefaultProposalTTL = time.Hour

// MaxReason bounds the reason of a person's proposal (bytes).
const MaxReason = 2000

// Proposal is what a person proposes (ProposeAs).
type Proposal struct {
	// ActionType names a catalog action; Params are its params (a JSON
	// object, validated against the catalog's spec).
	ActionType string
	Params     json.RawMessage
	// TicketID is the ticket the action is for; 0 creates a manual ticket
	// (store.ManualInvariant) tagged with this daemon's cluster.
	TicketID int64
	// Reason is required; it is stripped of control characters and bounded
	// to MaxReason bytes.
	Reason string
}

// ProposeAs stores the proposal of action req.ActionType with req.Params
// by the person who (approver or admin), so that someone else approves it
// under the same policy (nobody approves their own proposal: ProposedBy is
// action.HumanProposer + who.Name). The catalog must know the action and
// accept the params; the reason is sanitised (internal/safetext). The
// proposal expires after DefaultProposalTTL if nobody approves it.
//
// Errors: ErrForbidden (a viewer); ErrPolicy wrapping
// action.ErrUnknownAction or action.ErrInvalidParams; store.ErrInvalid
// (no reason, bad name); store.ErrNotFound (unknown ticket);
// *ticket.ErrTransition (resolved ticket); store.ErrWrongCluster.
func (e *Executor) ProposeAs(ctx context.Context, who auth.Identity, req Proposal) (action.Proposal, error) {
	if err := e.ready(); err != nil {
		return action.Proposal{}, err
	}
	if err := e.checkDecider(who, Decision{}); err != nil {
		return action.Proposal{}, fmt.Errorf("propose %s: %w", safetext.Line(req.ActionType, 64), err)
	}
	a, err := e.cat.Lookup(req.ActionType)
	if err != nil {
		return action.Proposal{}, fmt.Errorf("propose: %w: %w", ErrPolicy, err)
	}
	params := req.Params
	if len(params) == 0 {
		params = json.RawMessage(`{}`)
	}
	if err := action.ValidateParams(a.Spec(), params); err != nil {
		return action.Proposal{}, fmt.Errorf("propose %s: %w: %w", req.ActionType, ErrPolicy, err)
	}
	reason := safetext.Text(strings.TrimSpace(req.Reason), MaxReason)
	if reason == "" {
		return action.Proposal{}, fmt.Errorf("propose %s: %w: a reason is required", req.ActionType, store.ErrInvalid)
	}
	if req.TicketID < 0 {
		return action.Proposal{}, fmt.Errorf("propose %s: %w: ticket id %d", req.ActionType, store.ErrInvalid, req.TicketID)
	}
	now := e.now()
	p, err := e.st.ProposeManual(ctx, store.ManualProposal{TicketID: req.TicketID, Proposal: action.Proposal{
		ActionType: req.ActionType, Params: params, Rationale: reason, Urgency: action.Soon,
		ProposedBy: action.HumanProposer + who.Name, ExpiresAt: now.Add(DefaultProposalTTL),
		Risks: []string{fmt.Sprintf("%s risk: %s", a.Spec().Risk, a.Spec().Rollback)},
	}}, now)
	if err != nil {
		return action.Proposal{}, err
	}
	e.log.Info("action proposed by a person", "action_id", p.ID, "action", p.ActionType, "by", who.Name, "role", who.Role,
		"via", who.Via, "ticket_id", p.TicketID)
	return p, nil
}
