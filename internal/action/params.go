package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strings"
)

// ErrInvalidParams is wrapped by every error ValidateParams returns, so
// callers can tell bad input (from a model, a user or a database row) from
// a failure to reach the cluster.
var ErrInvalidParams = errors.New("invalid action params")

// ValidateParams checks raw (a JSON object, as stored in a proposal or
// produced by a model's tool call) against spec's parameters: it must be an
// object (empty input or null count as {}); every key must be a declared
// param; required params must be present and not null; integers must be
// JSON numbers with an integral value (1.0 is accepted, 1.5 and "1" are
// not) that fit in 64 bits; numbers must be JSON numbers; strings strings;
// string lists arrays of strings; enums and inclusive Min/Max bounds apply.
// The error wraps ErrInvalidParams and names the offending param.
func ValidateParams(spec Spec, raw json.RawMessage) error {
	_, err := parseParams(spec, raw)
	return err
}

// parseParams validates raw and returns its members keyed by name.
func parseParams(spec Spec, raw json.RawMessage) (map[string]json.RawMessage, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w for %s: %s", ErrInvalidParams, spec.Name, fmt.Sprintf(format, args...))
	}
	trimmed := bytes.TrimSpace(raw)
	members := map[string]json.RawMessage{}
	if len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		if trimmed[0] != '{' {
			return nil, fail("params must be a JSON object, got %s", truncate(string(trimmed), 60))
		}
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		if err := dec.Decode(&members); err != nil {
			return nil, fail("malformed JSON: %v", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, fail("trailing data after the params object")
		}
	}
	declared := make(map[string]Param, len(spec.Params))
	for _, p := range spec.Params {
		declared[p.Name] = p
	}
	var unknown []string
	for k := range members {
		if _, ok := declared[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fail("unknown param(s) %s (accepted: %s)", strings.Join(unknown, ", "), strings.Join(paramNames(spec), ", "))
	}
	// Values present first: a wrong value says more than a missing one.
	var missing []string
	for _, p := range spec.Params {
		v, ok := members[p.Name]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			if p.Required {
				missing = append(missing, fmt.Sprintf("%q (%s)", p.Name, p.Type))
			}
			delete(members, p.Name)
			continue
		}
		norm, err := checkValue(p, v)
		if err != nil {
			return nil, fail("param %q: %v", p.Name, err)
		}
		members[p.Name] = norm
	}
	if len(missing) > 0 {
		return nil, fail("missing required param %s", strings.Join(missing, ", "))
	}
	return members, nil
}

func paramNames(spec Spec) []string {
	names := make([]string, 0, len(spec.Params))
	for _, p := range spec.Params {
		names = append(names, p.Name)
	}
	return names
}

// checkValue validates one value and returns it normalised (integers in
// plain integer notation, so 1.0 and 1e3 decode into Go integers).
func checkValue(p Param, v json.RawMessage) (json.RawMessage, error) {
	switch p.Type {
	case ParamInteger:
		n, err := jsonNumber(v)
		if err != nil {
			return nil, fmt.Errorf("want an integer, got %s", truncate(string(v), 40))
		}
		f, ok := new(big.Float).SetString(n.String())
		if !ok || !f.IsInt() {
			return nil, fmt.Errorf("want an integer, got %s", n)
		}
		i, _ := f.Int(nil)
		if i.Cmp(big.NewInt(math.MinInt64)) < 0 || i.Cmp(new(big.Int).SetUint64(math.MaxUint64)) > 0 {
			return nil, fmt.Errorf("integer %s out of 64-bit range", n)
		}
		x, _ := f.Float64()
		if err := checkBounds(p, x, n.String()); err != nil {
			return nil, err
		}
		return json.RawMessage(i.String()), nil
	case ParamNumber:
		n, err := jsonNumber(v)
		if err != nil {
			return nil, fmt.Errorf("want a number, got %s", truncate(string(v), 40))
		}
		x, err := n.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %v", n, err)
		}
		if err := checkBounds(p, x, n.String()); err != nil {
			return nil, err
		}
		return v, nil
	case ParamString:
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("want a string, got %s", truncate(string(v), 40))
		}
		if len(p.Enum) > 0 && !containsString(p.Enum, s) {
			return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(p.Enum, ", "))
		}
		return v, nil
	case ParamStringList:
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, fmt.Errorf("want an array of strings, got %s", truncate(string(v), 40))
		}
		if len(p.Enum) > 0 {
			for _, s := range list {
				if !containsString(p.Enum, s) {
					return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(p.Enum, ", "))
				}
			}
		}
		return v, nil
	}
	return nil, fmt.Errorf("spec declares unsupported type %q", p.Type)
}

func jsonNumber(v json.RawMessage) (json.Number, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return "", err
	}
	n, ok := x.(json.Number)
	if !ok {
		return "", errors.New("not a number")
	}
	return n, nil
}

func checkBounds(p Param, x float64, text string) error {
	if p.Min != nil && x < *p.Min {
		return fmt.Errorf("%s is below the minimum %v", text, *p.Min)
	}
	if p.Max != nil && x > *p.Max {
		return fmt.Errorf("%s is above the maximum %v", text, *p.Max)
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// DecodeParams validates raw with ValidateParams and then decodes it into
// out (a pointer to a struct whose json tags name the params). Errors wrap
// ErrInvalidParams.
func DecodeParams(spec Spec, raw json.RawMessage, out any) error {
	members, err := parseParams(spec, raw)
	if err != nil {
		return err
	}
	clean, err := json.Marshal(members)
	if err != nil {
		return fmt.Errorf("%w for %s: %v", ErrInvalidParams, spec.Name, err)
	}
	if err := json.Unmarshal(clean, out); err != nil {
		return fmt.Errorf("%w for %s: %v", ErrInvalidParams, spec.Name, err)
	}
	return nil
}

// ParamsSchema renders spec's parameters as a JSON Schema object (draft
// 2020-12 subset understood by Anthropic and OpenAI tool definitions):
//
//	{"type":"object","properties":{...},"required":[...],"additionalProperties":false}
//
// Integers map to "integer", numbers to "number", strings to "string" (with
// "enum"), string lists to {"type":"array","items":{"type":"string"}}; Min
// and Max become "minimum" and "maximum". The result is a fresh map the
// caller may modify.
func ParamsSchema(spec Spec) map[string]any {
	props := make(map[string]any, len(spec.Params))
	required := []string{}
	for _, p := range spec.Params {
		s := map[string]any{}
		if p.Description != "" {
			s["description"] = p.Description
		}
		switch p.Type {
		case ParamStringList:
			items := map[string]any{"type": "string"}
			if len(p.Enum) > 0 {
				items["enum"] = append([]string(nil), p.Enum...)
			}
			s["type"] = "array"
			s["items"] = items
		default:
			s["type"] = string(p.Type)
			if len(p.Enum) > 0 {
				s["enum"] = append([]string(nil), p.Enum...)
			}
		}
		if p.Min != nil {
			s["minimum"] = *p.Min
		}
		if p.Max != nil {
			s["maximum"] = *p.Max
		}
		props[p.Name] = s
		if p.Required {
			required = append(required, p.Name)
		}
	}
	return map[string]any{
		"type":                 "object",
		"properties":           props,
		"required":             required,
		"additionalProperties": false,
	}
}
