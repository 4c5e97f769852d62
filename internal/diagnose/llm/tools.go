package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
)

// Investigator answers the read-only investigation tools from PD. Its
// method set matches *pd.Client (GET /pd/api/v1/store/{id},
// GET /pd/api/v1/region/id/{id}, GET /pd/api/v1/operators).
type Investigator interface {
	Store(ctx context.Context, id uint64) (*pd.StoreInfo, error)
	Region(ctx context.Context, id uint64) (*pd.Region, error)
	Operators(ctx context.Context) ([]pd.Operator, error)
}

// QueryFunc runs an instant PromQL query and renders the result as text
// (one "metric{labels} value" line per series).
type QueryFunc func(ctx context.Context, query string) (string, error)

// Investigation tool names.
const (
	ToolGetStore        = "get_store"
	ToolGetRegion       = "get_region"
	ToolListOperators   = "list_operators"
	ToolQueryPrometheus = "query_prometheus"
)

// DefaultMaxResultBytes bounds one tool result sent back to a model.
const DefaultMaxResultBytes = 16 << 10

// ToolDef is a provider-neutral tool definition: a name, a description and
// the JSON Schema of its input object.
type ToolDef struct {
	Name        string
	Description string
	// Schema is a JSON Schema object ("type": "object").
	Schema map[string]any
}

// Tools are the read-only investigation tools offered to a model. Results
// go through Redactor before the model sees them. The zero value offers no
// tools.
type Tools struct {
	// Investigator answers get_store, get_region and list_operators; nil
	// leaves them out.
	Investigator Investigator
	// Query answers query_prometheus; nil leaves it out.
	Query QueryFunc
	// Redactor redacts every result; required when any tool is offered.
	Redactor *diagnose.Redactor
	// MaxResultBytes truncates results; 0 means DefaultMaxResultBytes.
	MaxResultBytes int
}

// Enabled reports whether any investigation tool is offered.
func (t *Tools) Enabled() bool { return t != nil && (t.Investigator != nil || t.Query != nil) }

func idSchema(name, desc string) map[string]any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			name: map[string]any{"type": "integer", "minimum": 1, "description": desc},
		},
		"required":             []string{name},
		"additionalProperties": false,
	}
}

// Defs returns the definitions of the offered tools, in a fixed order.
func (t *Tools) Defs() []ToolDef {
	if !t.Enabled() {
		return nil
	}
	var defs []ToolDef
	if t.Investigator != nil {
		defs = append(defs,
			ToolDef{Name: ToolGetStore, Description: "Read one store from PD (GET /pd/api/v1/store/{id}): state, capacity, leader and region counts. Read-only.",
				Schema: idSchema("store_id", "PD store id")},
			ToolDef{Name: ToolGetRegion, Description: "Read one region from PD (GET /pd/api/v1/region/id/{id}): peers, leader, down and pending peers, size. Keys are redacted. Read-only.",
				Schema: idSchema("region_id", "PD region id")},
			ToolDef{Name: ToolListOperators, Description: "List PD's running operators (GET /pd/api/v1/operators). Read-only.",
				Schema: map[string]any{"type": "object", "properties": map[string]any{}, "additionalProperties": false}},
		)
	}
	if t.Query != nil {
		defs = append(defs, ToolDef{Name: ToolQueryPrometheus, Description: "Run an instant PromQL query against the cluster's Prometheus and return the series as text. Read-only.",
			Schema: map[string]any{
				"type":                 "object",
				"properties":           map[string]any{"query": map[string]any{"type": "string", "description": "PromQL expression"}},
				"required":             []string{"query"},
				"additionalProperties": false,
			}})
	}
	return defs
}

// ErrUnknownTool is returned by Call for a tool that is not offered.
var ErrUnknownTool = errors.New("unknown tool")

// Call runs tool name with the model-written input and returns the redacted
// result as text. An error is meant to be sent back to the model as a tool
// error (is_error), not to fail the diagnosis: bad input, an id PD does not
// know, PD unreachable, ErrUnknownTool.
func (t *Tools) Call(ctx context.Context, name string, input json.RawMessage) (string, error) {
	if !t.Enabled() {
		return "", fmt.Errorf("%w %q", ErrUnknownTool, name)
	}
	red := t.Redactor
	if red == nil {
		red = diagnose.NewRedactor(diagnose.RedactOptions{RedactAddresses: true, RedactLabels: true})
	}
	var out any
	switch {
	case name == ToolGetStore && t.Investigator != nil:
		id, err := idArg(input, "store_id")
		if err != nil {
			return "", err
		}
		s, err := t.Investigator.Store(ctx, id)
		if err != nil {
			return "", fmt.Errorf("get_store %d: %w", id, err)
		}
		out = red.Store(*s)
	case name == ToolGetRegion && t.Investigator != nil:
		id, err := idArg(input, "region_id")
		if err != nil {
			return "", err
		}
		g, err := t.Investigator.Region(ctx, id)
		if err != nil {
			return "", fmt.Errorf("get_region %d: %w", id, err)
		}
		out = red.Region(*g)
	case name == ToolListOperators && t.Investigator != nil:
		ops, err := t.Investigator.Operators(ctx)
		if err != nil {
			return "", fmt.Errorf("list_operators: %w", err)
		}
		for i := range ops {
			ops[i].Desc = red.Text(ops[i].Desc)
			ops[i].Brief = red.Text(ops[i].Brief)
		}
		out = nonNil(ops)
	case name == ToolQueryPrometheus && t.Query != nil:
		var in struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(input, &in); err != nil || strings.TrimSpace(in.Query) == "" {
			return "", fmt.Errorf("query_prometheus: input must be {\"query\": \"<PromQL>\"}")
		}
		res, err := t.Query(ctx, in.Query)
		if err != nil {
			return "", fmt.Errorf("query_prometheus: %w", err)
		}
		return t.limit(red.Text(res)), nil
	default:
		return "", fmt.Errorf("%w %q", ErrUnknownTool, name)
	}
	data, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("%s: render result: %w", name, err)
	}
	// Redact again as JSON: catches key and address fields the typed
	// redaction does not know (there are none today; this is a backstop).
	return t.limit(string(red.JSON(data))), nil
}

func (t *Tools) limit(s string) string {
	n := t.MaxResultBytes
	if n <= 0 {
		n = DefaultMaxResultBytes
	}
	return truncateBytes(s, n)
}

func idArg(input json.RawMessage, field string) (uint64, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(input, &m); err != nil || m[field] == nil {
		return 0, fmt.Errorf("input must be {%q: <id>}", field)
	}
	var n json.Number
	if err := json.Unmarshal(m[field], &n); err != nil {
		return 0, fmt.Errorf("%s must be a positive integer, got %s", field, clip(string(m[field])))
	}
	id, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%s must be a positive integer, got %s", field, n)
	}
	return id, nil
}
