// Command fake-slack plays Slack on loopback for trying the operator's Slack
// sink without a Slack workspace: it serves the Web API methods the sink
// calls (chat.postMessage, chat.update, chat.postEphemeral, views.open,
// conversations.history), records and prints every message, and sends the
// operator signed interaction callbacks as if a user had clicked Approve or
// Reject. Point a [[notify.slack]] sink's api-url at it (README.md, "Watch
// the notifications").
//
//	fake-slack --listen 127.0.0.1:9300 --operator http://127.0.0.1:9469 --signing-secret S --user U111
//	curl -s -XPOST '127.0.0.1:9300/approve?action=1'
//	curl -s -XPOST '127.0.0.1:9300/reject?action=2&reason=not+tonight'
//	curl -s 127.0.0.1:9300/messages
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/notify"
)

// message is one recorded Web API call that posts or changes a message.
type message struct {
	Method   string         `json:"method"`
	Channel  string         `json:"channel"`
	TS       string         `json:"ts"`
	ThreadTS string         `json:"thread_ts,omitempty"`
	User     string         `json:"user,omitempty"` // chat.postEphemeral
	Text     string         `json:"text"`
	Buttons  []string       `json:"buttons,omitempty"` // action_id=value
	Metadata map[string]any `json:"metadata,omitempty"`
	View     map[string]any `json:"view,omitempty"` // views.open
}

type fake struct {
	operator, secret, user, path string
	hookSecret                   string
	client                       *http.Client

	mu   sync.Mutex
	seq  int
	msgs []message
}

func main() {
	f := &fake{client: &http.Client{Timeout: 30 * time.Second}}
	listen := flag.String("listen", "127.0.0.1:9300", "loopback address of the fake Web API (api-url = http://ADDR/api/)")
	flag.StringVar(&f.operator, "operator", "http://127.0.0.1:9469", "the operator's HTTP address (its [server] listen)")
	flag.StringVar(&f.path, "callback-path", "/api/v1/slack/interactions", "the operator's interaction callback path")
	flag.StringVar(&f.secret, "signing-secret", os.Getenv("FAKE_SLACK_SIGNING_SECRET"), "the sink's signing-secret (or $FAKE_SLACK_SIGNING_SECRET)")
	flag.StringVar(&f.user, "user", "U111", "Slack user id that clicks (a slack-id of the sink's users)")
	flag.StringVar(&f.hookSecret, "webhook-secret", os.Getenv("FAKE_SLACK_WEBHOOK_SECRET"), "secret of a [[notify.webhook]] sink posting to /hook: its X-Operator-Signature is checked")
	flag.Parse()
	if err := loopback(*listen, f.operator); err != nil {
		log.Fatal(err)
	}
	log.SetFlags(log.Ltime)
	log.Printf("fake Slack Web API on http://%s/api/ ; callbacks go to %s%s as user %s", *listen, f.operator, f.path, f.user)
	log.Fatal((&http.Server{Addr: *listen, Handler: f.handler(), ReadHeaderTimeout: 5 * time.Second}).ListenAndServe())
}

// handler serves the Web API (/api/METHOD), GET /messages, POST /approve,
// POST /reject, and POST /hook (a generic webhook receiver).
func (f *fake) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", f.api)
	mux.HandleFunc("GET /messages", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, f.msgs)
	})
	mux.HandleFunc("POST /hook", f.hook)
	mux.HandleFunc("POST /approve", func(w http.ResponseWriter, r *http.Request) { f.decide(w, r, notify.ActionApprove) })
	mux.HandleFunc("POST /reject", func(w http.ResponseWriter, r *http.Request) { f.decide(w, r, notify.ActionReject) })
	return mux
}

// loopback refuses anything but 127.0.0.0/8 and ::1: this is a test tool.
func loopback(listen, operator string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", listen, err)
	}
	u, err := url.Parse(operator)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("--operator %q: not a URL", operator)
	}
	for _, h := range []string{host, u.Hostname()} {
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%q is not a loopback address: fake-slack only talks to 127.0.0.0/8", h)
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// fields reads a Web API call's arguments: form-encoded or JSON.
func fields(r *http.Request) map[string]any {
	out := map[string]any{}
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(b, &out)
		return out
	}
	form, _ := url.ParseQuery(string(b))
	for k := range form {
		out[k] = form.Get(k)
	}
	return out
}

// object returns a field that holds JSON (a string in forms, an object in
// JSON bodies) decoded.
func object(v any) any {
	if s, ok := v.(string); ok {
		var o any
		if json.Unmarshal([]byte(s), &o) == nil {
			return o
		}
	}
	return v
}

