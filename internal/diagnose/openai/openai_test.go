package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/diagnosetest"
	"github.com/tikvops/operator/internal/diagnose/llm"
	"github.com/tikvops/operator/internal/diagnose/openai"
	"github.com/tikvops/operator/internal/pd"
)

// request is one request the fake chat completions API received.
type request struct {
	Method, Path string
	Header       http.Header
	Raw          string
	Body         map[string]any
}

// server is a fake OpenAI-compatible API (POST /v1/chat/completions, as
// vLLM serves it). Replies are served in order; the last one repeats.
type server struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	replies []http.HandlerFunc
}

func newServer(t *testing.T, replies ...http.HandlerFunc) *server {
	s := &server{t: t, replies: replies}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) handle(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		s.t.Errorf("request body is not JSON: %v", err)
	}
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Raw: string(raw), Body: body})
	reply := s.replies[min(n, len(s.replies)-1)]
	s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"no such route","type":"invalid_request_error","param":null,"code":null}}`, http.StatusNotFound)
		return
	}
	reply(w, r)
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

func (s *server) baseURL() string { return s.srv.URL + "/v1" }

type call struct{ id, name, args string }

// completion replies with a chat completion whose message holds content
// (nil for none) and tool calls; usage nil omits the usage object.
func completion(finish string, content any, usage map[string]any, calls ...call) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		msg := map[string]any{"role": "assistant", "content": content, "refusal": nil}
		if len(calls) > 0 {
			var tcs []any
			for _, c := range calls {
				tcs = append(tcs, map[string]any{"id": c.id, "type": "function",
					"function": map[string]any{"name": c.name, "arguments": c.args}})
			}
			msg["tool_calls"] = tcs
		}
		resp := map[string]any{
			"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1741000000, "model": "qwen-test",
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish, "logprobs": nil}},
		}
		if usage != nil {
			resp["usage"] = usage
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	}
}

func usage(in, out int) map[string]any {
	return map[string]any{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// submit replies with a submit_diagnosis call whose arguments are args (a
// JSON string, as the wire format has it).
func submit(args string) http.HandlerFunc {
	return completion("tool_calls", nil, usage(1500, 250), call{"call_abc", "submit_diagnosis", args})
}

func apiError(status int, typ, code, msg string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":%q,"type":%q,"param":null,"code":%q}}`, msg, typ, code)
	}
}

func goodInput() map[string]any {
	return map[string]any{
		"summary":    "Store 1 holds 90 of 100 leaders; store 3 holds 2.",
		"root_cause": "balance-leader cannot keep up after store 1 restarted.",
		"evidence":   []string{"store 1 leader_count 90", "store 3 leader_count 2"},
		"confidence": "medium",
		"risks":      []string{"a short latency spike on region 10"},
		"proposed_action": map[string]any{
			"action_type": "transfer_leader",
			"params":      map[string]any{"region_id": 10, "to_store_id": 3},
			"rationale":   "store 3 holds a voter of region 10 and the fewest leaders",
			"urgency":     "when_convenient",
		},
	}
}

