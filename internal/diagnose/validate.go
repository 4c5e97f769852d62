package diagnose

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tikvops/operator/internal/action"
)

// NoReasonGiven is the NoActionReason Validate sets when a backend neither
// proposed an action nor said why.
const NoReasonGiven = "no action: a human must look (the backend proposed no action and gave no reason)"

// Validate makes d safe to store: a proposed action survives only if its
// type is in catalog, its urgency is immediate, soon or when_convenient, its
// params validate against the action's Spec, and the action's dry run
// against the live cluster is Valid. Anything else is not an error: the
// proposal is moved to d.RejectedAction, d.ProposedAction is set to nil and
// d.NoActionReason to "proposed action X rejected: <why>", so the diagnosis
// is kept and no proposal can be created from it. On success d.DryRun holds
// the dry run and d.NoActionReason is cleared. A diagnosis without a
// proposal and without a reason gets NoReasonGiven.
//
// Validate returns an error only when the dry run itself could not be made
// (e.g. PD unreachable); the proposal is then rejected too (d stays safe to
// store) and the error wraps ErrUnavailable, so a runner may instead retry
// the ticket later. It never approves or executes anything.
func Validate(ctx context.Context, d *Diagnosis, catalog *action.Catalog) error {
	return ValidateFor(ctx, d, catalog, "", nil)
}

// AllowList returns the action types a diagnosis of a ticket of invariant
// may propose (its family's allow-list) and whether the invariant has a
// family. rules.Allowed is the operator's list.
type AllowList func(invariant string) (actions []string, known bool)

// ValidateFor is Validate with the invariant family's allow-list: with a
// non-nil allow, a proposal whose type is not in allow(invariant) — or of
// an invariant without a family — is rejected the same way as one outside
// the catalog, before any dry run. A nil allow checks no family.
func ValidateFor(ctx context.Context, d *Diagnosis, catalog *action.Catalog, invariant string, allow AllowList) error {
	if d == nil {
		return errors.New("diagnose: validate: nil diagnosis")
	}
	pa := d.ProposedAction
	if pa == nil {
		if strings.TrimSpace(d.NoActionReason) == "" {
			d.NoActionReason = NoReasonGiven
		}
		return nil
	}
	d.DryRun = nil
	reject := func(format string, args ...any) {
		d.RejectedAction = pa
		d.ProposedAction = nil
		d.NoActionReason = fmt.Sprintf("proposed action %q rejected: ", pa.ActionType) + fmt.Sprintf(format, args...)
	}
	if catalog == nil {
		reject("no action catalog to check it against")
		return nil
	}
	if allow != nil {
		allowed, known := allow(invariant)
		switch {
		case !known:
			reject("invariant %q has no action family: its tickets may only page a human", invariant)
			return nil
		case !slices.Contains(allowed, pa.ActionType):
			list := "none: page a human"
			if len(allowed) > 0 {
				list = strings.Join(allowed, ", ")
			}
			reject("not allowed for invariant %q (allowed: %s)", invariant, list)
			return nil
		}
	}
	a, err := catalog.Lookup(pa.ActionType)
	if err != nil {
		reject("not in the action catalog (known: %s)", strings.Join(specNames(catalog.Specs()), ", "))
		return nil
	}
	if !ValidUrgency(pa.Urgency) {
		reject("urgency %q is not one of immediate, soon, when_convenient", pa.Urgency)
		return nil
	}
	params, err := normalizeParams(a.Spec(), pa.Params)
	if err != nil {
		reject("%v", err)
		return nil
	}
	pa.Params = params
	res, err := a.DryRun(ctx, params)
	if err != nil {
		reject("dry run could not be made: %v", err)
		return fmt.Errorf("%w: dry run of %s: %w", ErrUnavailable, pa.ActionType, err)
	}
	if !res.Valid {
		d.DryRun = &res
		reject("dry run not valid: %s", dryRunWhy(res))
		return nil
	}
	d.DryRun = &res
	d.NoActionReason = ""
	d.RejectedAction = nil
	return nil
}

func specNames(specs []action.Spec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

// normalizeParams validates raw against spec (action.DecodeParams) and
// returns it canonical: compact, keys sorted, integers in plain notation
// (10.0 becomes 10), null params dropped; empty or null raw is {}.
func normalizeParams(spec action.Spec, raw json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && t[0] != '{' && !bytes.Equal(t, []byte("null")) {
		return nil, fmt.Errorf("params must be a JSON object, got %s", truncate(string(t), 60))
	}
	members := map[string]json.RawMessage{}
	if err := action.DecodeParams(spec, raw, &members); err != nil {
		return nil, err
	}
	out, err := json.Marshal(members)
	if err != nil {
		return nil, fmt.Errorf("params: %v", err)
	}
	return out, nil
}

func dryRunWhy(res action.DryRunResult) string {
	var parts []string
	if res.Message != "" {
		parts = append(parts, res.Message)
	}
	for _, c := range res.Preconditions {
		if !c.Passed {
			parts = append(parts, c.Name+": "+c.Detail)
		}
	}
	if len(parts) == 0 {
		return "no reason given"
	}
	return strings.Join(parts, "; ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
