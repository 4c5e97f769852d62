package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/tikvops/operator/internal/notify"
)

// TestFakeSlack: slack-go's real client posts a message with the
// operator's buttons to the fake, which records it; POST /approve then
// sends a block_actions callback that slack-go's SecretsVerifier accepts
// with the signing secret (and refuses with another), naming the action,
// the user and the message.
func TestFakeSlack(t *testing.T) {
	const secret = "demo-signing-secret"
	var (
		mu   sync.Mutex
		got  []slack.InteractionCallback
		bad  int
		good int
	)
	operator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		for _, s := range []string{"another-secret", secret} {
			sv, err := slack.NewSecretsVerifier(r.Header, s)
			if err != nil {
				t.Errorf("verifier: %v", err)
				return
			}
			_, _ = sv.Write(body)
			if sv.Ensure() != nil {
				bad++
				continue
			}
			good++
			form, _ := url.ParseQuery(string(body))
			var cb slack.InteractionCallback
			if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
				t.Errorf("payload: %v", err)
			}
			got = append(got, cb)
		}
	}))
	defer operator.Close()
	f := &fake{operator: operator.URL, path: "/api/v1/slack/interactions", secret: secret, user: "U111", client: &http.Client{Timeout: 5 * time.Second}}
	srv := httptest.NewServer(f.handler())
	defer srv.Close()

	api := slack.New("xoxb-demo", slack.OptionAPIURL(srv.URL+"/api/"))
	ok := slack.NewButtonBlockElement(notify.ActionApprove, "7", slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
	ch, ts, err := api.PostMessageContext(context.Background(), "C0123", slack.MsgOptionText("action 7 awaits approval", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("decision", ok)))
	if err != nil || ch != "C0123" || ts == "" {
		t.Fatalf("postMessage: %q %q %v", ch, ts, err)
	}
	resp, err := http.Get(srv.URL + "/messages")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []message
	_ = json.NewDecoder(resp.Body).Decode(&msgs)
	resp.Body.Close()
	if len(msgs) != 1 || msgs[0].Text != "action 7 awaits approval" || len(msgs[0].Buttons) != 1 || msgs[0].Buttons[0] != notify.ActionApprove+"=7" {
		t.Fatalf("recorded %+v", msgs)
	}

	if resp, err := http.Post(srv.URL+"/approve?action=8", "", nil); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("approve an action without a message: %v %v", resp, err)
	}
	resp, err = http.Post(srv.URL+"/approve?action=7", "", bytes.NewReader(nil))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("approve: %v %v", resp, err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if good != 1 || bad != 1 || len(got) != 1 {
		t.Fatalf("signature verified %d times, refused %d (want 1 and 1)", good, bad)
	}
	cb := got[0]
	if cb.Type != slack.InteractionTypeBlockActions || cb.User.ID != "U111" || cb.Channel.ID != "C0123" || cb.Container.MessageTs != ts ||
		len(cb.ActionCallback.BlockActions) != 1 || cb.ActionCallback.BlockActions[0].ActionID != notify.ActionApprove || cb.ActionCallback.BlockActions[0].Value != "7" {
		t.Errorf("callback %+v", cb)
	}

	// /hook checks the operator's webhook signature.
	f.hookSecret = "hook-secret"
	body := []byte(`{"id":"ticket/1/opened","text":"ticket 1 opened"}`)
	for _, c := range []struct {
		key  string
		want int
	}{{"hook-secret", http.StatusOK}, {"forged", http.StatusUnauthorized}} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hook", bytes.NewReader(body))
		req.Header.Set(notify.HeaderSignature, notify.Sign([]byte(c.key), body))
		req.Header.Set(notify.HeaderEvent, "ticket/1/opened")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != c.want {
			t.Errorf("/hook signed with %q: %v %v, want %d", c.key, resp, err, c.want)
		}
	}

	if err := loopback("0.0.0.0:9300", operator.URL); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback listen accepted: %v", err)
	}
	if err := loopback("127.0.0.1:9300", "http://10.0.0.1:9469"); err == nil {
		t.Error("non-loopback operator accepted")
	}
}
