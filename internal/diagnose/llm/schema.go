package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
)

// SubmitToolName is the tool every model backend forces the model to call
// with its diagnosis.
const SubmitToolName = "submit_diagnosis"

// SubmitToolDescription describes the submit tool to the model.
const SubmitToolDescription = "Submit the diagnosis of the ticket. Call exactly once, at the end. " +
	"Propose at most one action from the catalog (proposed_action), or none with no_action_reason. " +
	"A proposal is only a proposal: it is validated and must be approved by a human."

// SubmitSchema returns the JSON Schema (draft 2020-12 subset, as a JSON
// object) of submit_diagnosis's input, generated from the action catalog:
// proposed_action.action_type is an enum of the catalog names, and a oneOf
// ties each name to the schema of its params (additionalProperties false,
// required params listed, integer bounds and string enums from the Spec).
// With an empty catalog, proposed_action is absent from the schema.
func SubmitSchema(specs []action.Spec) map[string]any {
	props := map[string]any{
		"summary": map[string]any{
			"type":        "string",
			"description": "One line: what is wrong.",
		},
		"root_cause": map[string]any{
			"type":        "string",
			"description": "Why it is wrong, in a few sentences.",
		},
		"evidence": map[string]any{
			"type":        "array",
			"items":       map[string]any{"type": "string"},
			"description": "Facts from the data that support the root cause (values, store and region ids).",
		},
		"confidence": map[string]any{
			"type": "string",
			"enum": []string{string(diagnose.ConfidenceLow), string(diagnose.ConfidenceMedium), string(diagnose.ConfidenceHigh)},
		},
		"risks": map[string]any{
			"type":        "array",
			"items":       map[string]any{"type": "string"},
			"description": "What could go wrong with the proposed action, or with doing nothing.",
		},
		"no_action_reason": map[string]any{
			"type":        "string",
			"description": "Required when no action is proposed: why, starting with \"no action: a human must look\".",
		},
	}
	if len(specs) > 0 {
		props["proposed_action"] = proposedActionSchema(specs)
	}
	return map[string]any{
		"type":                 "object",
		"properties":           props,
		"required":             []string{"summary", "root_cause", "evidence", "confidence", "risks"},
		"additionalProperties": false,
	}
}

func proposedActionSchema(specs []action.Spec) map[string]any {
	names := make([]string, len(specs))
	variants := make([]any, len(specs))
	var desc strings.Builder
	desc.WriteString("The one action to propose; omit it when proposing none. Params per action_type:")
	for i, s := range specs {
		names[i] = s.Name
		variants[i] = map[string]any{
			"properties": map[string]any{
				"action_type": map[string]any{"const": s.Name},
				"params":      action.ParamsSchema(s),
			},
		}
		fmt.Fprintf(&desc, " %s(%s);", s.Name, paramList(s))
	}
	return map[string]any{
		"type":        "object",
		"description": desc.String(),
		"properties": map[string]any{
			"action_type": map[string]any{"type": "string", "enum": names},
			"params":      map[string]any{"type": "object", "description": "Parameters of action_type, exactly as its schema says."},
			"rationale":   map[string]any{"type": "string", "description": "Why this action resolves the problem."},
			"urgency": map[string]any{
				"type": "string",
				"enum": []string{string(action.Immediate), string(action.Soon), string(action.WhenConvenient)},
			},
		},
		"required":             []string{"action_type", "params", "rationale", "urgency"},
		"additionalProperties": false,
		"oneOf":                variants,
	}
}

func paramList(s action.Spec) string {
	parts := make([]string, len(s.Params))
	for i, p := range s.Params {
		opt := ""
		if !p.Required {
			opt = "?"
		}
		parts[i] = p.Name + opt + " " + string(p.Type)
	}
	return strings.Join(parts, ", ")
}

// submission is the input of submit_diagnosis as a model writes it.
type submission struct {
	Summary        *string         `json:"summary"`
	RootCause      *string         `json:"root_cause"`
	Evidence       stringList      `json:"evidence"`
	Confidence     *string         `json:"confidence"`
	Risks          stringList      `json:"risks"`
	ProposedAction json.RawMessage `json:"proposed_action"`
	NoActionReason string          `json:"no_action_reason"`
}