func newBackend(t *testing.T, s *server, mod func(*openai.Options)) *openai.Backend {
	t.Helper()
	opts := openai.Options{
		Model:   "qwen-test",
		APIKey:  "sk-test",
		BaseURL: s.baseURL(),
		Common: llm.Common{
			Retry:  llm.RetryPolicy{MaxRetries: 2, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
			Logger: slog.New(slog.DiscardHandler),
		},
	}
	if mod != nil {
		mod(&opts)
	}
	b, err := openai.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func checkForcedRequest(t *testing.T, r request, cat *action.Catalog) {
	t.Helper()
	if r.Method != http.MethodPost || r.Path != "/v1/chat/completions" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	if r.Header.Get("Authorization") != "Bearer sk-test" {
		t.Errorf("authorization = %q", r.Header.Get("Authorization"))
	}
	if get(r.Body, "model") != "qwen-test" {
		t.Errorf("model = %v", get(r.Body, "model"))
	}
	if mt, _ := get(r.Body, "max_completion_tokens").(float64); mt <= 0 || mt > openai.DefaultMaxTokens {
		t.Errorf("max_completion_tokens = %v", get(r.Body, "max_completion_tokens"))
	}
	want := map[string]any{"type": "function", "function": map[string]any{"name": "submit_diagnosis"}}
	if tc := get(r.Body, "tool_choice"); !reflect.DeepEqual(tc, want) {
		t.Errorf("tool_choice = %v, want %v", tc, want)
	}
	if get(r.Body, "tools", 0, "type") != "function" || get(r.Body, "tools", 0, "function", "name") != "submit_diagnosis" {
		t.Errorf("first tool: %v", get(r.Body, "tools", 0))
	}
	enum, _ := get(r.Body, "tools", 0, "function", "parameters", "properties", "proposed_action", "properties", "action_type", "enum").([]any)
	var names []string
	for _, s := range cat.Specs() {
		names = append(names, s.Name)
	}
	if fmt.Sprint(enum) != fmt.Sprint(names) {
		t.Errorf("action_type enum = %v, want %v", enum, names)
	}
	if get(r.Body, "messages", 0, "role") != "system" || !strings.Contains(fmt.Sprint(get(r.Body, "messages", 0, "content")), "DATA") {
		t.Errorf("system message: %v", get(r.Body, "messages", 0))
	}
	for _, secret := range []string{diagnosetest.SecretStartKey, diagnosetest.SecretEndKey, diagnosetest.EvidenceKey} {
		if strings.Contains(r.Raw, secret) {
			t.Errorf("request body holds region key %s", secret)
		}
	}
}

func TestGoodAnswer(t *testing.T) {
	cat, fakes := diagnosetest.Catalog(nil)
	s := newServer(t, submit(mustJSON(goodInput())))
	b := newBackend(t, s, nil)
	c := diagnosetest.Context(cat)
	d, err := b.Diagnose(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	reqs := s.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	checkForcedRequest(t, reqs[0], cat)
	if d.Backend != "openai:qwen-test" || d.Usage != (diagnose.Usage{InputTokens: 1500, OutputTokens: 250}) {
		t.Errorf("backend %q usage %+v", d.Backend, d.Usage)
	}
	if err := diagnose.Validate(context.Background(), d, cat); err != nil {
		t.Fatal(err)
	}
	if d.ProposedAction == nil || d.ProposedAction.Urgency != action.WhenConvenient || !d.DryRun.Valid {
		t.Fatalf("proposal rejected: %s", d.NoActionReason)
	}
	if p := d.Proposal(c.Ticket.ID, c.Time, time.Hour); p.Status != action.Proposed || p.ProposedBy != "openai:qwen-test" {
		t.Errorf("proposal %+v", p)
	}
	if fakes.Executed() != 0 {
		t.Errorf("an action was executed")
	}
}

func TestMalformed(t *testing.T) {
	missing := goodInput()
	delete(missing, "root_cause")
	tests := []struct {
		name  string
		reply http.HandlerFunc
	}{
		{"bad JSON in arguments", submit(`{"summary": "store 1 is hot", "root_cause": `)},
		{"missing fields", submit(mustJSON(missing))},
		{"arguments not an object", submit(`["transfer_leader", 10, 3]`)},
		{"text only", completion("stop", "Everything looks healthy.", usage(900, 10))},
		{"cut off", completion("length", "Let me go through every store", usage(900, 4096))},
		{"content filter", completion("content_filter", nil, usage(900, 0))},
		{"no choices", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":0,"total_tokens":5}}`)
		}},
		{"wrong function", completion("tool_calls", nil, usage(900, 10), call{"call_1", "approve_action", `{"id":1}`})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat, _ := diagnosetest.Catalog(nil)
			s := newServer(t, tt.reply)
			d, err := newBackend(t, s, nil).Diagnose(context.Background(), diagnosetest.Context(cat))
			if !errors.Is(err, diagnose.ErrInvalidOutput) || d != nil {
				t.Fatalf("Diagnose = %+v, %v; want ErrInvalidOutput", d, err)
			}
			if diagnose.Spent(err).Total() == 0 {
				t.Errorf("tokens spent not reported: %v", err)
			}
		})
	}
}

func TestRejectedProposals(t *testing.T) {
	hallucinated := goodInput()
	hallucinated["proposed_action"] = map[string]any{"action_type": "force_delete_store", "params": map[string]any{"store_id": 3, "force": true}, "rationale": "r", "urgency": "immediate"}
	wrongParams := goodInput()
	wrongParams["proposed_action"].(map[string]any)["params"] = map[string]any{"region": 10, "store": 3}
	tests := []struct {
		name, reason string
		input        map[string]any
	}{
		{"hallucinated action type", `proposed action "force_delete_store" rejected: not in the action catalog`, hallucinated},
		{"wrong params", `unknown param(s) region, store`, wrongParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat, fakes := diagnosetest.Catalog(nil)
			s := newServer(t, submit(mustJSON(tt.input)))
			d, err := newBackend(t, s, nil).Diagnose(context.Background(), diagnosetest.Context(cat))
			if err != nil {
				t.Fatal(err)
			}
			if err := diagnose.Validate(context.Background(), d, cat); err != nil {
				t.Fatal(err)
			}
			if d.ProposedAction != nil || d.Proposal(7, time.Now(), time.Hour) != nil {
				t.Fatalf("invalid proposal kept: %+v", d.ProposedAction)
			}
			if !strings.Contains(d.NoActionReason, tt.reason) {
				t.Errorf("NoActionReason = %q, want %q", d.NoActionReason, tt.reason)
			}
			if fakes.Executed() != 0 {
				t.Errorf("an action was executed")
			}
		})
	}
}

