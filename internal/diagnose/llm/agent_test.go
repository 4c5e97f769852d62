package llm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/diagnosetest"
	"github.com/tikvops/operator/internal/diagnose/llm"
	"github.com/tikvops/operator/internal/pd"
)

// fakeProvider answers turns from a script and records what the loop
// asked.
type fakeProvider struct {
	turns  []*llm.Turn
	forced []bool
	fed    [][]llm.ToolResult
}

func (p *fakeProvider) Label() string              { return "fake" }
func (p *fakeProvider) Classify(error) llm.Verdict { return llm.Verdict{} }
func (p *fakeProvider) Start(_, _ string, tools []llm.ToolDef) llm.Conversation {
	if tools[0].Name != llm.SubmitToolName {
		panic("submit_diagnosis must be the first tool")
	}
	return p
}
func (p *fakeProvider) RequestBytes(int64, bool) (int64, error) { return 4000, nil }
func (p *fakeProvider) Send(_ context.Context, _ int64, force bool) (*llm.Turn, error) {
	p.forced = append(p.forced, force)
	if len(p.turns) == 0 {
		return nil, errors.New("no more turns")
	}
	t := p.turns[0]
	p.turns = p.turns[1:]
	return t, nil
}
func (p *fakeProvider) Continue(_ *llm.Turn, r []llm.ToolResult) { p.fed = append(p.fed, r) }

type inv struct{}

func (inv) Store(context.Context, uint64) (*pd.StoreInfo, error) {
	return &pd.StoreInfo{Store: pd.StoreMeta{ID: 1, StateName: "Up"}}, nil
}
func (inv) Region(context.Context, uint64) (*pd.Region, error) {
	return nil, errors.New("no such region")
}
func (inv) Operators(context.Context) ([]pd.Operator, error) { return nil, nil }

func TestAgentLoop(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	submit := []byte(`{"summary":"s","root_cause":"r","evidence":["e"],"confidence":"low","risks":[],"no_action_reason":"no action: a human must look — test"}`)
	p := &fakeProvider{turns: []*llm.Turn{
		{Usage: diagnose.Usage{InputTokens: 1000, OutputTokens: 50}, PromptTokens: 1000,
			Calls: []llm.ToolCall{{ID: "a", Name: llm.ToolGetStore, Input: []byte(`{"store_id":1}`)}, {ID: "b", Name: llm.ToolGetRegion, Input: []byte(`{"region_id":9}`)}}},
		{Usage: diagnose.Usage{InputTokens: 1200, OutputTokens: 80}, Submit: submit},
	}}
	a := &llm.Agent{Provider: p, Name: "fake:m", MaxTokens: 1000,
		Common: llm.Common{MaxTurns: 3, Budget: 50000, Investigator: inv{}, RequestTimeout: 1e9}}
	d, err := a.Diagnose(context.Background(), diagnosetest.Context(cat))
	if err != nil {
		t.Fatal(err)
	}
	if d.Backend != "fake:m" || d.Usage.Total() != 2330 || len(p.forced) != 2 || p.forced[0] || p.forced[1] {
		t.Errorf("backend %q usage %+v forced %v", d.Backend, d.Usage, p.forced)
	}
	if len(p.fed) != 1 || len(p.fed[0]) != 2 || p.fed[0][0].IsError || !p.fed[0][1].IsError {
		t.Errorf("tool results %+v", p.fed)
	}

	// The last turn forces submit_diagnosis; no submission is invalid
	// output, with the tokens spent reported.
	p = &fakeProvider{turns: []*llm.Turn{{Usage: diagnose.Usage{InputTokens: 10}, Detail: "finish_reason \"stop\""}}}
	a.Provider, a.Common.Investigator = p, nil
	_, err = a.Diagnose(context.Background(), diagnosetest.Context(cat))
	if !errors.Is(err, diagnose.ErrInvalidOutput) || diagnose.Spent(err).InputTokens != 10 || !p.forced[0] {
		t.Errorf("err %v spent %+v forced %v", err, diagnose.Spent(err), p.forced)
	}
	p = &fakeProvider{turns: []*llm.Turn{{Stop: llm.StopInvalid, Detail: "response has no choices"}}}
	a.Provider = p
	if _, err = a.Diagnose(context.Background(), diagnosetest.Context(cat)); !errors.Is(err, diagnose.ErrInvalidOutput) {
		t.Errorf("no choices: %v", err)
	}
	p = &fakeProvider{}
	a.Provider = p
	if _, err = a.Diagnose(context.Background(), diagnosetest.Context(cat)); !errors.Is(err, diagnose.ErrUnavailable) {
		t.Errorf("send failure: %v", err)
	}
}