type submittedAction struct {
	ActionType string          `json:"action_type"`
	Params     json.RawMessage `json:"params"`
	Rationale  string          `json:"rationale"`
	Urgency    string          `json:"urgency"`
}

// stringList accepts an array of strings, a single string, or null.
type stringList []string

func (l *stringList) UnmarshalJSON(data []byte) error {
	t := bytes.TrimSpace(data)
	if len(t) > 0 && t[0] == '"' {
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return err
		}
		*l = stringList{s}
		return nil
	}
	var a []string
	if err := json.Unmarshal(t, &a); err != nil {
		return err
	}
	*l = a
	return nil
}

// ParseSubmission turns submit_diagnosis's input into a Diagnosis (without
// Backend and Usage, which the backend sets). It returns an error wrapping
// diagnose.ErrInvalidOutput when input is not a JSON object, when summary,
// root_cause or confidence is missing or empty, when confidence is not low,
// medium or high, or when proposed_action is neither an object nor null.
// Whether the proposed action is acceptable is left to diagnose.Validate:
// an unknown type, bad params or a bad urgency are kept as written so that
// the rejection can be recorded.
func ParseSubmission(input []byte) (*diagnose.Diagnosis, error) {
	var s submission
	t := bytes.TrimSpace(input)
	if len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: %s input is not a JSON object: %s", diagnose.ErrInvalidOutput, SubmitToolName, clip(string(t)))
	}
	if err := json.Unmarshal(t, &s); err != nil {
		return nil, fmt.Errorf("%w: %s input: %v", diagnose.ErrInvalidOutput, SubmitToolName, err)
	}
	var missing []string
	if s.Summary == nil || strings.TrimSpace(*s.Summary) == "" {
		missing = append(missing, "summary")
	}
	if s.RootCause == nil || strings.TrimSpace(*s.RootCause) == "" {
		missing = append(missing, "root_cause")
	}
	if s.Confidence == nil || strings.TrimSpace(*s.Confidence) == "" {
		missing = append(missing, "confidence")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s input lacks %s", diagnose.ErrInvalidOutput, SubmitToolName, strings.Join(missing, ", "))
	}
	conf := diagnose.Confidence(strings.ToLower(strings.TrimSpace(*s.Confidence)))
	if !conf.Valid() {
		return nil, fmt.Errorf("%w: confidence %q is not low, medium or high", diagnose.ErrInvalidOutput, *s.Confidence)
	}
	d := &diagnose.Diagnosis{
		Summary:        strings.TrimSpace(*s.Summary),
		RootCause:      strings.TrimSpace(*s.RootCause),
		Evidence:       nonNil([]string(s.Evidence)),
		Confidence:     conf,
		Risks:          nonNil([]string(s.Risks)),
		NoActionReason: strings.TrimSpace(s.NoActionReason),
	}
	pa := bytes.TrimSpace(s.ProposedAction)
	switch {
	case len(pa) == 0 || bytes.Equal(pa, []byte("null")):
	case pa[0] == '{':
		var a submittedAction
		if err := json.Unmarshal(pa, &a); err != nil {
			return nil, fmt.Errorf("%w: proposed_action: %v", diagnose.ErrInvalidOutput, err)
		}
		if a.ActionType == "" && len(bytes.TrimSpace(a.Params)) == 0 && a.Rationale == "" {
			break // an empty object: nothing proposed
		}
		d.ProposedAction = &diagnose.ProposedAction{
			ActionType: strings.TrimSpace(a.ActionType),
			Params:     unquoteParams(a.Params),
			Rationale:  strings.TrimSpace(a.Rationale),
			Urgency:    action.Urgency(strings.ToLower(strings.TrimSpace(a.Urgency))),
		}
	default:
		return nil, fmt.Errorf("%w: proposed_action must be an object or null, got %s", diagnose.ErrInvalidOutput, clip(string(pa)))
	}
	return d, nil
}

// unquoteParams accepts params a model double-encoded as a JSON string
// holding a JSON object; anything else is returned as is.
func unquoteParams(raw json.RawMessage) json.RawMessage {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '"' {
		return t
	}
	var s string
	if json.Unmarshal(t, &s) != nil {
		return t
	}
	inner := bytes.TrimSpace([]byte(s))
	if len(inner) > 0 && inner[0] == '{' && json.Valid(inner) {
		return inner
	}
	return t
}

func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "..."
}
