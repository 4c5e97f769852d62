package config

import (
	"os"
	"strings"
	"testing"
)

const notifySample = `
[pd]
endpoints = ["http://127.0.0.1:2379"]

[notify]
console-url = "http://127.0.0.1:3000"
max-attempts = 5
backoff = "1s"
max-backoff = "1m"

[[notify.webhook]]
name = "oncall-bot"
url = "http://127.0.0.1:9000/hook"
secret = "hook-secret"
route = { kinds = ["proposal_awaiting_approval"], min-severity = "critical" }

[[notify.slack]]
name = "team-a"
token = "xoxb-1"
channel = "C0123456"
signing-secret = "slack-signing"
api-url = "http://127.0.0.1:9300/api/"
users = [ { slack-id = "U111", name = "alice", role = "approver" } ]

[[notify.alertmanager]]
name = "am"
url = "http://127.0.0.1:9093"

[alerting]
webhook-token = "am-token"
require-token = true
`

// TestNotifyConfig decodes [notify] and [alerting], masks their secrets,
// and refuses bad sinks with a reason naming the sink.
func TestNotifyConfig(t *testing.T) {
	c, err := Resolve(writeFile(t, notifySample), envOf(nil), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	n := c.Notify
	if len(n.Webhooks) != 1 || n.Webhooks[0].Route.MinSeverity != "critical" || len(n.Slack) != 1 || n.Slack[0].Users[0].Name != "alice" ||
		len(n.Alertmanager) != 1 || n.MaxAttempts != 5 || n.Backoff.Duration.String() != "1s" || !c.Alerting.RequireToken {
		t.Fatalf("decoded %+v %+v", n, c.Alerting)
	}
	m := c.Masked()
	for _, secret := range []string{m.Notify.Webhooks[0].Secret, m.Notify.Slack[0].Token, m.Notify.Slack[0].SigningSecret, m.Alerting.WebhookToken} {
		if strings.Contains(secret, "secret") || strings.Contains(secret, "xoxb") || strings.Contains(secret, "signing") || strings.Contains(secret, "am-token") {
			t.Errorf("secret not masked: %q", secret)
		}
	}
	if c.Notify.Slack[0].Token != "xoxb-1" {
		t.Error("Masked changed the original")
	}

	bad := []struct{ name, from, to, want string }{
		{"slack name with slash", `name = "team-a"`, `name = "team/a"`, "must be 1 to 63 letters"},
		{"slack name with dots", `name = "team-a"`, `name = ".."`, "must be 1 to 63 letters"},
		{"slack name with space", `name = "team-a"`, `name = "team a"`, "must be 1 to 63 letters"},
		{"slack name empty", `name = "team-a"`, `name = ""`, "a name is required"},
		{"duplicate sink", `name = "am"`, `name = "oncall-bot"`, "duplicate sink name"},
		{"webhook url", `url = "http://127.0.0.1:9000/hook"`, `url = "ftp://x/hook"`, "must be an http(s) URL"},
		{"alertmanager url", `url = "http://127.0.0.1:9093"`, `url = "127.0.0.1:9093"`, "must be an http(s) URL"},
		{"min-severity", `min-severity = "critical"`, `min-severity = "urgent"`, "min-severity"},
		{"slack without token", `token = "xoxb-1"`, `token = ""`, "token and channel are required"},
		{"slack user role", `role = "approver"`, `role = "boss"`, "U111"},
		{"console url", `console-url = "http://127.0.0.1:3000"`, `console-url = "console"`, "console-url"},
		{"negative attempts", `max-attempts = 5`, `max-attempts = -1`, "must not be negative"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			if !strings.Contains(notifySample, b.from) {
				t.Fatalf("sample lacks %q", b.from)
			}
			_, err := Resolve(writeFile(t, strings.Replace(notifySample, b.from, b.to, 1)), envOf(nil), Overrides{})
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Errorf("err = %v, want %q", err, b.want)
			}
		})
	}

	// Two Slack sinks whose names differ only in case would share a
	// callback path.
	two := notifySample + `
[[notify.slack]]
name = "TEAM-A"
token = "xoxb-2"
channel = "C999"
`
	if _, err := Resolve(writeFile(t, two), envOf(nil), Overrides{}); err == nil || !strings.Contains(err.Error(), "differing only in case") {
		t.Errorf("case-duplicate slack names: err = %v", err)
	}
}

// TestDemoNotifyConfig keeps deploy/demo-notify.toml (appended to the
// demo's configuration by DEMO_EXTRA_CONFIG, README.md) valid.
func TestDemoNotifyConfig(t *testing.T) {
	b, err := os.ReadFile("../../deploy/demo-notify.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Resolve(writeFile(t, "[pd]\nendpoints = [\"http://127.0.0.1:2379\"]\n"+string(b)), envOf(nil), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Notify.Webhooks) != 1 || len(c.Notify.Slack) != 1 || c.Notify.Slack[0].SigningSecret == "" {
		t.Errorf("decoded %+v", c.Notify)
	}
}