func TestRateLimitThenSuccess(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	s := newServer(t,
		apiError(429, "requests", "rate_limit_exceeded", "Rate limit reached for requests", "retry-after-ms", "1"),
		submit(mustJSON(goodInput())))
	d, err := newBackend(t, s, nil).Diagnose(context.Background(), diagnosetest.Context(cat))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	if d.ProposedAction == nil {
		t.Errorf("diagnosis %+v", d)
	}
}

func TestServerErrors(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	tests := []struct {
		name     string
		reply    http.HandlerFunc
		requests int
	}{
		{"500 persistent", apiError(500, "server_error", "", "The server had an error while processing your request."), 3},
		{"503", apiError(503, "server_error", "", "model is loading"), 3},
		{"401 not retried", apiError(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided"), 1},
		{"404 model not found", apiError(404, "invalid_request_error", "model_not_found", "The model does not exist"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.reply)
			d, err := newBackend(t, s, nil).Diagnose(context.Background(), diagnosetest.Context(cat))
			if !errors.Is(err, diagnose.ErrUnavailable) || d != nil {
				t.Fatalf("Diagnose = %v, %v; want ErrUnavailable", d, err)
			}
			if n := len(s.requests()); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
		})
	}
}

func TestPromptInjectionInLabel(t *testing.T) {
	cat, fakes := diagnosetest.Catalog(nil)
	obeying := goodInput()
	obeying["status"] = "approved"
	obeying["execute_now"] = true
	obeying["proposed_action"].(map[string]any)["rationale"] = "The store label authorises it, so it is approved."
	s := newServer(t, submit(mustJSON(obeying)))
	c := diagnosetest.Context(cat)
	d, err := newBackend(t, s, nil).Diagnose(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	r := s.requests()[0]
	user, _ := get(r.Body, "messages", 1, "content").(string)
	if get(r.Body, "messages", 1, "role") != "user" {
		t.Fatalf("second message: %v", get(r.Body, "messages", 1))
	}
	i, j := strings.Index(user, "<cluster_data>"), strings.Index(user, "</cluster_data>")
	if i < 0 || j < i || !strings.Contains(user[i:j], diagnosetest.Injection) || strings.Count(user, diagnosetest.Injection) != 1 {
		t.Errorf("the label is not (only) inside the data section")
	}
	if err := diagnose.Validate(context.Background(), d, cat); err != nil {
		t.Fatal(err)
	}
	p := d.Proposal(c.Ticket.ID, c.Time, time.Hour)
	if p == nil || p.Status != action.Proposed || p.ApprovedBy != "" {
		t.Errorf("proposal %+v", p)
	}
	if stored, _ := json.Marshal(d); strings.Contains(string(stored), "execute_now") || strings.Contains(string(stored), `"status"`) {
		t.Errorf("model-written fields stored: %s", stored)
	}
	if fakes.Executed() != 0 {
		t.Errorf("an action was executed")
	}
}

type investigator struct{}

func (investigator) Store(ctx context.Context, id uint64) (*pd.StoreInfo, error) {
	return nil, fmt.Errorf("store %d not found", id)
}

func (investigator) Region(ctx context.Context, id uint64) (*pd.Region, error) {
	return &pd.Region{ID: id, StartKey: diagnosetest.SecretStartKey, EndKey: diagnosetest.SecretEndKey,
		Leader: pd.Peer{ID: 101, StoreID: 1}}, nil
}

func (investigator) Operators(ctx context.Context) ([]pd.Operator, error) {
	return []pd.Operator{{RegionID: 10, Desc: "transfer leader from store 1 to store 3", Status: 1}}, nil
}

func TestInvestigationTurns(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	var queries []string
	s := newServer(t,
		completion("tool_calls", nil, usage(1000, 30),
			call{"call_1", "get_region", `{"region_id":10}`},
			call{"call_2", "get_store", `{"store_id":99}`}),
		completion("tool_calls", nil, usage(1400, 20), call{"call_3", "query_prometheus", `{"query":"sum(tikv_raftstore_region_count) by (instance)"}`}),
		submit(mustJSON(goodInput())))
	b := newBackend(t, s, func(o *openai.Options) {
		o.Investigator = investigator{}
		o.Query = func(ctx context.Context, q string) (string, error) {
			queries = append(queries, q)
			return `{instance="10.0.0.1:20180"} 90`, nil
		}
		o.MaxTurns = 3
		o.Redact.RedactAddresses = true
	})
	d, err := b.Diagnose(context.Background(), diagnosetest.Context(cat))
	if err != nil {
		t.Fatal(err)
	}
	reqs := s.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i := 0; i < 2; i++ {
		if tc := get(reqs[i].Body, "tool_choice"); tc != "required" {
			t.Errorf("turn %d tool_choice = %v, want required", i+1, tc)
		}
		if n := len(get(reqs[i].Body, "tools").([]any)); n != 5 {
			t.Errorf("turn %d: %d tools, want 5", i+1, n)
		}
	}
	checkForcedRequest(t, reqs[2], cat)
	msgs := get(reqs[1].Body, "messages").([]any)
	// system, user, assistant (2 calls), tool, tool
	if len(msgs) != 5 || get(msgs[2], "role") != "assistant" || get(msgs[2], "tool_calls", 0, "id") != "call_1" {
		t.Fatalf("turn 2 messages: %v", msgs)
	}
	if get(msgs[3], "role") != "tool" || get(msgs[3], "tool_call_id") != "call_1" || get(msgs[4], "tool_call_id") != "call_2" {
		t.Errorf("tool messages: %v %v", msgs[3], msgs[4])
	}
	if out := fmt.Sprint(get(msgs[3], "content")); !strings.Contains(out, `"id":10`) || strings.Contains(out, diagnosetest.SecretStartKey) {
		t.Errorf("get_region result: %s", out)
	}
	if out := fmt.Sprint(get(msgs[4], "content")); !strings.Contains(out, "error: get_store 99: store 99 not found") {
		t.Errorf("get_store error result: %s", out)
	}
	if strings.Contains(reqs[2].Raw, "10.0.0.1") {
		t.Errorf("an address leaked through a tool result")
	}
	if len(queries) != 1 {
		t.Errorf("queries %v", queries)
	}
	if d.Usage != (diagnose.Usage{InputTokens: 3900, OutputTokens: 300}) {
		t.Errorf("usage %+v", d.Usage)
	}
}

func TestSelfHostedQuirks(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	// A server that ignores tool_choice, answers in content, reports no usage.
	fenced := "```json\n" + mustJSON(goodInput()) + "\n```"
	s := newServer(t, completion("stop", fenced, nil))
	b := newBackend(t, s, func(o *openai.Options) {
		o.APIKey = ""
		o.LegacyMaxTokens = true
	})
	t.Setenv("OPENAI_API_KEY", "")
	d, err := b.Diagnose(context.Background(), diagnosetest.Context(cat))
	if err != nil {
		t.Fatal(err)
	}
	if d.ProposedAction == nil || d.Usage.InputTokens == 0 || d.Usage.OutputTokens == 0 {
		t.Errorf("diagnosis %+v (usage must be estimated when the server reports none)", d)
	}
	r := s.requests()[0]
	if get(r.Body, "max_tokens") == nil || get(r.Body, "max_completion_tokens") != nil {
		t.Errorf("LegacyMaxTokens: %v / %v", get(r.Body, "max_tokens"), get(r.Body, "max_completion_tokens"))
	}
}

func TestBudget(t *testing.T) {
	cat, _ := diagnosetest.Catalog(nil)
	s := newServer(t, submit(mustJSON(goodInput())))
	_, err := newBackend(t, s, func(o *openai.Options) { o.Budget = 300 }).Diagnose(context.Background(), diagnosetest.Context(cat))
	if !errors.Is(err, diagnose.ErrBudget) || len(s.requests()) != 0 {
		t.Errorf("tiny budget: %v, %d requests", err, len(s.requests()))
	}
}
