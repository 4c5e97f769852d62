package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// fakeSlack plays Slack's Web API: it records every call (method and form)
// and answers like Slack.
type fakeSlack struct {
	mu    sync.Mutex
	calls []slackCall
	seq   int
	srv   *httptest.Server
}

type slackCall struct {
	Method string
	Form   url.Values
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		body := r.PostForm
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			b, _ := io.ReadAll(r.Body)
			body = url.Values{"json": {string(b)}}
		}
		m := strings.TrimPrefix(r.URL.Path, "/")
		f.mu.Lock()
		f.calls = append(f.calls, slackCall{Method: m, Form: body})
		f.seq++
		ts := "1700000000." + strconv.Itoa(100000+f.seq)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch m {
		case "chat.postMessage", "chat.update":
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C123", "ts": ts})
		case "chat.postEphemeral":
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "message_ts": ts})
		case "views.open":
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "view": map[string]any{"id": "V1"}})
		case "conversations.history":
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": []any{}})
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "unknown_method"})
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlack) methods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Method)
	}
	return out
}

func (f *fakeSlack) last(method string) url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.calls) - 1; i >= 0; i-- {
		if f.calls[i].Method == method {
			return f.calls[i].Form
		}
	}
	return nil
}

const secret = "8f742231b10e8888abcd99yyyzzz85a5"

func sign(body string, ts int64) (string, string) {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + strconv.FormatInt(ts, 10) + ":" + body))
	return "v0=" + hex.EncodeToString(m.Sum(nil)), strconv.FormatInt(ts, 10)
}

func post(t *testing.T, h http.Handler, payload any, ts int64, forge bool) *httptest.ResponseRecorder {
	t.Helper()
	b, _ := json.Marshal(payload)
	body := url.Values{"payload": {string(b)}}.Encode()
	sig, tss := sign(body, ts)
	if forge {
		sig = "v0=" + strings.Repeat("0", 64)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/slack/interactions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Signature", sig)
	req.Header.Set("X-Slack-Request-Timestamp", tss)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func button(user, actionID string, id int64) map[string]any {
	return map[string]any{"type": "block_actions", "trigger_id": "T" + user, "user": map[string]any{"id": user},
		"channel": map[string]any{"id": "C123"}, "container": map[string]any{"message_ts": "1700000000.100001"},
		"actions": []any{map[string]any{"block_id": "decision", "action_id": actionID, "value": strconv.FormatInt(id, 10), "type": "button"}}}
}

// setup: a real store with a diagnosed ticket and a proposal, a real
// executor (its catalog's PD is a closed loopback port: approving and
// rejecting need no PD), and a Slack sink pointed at the fake.
func setup(t *testing.T, risk string) (*store.Store, *executor.Executor, *Slack, *fakeSlack, int64) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "op.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	tk, _, err := st.Observe(ctx, ticket.Observation{Invariant: "leader_imbalance", Subject: "cluster", Severity: ticket.Warning,
		Summary: "leaders 5/0/0", Evidence: json.RawMessage(`{"leaders":{"1":5,"4":0}}`)}, now)
	if err != nil {
		t.Fatal(err)
	}
	typ, params := "transfer_leader", `{"region_id":5,"to_store_id":4}`
	if risk == "high" {
		typ, params = "remove_peer", `{"region_id":5,"store_id":4}`
	}
	id, err := st.SaveDiagnosis(ctx, tk.ID, store.DiagnosisInput{Markdown: "m", Backend: "rules",
		JSON:     json.RawMessage(`{"summary":"leaders skewed","dry_run":{"valid":true,"requests":[{"method":"POST","path":"/pd/api/v1/operators","body":{"name":"transfer-leader"}}]}}`),
		Proposal: &action.Proposal{ActionType: typ, Params: json.RawMessage(params), Rationale: "even out", Urgency: action.Soon, ExpiresAt: now.Add(time.Hour)}}, now)
	if err != nil {
		t.Fatal(err)
	}
	pdc, _ := pd.New([]string{"http://127.0.0.1:1"})
	ex := executor.New(executor.Options{Store: st, Catalog: tikv.NewCatalog(pdc)})
	fs := newFakeSlack(t)
	sk := NewSlack(config.SlackSink{Name: "team", Token: "xoxb-test", Channel: "C123", SigningSecret: secret, APIURL: fs.srv.URL,
		Users: []config.SlackUser{{SlackID: "UALICE", Name: "alice", Role: "approver"}, {SlackID: "UBOB", Name: "bob", Role: "approver"},
			{SlackID: "UVIEW", Name: "vic", Role: "viewer"}}}, "http://127.0.0.1:3000", st)
	return st, ex, sk, fs, id
}