// buttons collects action_id=value of the buttons in blocks.
func buttons(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		if id, ok := x["action_id"].(string); ok && x["type"] == "button" {
			*out = append(*out, fmt.Sprintf("%s=%v", id, x["value"]))
		}
		for _, e := range x {
			buttons(e, out)
		}
	case []any:
		for _, e := range x {
			buttons(e, out)
		}
	}
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// api serves /api/METHOD like Slack's Web API.
func (f *fake) api(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	in := fields(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	ts := fmt.Sprintf("%d.%06d", time.Now().Unix(), f.seq)
	m := message{Method: method, Channel: str(in, "channel"), TS: ts, ThreadTS: str(in, "thread_ts"), User: str(in, "user"), Text: str(in, "text")}
	buttons(object(in["blocks"]), &m.Buttons)
	if md, ok := object(in["metadata"]).(map[string]any); ok {
		m.Metadata = md
	}
	switch method {
	case "chat.postMessage", "chat.update", "chat.postEphemeral", "views.open":
		if method == "chat.update" {
			m.TS = str(in, "ts")
		}
		if method == "views.open" {
			m.View, _ = object(in["view"]).(map[string]any)
		}
		f.msgs = append(f.msgs, m)
		log.Printf("%s channel=%s ts=%s thread=%s %q buttons=%v", method, m.Channel, m.TS, m.ThreadTS, m.Text, m.Buttons)
	}
	switch method {
	case "chat.postMessage", "chat.update":
		writeJSON(w, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS})
	case "chat.postEphemeral":
		writeJSON(w, map[string]any{"ok": true, "message_ts": ts})
	case "views.open":
		writeJSON(w, map[string]any{"ok": true, "view": map[string]any{"id": "V" + strconv.Itoa(f.seq)}})
	case "conversations.history":
		var hist []map[string]any
		for i := len(f.msgs) - 1; i >= 0; i-- {
			if x := f.msgs[i]; x.Method == "chat.postMessage" && x.Channel == str(in, "channel") {
				hist = append(hist, map[string]any{"type": "message", "ts": x.TS, "text": x.Text, "metadata": x.Metadata})
			}
		}
		writeJSON(w, map[string]any{"ok": true, "messages": hist})
	default:
		writeJSON(w, map[string]any{"ok": false, "error": "unknown_method"})
	}
}

// hook receives the operator's generic webhook: it checks the HMAC
// signature with --webhook-secret (401 when it does not match) and prints
// the event.
func (f *fake) hook(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	sig := r.Header.Get(notify.HeaderSignature)
	if f.hookSecret != "" && !notify.VerifySignature([]byte(f.hookSecret), b, sig) {
		log.Printf("webhook %s REFUSED: bad %s", r.Header.Get(notify.HeaderEvent), notify.HeaderSignature)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(b, &ev)
	log.Printf("webhook %s (%s, signature ok=%v): %q", r.Header.Get(notify.HeaderEvent), r.Header.Get(notify.HeaderKind), f.hookSecret != "", ev.Text)
	f.mu.Lock()
	f.msgs = append(f.msgs, message{Method: "webhook", Text: ev.Text, Metadata: map[string]any{"key": r.Header.Get(notify.HeaderEvent), "kind": r.Header.Get(notify.HeaderKind)}})
	f.mu.Unlock()
}

// post signs payload with the signing secret (v0 HMAC-SHA256 of
// "v0:TS:BODY") and posts it to the operator's callback.
func (f *fake) post(payload any) (string, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	body := url.Values{"payload": {string(b)}}.Encode()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(f.secret))
	mac.Write([]byte("v0:" + ts + ":" + body))
	req, err := http.NewRequest(http.MethodPost, strings.TrimRight(f.operator, "/")+f.path, bytes.NewReader([]byte(body)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := f.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Sprintf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(out))), nil
}

// decide clicks Approve or Reject on the message carrying action ?action=ID;
// for Reject it then submits the reason modal with ?reason=TEXT.
func (f *fake) decide(w http.ResponseWriter, r *http.Request, actionID string) {
	id := r.URL.Query().Get("action")
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		http.Error(w, "?action=ID (a number) is required", http.StatusBadRequest)
		return
	}
	user := r.URL.Query().Get("user")
	if user == "" {
		user = f.user
	}
	f.mu.Lock()
	var msg *message
	views := 0
	for i := range f.msgs {
		x := &f.msgs[i]
		if x.Method == "views.open" {
			views++
		}
		for _, b := range x.Buttons {
			if x.Method == "chat.postMessage" && b == actionID+"="+id {
				msg = x
			}
		}
	}
	f.mu.Unlock()
	if msg == nil {
		http.Error(w, "no message with a "+actionID+" button for action "+id+" (GET /messages)", http.StatusNotFound)
		return
	}
	trigger := "trigger-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	res, err := f.post(map[string]any{"type": "block_actions", "trigger_id": trigger, "user": map[string]any{"id": user},
		"channel": map[string]any{"id": msg.Channel}, "container": map[string]any{"type": "message", "message_ts": msg.TS},
		"actions": []any{map[string]any{"block_id": "decision", "action_id": actionID, "value": id, "type": "button"}}})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	log.Printf("%s on action %s by %s: operator answered %s", actionID, id, user, res)
	if actionID != notify.ActionReject {
		fmt.Fprintln(w, res)
		return
	}
	// The operator opens a modal asking for the reason (views.open).
	view, err := f.waitView(views)
	if err != nil {
		http.Error(w, res+"; "+err.Error(), http.StatusBadGateway)
		return
	}
	reason := r.URL.Query().Get("reason")
	res2, err := f.post(map[string]any{"type": "view_submission", "user": map[string]any{"id": user},
		"view": map[string]any{"id": "V1", "callback_id": view["callback_id"], "private_metadata": view["private_metadata"],
			"state": map[string]any{"values": map[string]any{notify.BlockReason: map[string]any{notify.ActionReason: map[string]any{"type": "plain_text_input", "value": reason}}}}}})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	log.Printf("reason submitted for action %s: operator answered %s", id, res2)
	fmt.Fprintln(w, res+"\n"+res2)
}

// waitView waits (5 s) for a views.open beyond the first n.
func (f *fake) waitView(n int) (map[string]any, error) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		f.mu.Lock()
		seen := 0
		for _, x := range f.msgs {
			if x.Method == "views.open" {
				if seen++; seen > n {
					f.mu.Unlock()
					return x.View, nil
				}
			}
		}
		f.mu.Unlock()
	}
	return nil, errors.New("the operator opened no reason modal within 5s")
}
