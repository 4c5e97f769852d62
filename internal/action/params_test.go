package action

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func ptr(f float64) *float64 { return &f }

var testSpec = Spec{
	Name: "split_region",
	Params: []Param{
		{Name: "region_id", Type: ParamInteger, Required: true, Min: ptr(1), Description: "region id"},
		{Name: "policy", Type: ParamString, Required: true, Enum: []string{"approximate", "scan", "usekey"}},
		{Name: "keys", Type: ParamStringList},
		{Name: "ratio", Type: ParamNumber, Min: ptr(0), Max: ptr(1)},
	},
}

func TestValidateParams(t *testing.T) {
	ok := []string{
		`{"region_id":2,"policy":"scan"}`,
		`{"region_id":2.0,"policy":"usekey","keys":["7480"]}`,
		`{"region_id":18446744073709551615,"policy":"scan","ratio":0.5}`,
		` {"region_id":2,"policy":"scan","keys":null} `,
	}
	for _, in := range ok {
		if err := ValidateParams(testSpec, json.RawMessage(in)); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
	bad := map[string]string{
		`{"policy":"scan"}`:                             `missing required param "region_id"`,
		`{"region_id":null,"policy":"scan"}`:            `missing required param "region_id"`,
		`{"region_id":"2","policy":"scan"}`:             `param "region_id": want an integer`,
		`{"region_id":2.5,"policy":"scan"}`:             `want an integer, got 2.5`,
		`{"region_id":-3,"policy":"scan"}`:              `below the minimum 1`,
		`{"region_id":0,"policy":"scan"}`:               `below the minimum 1`,
		`{"region_id":1e30,"policy":"scan"}`:            `out of 64-bit range`,
		`{"region_id":2,"policy":"half"}`:               `"half" is not one of approximate, scan, usekey`,
		`{"region_id":2,"policy":"scan","keys":"7480"}`: `want an array of strings`,
		`{"region_id":2,"policy":"scan","keys":[1]}`:    `want an array of strings`,
		`{"region_id":2,"policy":"scan","ratio":2}`:     `above the maximum 1`,
		`{"region_id":2,"policy":"scan","ratio":"x"}`:   `want a number`,
		`{"region_id":2,"policy":"scan","force":true}`:  `unknown param(s) force`,
		`[1,2]`:                              `must be a JSON object`,
		`"region_id"`:                        `must be a JSON object`,
		`{"region_id":2,`:                    `malformed JSON`,
		`{"region_id":2,"policy":"scan"} {}`: `trailing data`,
		``:                                   `missing required param`,
	}
	for in, want := range bad {
		err := ValidateParams(testSpec, json.RawMessage(in))
		if err == nil {
			t.Errorf("%s accepted", in)
			continue
		}
		if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrInvalidParams mentioning %q", in, err, want)
		}
		if !strings.Contains(err.Error(), "split_region") {
			t.Errorf("%s: error %q does not name the action", in, err)
		}
	}
}

func TestDecodeParams(t *testing.T) {
	var p struct {
		RegionID uint64   `json:"region_id"`
		Policy   string   `json:"policy"`
		Keys     []string `json:"keys"`
	}
	if err := DecodeParams(testSpec, json.RawMessage(`{"region_id":1e3,"policy":"usekey","keys":["AB"]}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.RegionID != 1000 || p.Policy != "usekey" || len(p.Keys) != 1 {
		t.Errorf("decoded %+v", p)
	}
	if err := DecodeParams(testSpec, json.RawMessage(`{"region_id":-1,"policy":"scan"}`), &p); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("negative id: %v", err)
	}
}

func TestParamsSchema(t *testing.T) {
	s := ParamsSchema(testSpec)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type       string                     `json:"type"`
		Required   []string                   `json:"required"`
		Additional bool                       `json:"additionalProperties"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "object" || got.Additional || strings.Join(got.Required, ",") != "region_id,policy" || len(got.Properties) != 4 {
		t.Errorf("schema = %s", b)
	}
	want := map[string]string{
		"region_id": `{"description":"region id","minimum":1,"type":"integer"}`,
		"policy":    `{"enum":["approximate","scan","usekey"],"type":"string"}`,
		"keys":      `{"items":{"type":"string"},"type":"array"}`,
		"ratio":     `{"maximum":1,"minimum":0,"type":"number"}`,
	}
	for k, w := range want {
		if string(got.Properties[k]) != w {
			t.Errorf("property %s = %s, want %s", k, got.Properties[k], w)
		}
	}
	empty := ParamsSchema(Spec{Name: "noop"})
	if b, _ := json.Marshal(empty); string(b) != `{"additionalProperties":false,"properties":{},"required":[],"type":"object"}` {
		t.Errorf("empty schema = %s", b)
	}
}

func FuzzValidateParams(f *testing.F) {
	f.Add([]byte(`{"region_id":2,"policy":"scan"}`))
	f.Add([]byte(`{"region_id":1e999,"policy":"x","keys":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p struct {
			RegionID uint64   `json:"region_id"`
			Policy   string   `json:"policy"`
			Keys     []string `json:"keys"`
			Ratio    float64  `json:"ratio"`
		}
		if err := DecodeParams(testSpec, data, &p); err == nil && p.RegionID == 0 {
			t.Fatalf("accepted region_id 0 from %s", data)
		}
	})
}
