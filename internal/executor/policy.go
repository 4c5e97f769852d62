package executor

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// Policy is the approval policy, evaluated by the daemon with its own
// configuration both when a person approves and again when the executor
// claims the approved action ([actions] in the config).
type Policy struct {
	// ApprovalTTL is how long an approval authorises execution; zero
	// means store.DefaultApprovalTTL ([actions] approval-ttl).
	ApprovalTTL time.Duration
	// Required is how many distinct people must approve an action of each
	// risk; missing or < 1 means 1 ([actions] approvals-required). The
	// default (DefaultRequired) asks two people for high-risk actions.
	Required map[action.Risk]int
}

// DefaultRequired is the default number of approvers per risk.
var DefaultRequired = map[action.Risk]int{action.RiskLow: 1, action.RiskMedium: 1, action.RiskHigh: 2}

// RequiredFor returns the approvers an action of risk r needs (>= 1).
func (p Policy) RequiredFor(r action.Risk) int {
	req := p.Required
	if req == nil {
		req = DefaultRequired
	}
	return max(req[r], 1)
}

// humanProposer returns the person who proposed p, or "" when a
// diagnosis backend did.
func humanProposer(p action.Proposal) string {
	if name, ok := strings.CutPrefix(p.ProposedBy, action.HumanProposer); ok {
		return name
	}
	return ""
}

// eligible is store.ClaimOptions.Eligible: it checks, inside the claim
// transaction and without I/O, that the approval really authorises this
// execution on this cluster now. See docs/executor.md, "Trust model".
func (e *Executor) eligible(p action.Proposal, approvals []action.Record, ts ticket.Status) error {
	now := e.now()
	cluster := e.st.ClusterID()
	if cluster == "" {
		// Not yet verified against PD: wait, do not decide.
		return errors.New("cluster identity not verified yet")
	}
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", store.ErrClaimRefused, fmt.Sprintf(format, args...))
	}
	// tampered marks refusals that only a change made outside the daemon
	// explains; `operator audit verify` reports their records.
	tampered := func(format string, args ...any) error {
		return refuse(store.Tampered+format, args...)
	}
	if p.ClusterID != cluster {
		return tampered("action %d was made for PD cluster %q, this daemon acts on cluster %s", p.ID, p.ClusterID, cluster)
	}
	a, err := e.cat.Lookup(p.ActionType)
	if err != nil {
		return refuse("%v", err)
	}
	need := e.policy.RequiredFor(a.Spec().Risk)
	digest := action.ActionDigest(p.ActionType, p.Params)
	proposer := humanProposer(p)
	valid := map[string]bool{}
	var problems []string
	expired := 0
	for _, r := range approvals {
		switch {
		case r.HashVersion != action.HashV2 || store.RecordHash(r) != r.Hash:
			problems = append(problems, fmt.Sprintf("record %d does not hash to its content", r.ID))
		case e.verifier != nil && !e.verifier.Verify(r.Hash, r.Signature):
			problems = append(problems, fmt.Sprintf("record %d is not signed by this daemon's audit key", r.ID))
		case r.ActionDigest != digest:
			problems = append(problems, fmt.Sprintf("record %d approved other params than the action now has", r.ID))
		case r.ClusterID != cluster:
			problems = append(problems, fmt.Sprintf("record %d approved it for cluster %q", r.ID, r.ClusterID))
		case r.TicketID != p.TicketID:
			problems = append(problems, fmt.Sprintf("record %d names ticket %d", r.ID, r.TicketID))
		case r.ActorRole != string(auth.Approver) && r.ActorRole != string(auth.Admin):
			problems = append(problems, fmt.Sprintf("record %d: %s has role %q, not approver or admin", r.ID, r.ApprovedBy, r.ActorRole))
		case proposer != "" && strings.EqualFold(r.ApprovedBy, proposer):
			problems = append(problems, fmt.Sprintf("record %d: %s proposed the action and cannot approve it", r.ID, r.ApprovedBy))
		case r.ExpiresAt == nil:
			problems = append(problems, fmt.Sprintf("record %d has no expiry", r.ID))
		case !r.ExpiresAt.After(now):
			expired++
		default:
			valid[strings.ToLower(r.ApprovedBy)] = true
		}
	}
	// Tampering is reported before anything that would merely expire it.
	if len(approvals) == 0 {
		return tampered("no approval record in the audit trail: the status was changed without an approval")
	}
	if len(problems) > 0 && len(valid) < need {
		return tampered("%d valid approval(s), %s-risk %s needs %d distinct approvers; %s", len(valid), a.Spec().Risk, p.ActionType, need, strings.Join(problems, "; "))
	}
	if ts == ticket.Resolved {
		return fmt.Errorf("%w: its ticket %d is resolved", store.ErrClaimExpired, p.TicketID)
	}
	if len(valid) >= need {
		return nil
	}
	if len(valid)+expired >= need && expired > 0 {
		return fmt.Errorf("%w: the approval expired before the executor claimed it (approval-ttl %s)", store.ErrClaimExpired, e.ttl())
	}
	names := make([]string, 0, len(valid))
	for n := range valid {
		names = append(names, n)
	}
	sort.Strings(names)
	return refuse("%d valid approval(s) (%s), %s-risk %s needs %d distinct approvers", len(valid), strings.Join(names, ", "), a.Spec().Risk, p.ActionType, need)
}

func (e *Executor) ttl() time.Duration {
	if e.policy.ApprovalTTL > 0 {
		return e.policy.ApprovalTTL
	}
	return store.DefaultApprovalTTL
}

// keep the import used when no verifier is configured.
var _ *auditkey.PublicKey