func deliverAll(t *testing.T, st *store.Store, sk Sink) {
	t.Helper()
	d := New(Options{Store: st, Sinks: []Sink{sk}, Routes: map[string]config.Route{}})
	if err := d.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSlackApproveFromButton(t *testing.T) {
	st, ex, sk, fs, id := setup(t, "low")
	ctx := context.Background()
	deliverAll(t, st, sk)
	msg := fs.last("chat.postMessage")
	for _, want := range []string{"transfer_leader", "Approve", "operator_approve", "leaders skewed", "/pd/api/v1/operators", "127.0.0.1:3000/tickets/1", `"key":"proposal/1/awaiting_approval"`} {
		if !strings.Contains(msg.Encode(), url.QueryEscape(want)) && !strings.Contains(msg.Get("blocks")+msg.Get("metadata"), want) {
			t.Errorf("approval request lacks %q: %v", want, msg)
		}
	}
	h := NewInteractions(sk, ex, nil)
	now := time.Now().Unix()
	// Forged, unsigned, stale: refused, nothing approved.
	if rec := post(t, h, button("UALICE", ActionApprove, id), now, true); rec.Code != http.StatusUnauthorized {
		t.Errorf("forged signature: %d", rec.Code)
	}
	if rec := post(t, h, button("UALICE", ActionApprove, id), now-6*60, false); rec.Code != http.StatusUnauthorized {
		t.Errorf("stale request: %d", rec.Code)
	}
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("payload={}"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("unsigned: %d", rec.Code)
	}
	// A viewer and an unmapped user cannot approve.
	post(t, h, button("UVIEW", ActionApprove, id), now, false)
	post(t, h, button("UNOBODY", ActionApprove, id), now, false)
	if p, _ := st.Proposal(ctx, id); p.Status != action.Proposed {
		t.Fatalf("approved by a viewer or an unmapped user: %s", p.Status)
	}
	if e := fs.last("chat.postEphemeral"); !strings.Contains(e.Get("text"), "not mapped") {
		t.Errorf("unmapped user not told: %v", e)
	}
	// Alice approves: the executor's policy records alice via slack.
	ok := button("UALICE", ActionApprove, id)
	if rec := post(t, h, ok, now, false); rec.Code != http.StatusOK {
		t.Fatalf("approve: %d %s", rec.Code, rec.Body)
	}
	p, _ := st.Proposal(ctx, id)
	if p.Status != action.Approved || p.ApprovedBy != "alice" {
		t.Fatalf("after approve: %s by %q", p.Status, p.ApprovedBy)
	}
	recs, _ := st.Records(ctx, store.RecordFilter{ProposalID: id})
	if len(recs) != 1 || recs[0].ApprovedBy != "alice" || recs[0].ActorRole != "approver" {
		t.Errorf("approval record = %+v", recs)
	}
	up := fs.last("chat.update")
	if up.Get("ts") != "1700000000.100001" || !strings.Contains(up.Get("blocks"), "approved by alice via Slack") || strings.Contains(up.Get("blocks"), ActionApprove) {
		t.Errorf("message not updated in place without buttons: %v", up)
	}
	// The same signed request again: a replay, refused.
	if rec := post(t, h, ok, now, false); rec.Code != http.StatusUnauthorized {
		t.Errorf("replay: %d", rec.Code)
	}
	// Bob clicks later: first decision wins, bob is told.
	post(t, h, button("UBOB", ActionApprove, id), now, false)
	if e := fs.last("chat.postEphemeral"); !strings.Contains(e.Get("text"), "Not approved") {
		t.Errorf("second approver not told: %v", e)
	}
	// The approval event updates the same message, once delivered.
	deliverAll(t, st, sk)
	n := 0
	for _, m := range fs.methods() {
		if m == "chat.postMessage" {
			n++
		}
	}
	if n != 3 { // ticket opened, the request, and one thread reply for the approval
		t.Errorf("chat.postMessage calls = %d (%v)", n, fs.methods())
	}
	if th := fs.last("chat.postMessage"); th.Get("thread_ts") == "" {
		t.Errorf("approval event not posted in the thread: %v", th)
	}
}

func TestSlackTwoPersonRuleAndReject(t *testing.T) {
	st, ex, sk, fs, id := setup(t, "high")
	ctx := context.Background()
	deliverAll(t, st, sk)
	h := NewInteractions(sk, ex, nil)
	now := time.Now().Unix()
	post(t, h, button("UALICE", ActionApprove, id), now, false)
	p, _ := st.Proposal(ctx, id)
	if p.Status == action.Approved {
		t.Fatal("high-risk action approved by one person")
	}
	if up := fs.last("chat.update"); !strings.Contains(up.Get("blocks"), "1 of 2") || !strings.Contains(up.Get("blocks"), ActionApprove) {
		t.Errorf("partial approval not shown with buttons kept: %v", up.Get("blocks"))
	}
	// Bob rejects: a modal asks for the reason; an empty reason is refused.
	post(t, h, button("UBOB", ActionReject, id), now, false)
	v := fs.last("views.open")
	var open struct {
		TriggerID string `json:"trigger_id"`
		View      struct {
			PrivateMetadata string `json:"private_metadata"`
			CallbackID      string `json:"callback_id"`
		} `json:"view"`
	}
	if v != nil {
		_ = json.Unmarshal([]byte(v.Get("json")), &open)
	}
	if open.TriggerID != "TUBOB" {
		t.Fatalf("no modal opened: %v %v", fs.methods(), v)
	}
	view := open.View
	submit := func(reason string) *httptest.ResponseRecorder {
		return post(t, h, map[string]any{"type": "view_submission", "user": map[string]any{"id": "UBOB"},
			"view": map[string]any{"callback_id": view.CallbackID, "private_metadata": view.PrivateMetadata,
				"state": map[string]any{"values": map[string]any{BlockReason: map[string]any{ActionReason: map[string]any{"type": "plain_text_input", "value": reason}}}}}}, now, false)
	}
	if rec := submit("  "); !strings.Contains(rec.Body.String(), "reason is required") {
		t.Errorf("empty reason: %s", rec.Body)
	}
	if rec := submit("wrong store\x1b[2J"); rec.Code != http.StatusOK {
		t.Fatalf("reject: %d %s", rec.Code, rec.Body)
	}
	p, _ = st.Proposal(ctx, id)
	if p.Status != action.Rejected || p.RejectedBy != "bob" || strings.Contains(p.RejectionReason, "\x1b") {
		t.Errorf("after reject: %+v", p)
	}
	if up := fs.last("chat.update"); !strings.Contains(up.Get("blocks"), "rejected by bob") || strings.Contains(up.Get("blocks"), ActionApprove) {
		t.Errorf("reject not shown in place: %v", up.Get("blocks"))
	}
}

func TestSlackInDoubtNotPostedTwice(t *testing.T) {
	st, _, sk, fs, _ := setup(t, "low")
	ctx := context.Background()
	d := New(Options{Store: st, Sinks: []Sink{sk}})
	if _, err := st.Route(ctx, func(store.OutboxEvent) []string { return []string{"team"} }, time.Now()); err != nil {
		t.Fatal(err)
	}
	ds, _ := st.ClaimDeliveries(ctx, time.Now(), 10)
	for _, dl := range ds { // sent, then the process dies before recording it
		if _, err := sk.Deliver(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	// The fake now has the message in its history with its metadata key.
	fs.srv.Config.Handler = historyWith(fs, fs.srv.Config.Handler, "ticket/1/opened", "proposal/1/awaiting_approval")
	// The next start: recovery marks them in doubt.
	if n, err := st.RecoverDeliveries(ctx, time.Now()); err != nil || n != len(ds) {
		t.Fatalf("RecoverDeliveries = %d, %v", n, err)
	}
	if err := d.Once(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range fs.methods() {
		if m == "chat.postMessage" {
			n++
		}
	}
	if n != 2 { // the ticket_opened message and the approval request, once each
		t.Errorf("posts = %d: %v", n, fs.methods())
	}
	dl, _ := st.Deliveries(ctx, store.DeliveryFilter{})
	for _, x := range dl {
		if x.Status != store.DeliveryDelivered {
			t.Errorf("delivery %s/%s = %s", x.Event.Key, x.Sink, x.Status)
		}
	}
}

func historyWith(f *fakeSlack, next http.Handler, keys ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/conversations.history" {
			f.mu.Lock()
			f.calls = append(f.calls, slackCall{Method: "conversations.history"})
			f.mu.Unlock()
			var msgs []any
			for i, key := range keys {
				msgs = append(msgs, map[string]any{"ts": "1700000000.10000" + strconv.Itoa(i+1), "text": "x",
					"metadata": map[string]any{"event_type": MetadataType, "event_payload": map[string]any{"key": key}}})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs})
			return
		}
		next.ServeHTTP(w, r)
	})
}
