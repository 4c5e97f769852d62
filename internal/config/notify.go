package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/tikvops/operator/internal/auth"
)

// Notify configures the notification outbox's sinks ([notify]).
type Notify struct {
	// ConsoleURL, when set, is linked from messages as
	// CONSOLE-URL/tickets/ID (e.g. a Grafana or an internal console).
	ConsoleURL string `toml:"console-url" json:"console-url,omitempty"`
	// MaxAttempts before a delivery is dead (default 8).
	MaxAttempts int `toml:"max-attempts" json:"max-attempts,omitempty"`
	// Backoff is the first retry delay, doubled per attempt up to
	// MaxBackoff (defaults 2s, 5m).
	Backoff    Duration `toml:"backoff" json:"backoff"`
	MaxBackoff Duration `toml:"max-backoff" json:"max-backoff"`
	// Webhooks, Slack and Alertmanager are the sinks.
	Webhooks     []WebhookSink      `toml:"webhook" json:"webhook,omitempty"`
	Slack        []SlackSink        `toml:"slack" json:"slack,omitempty"`
	Alertmanager []AlertmanagerSink `toml:"alertmanager" json:"alertmanager,omitempty"`
}

// Route selects the events a sink receives: all when every list is empty.
type Route struct {
	// Kinds are event kinds (ticket_opened, proposal_awaiting_approval,
	// ...); empty means all.
	Kinds []string `toml:"kinds" json:"kinds,omitempty"`
	// MinSeverity drops events of tickets below it (warning < critical <
	// emergency); events without a ticket always pass.
	MinSeverity string `toml:"min-severity" json:"min-severity,omitempty"`
	// Invariants keeps only these invariants (alert:NAME for alerts
	// without an invariant); empty means all.
	Invariants []string `toml:"invariants" json:"invariants,omitempty"`
}

// WebhookSink posts each event as JSON, signed with HMAC-SHA256.
type WebhookSink struct {
	Name   string `toml:"name" json:"name"`
	URL    string `toml:"url" json:"url"`
	Secret string `toml:"secret" json:"secret,omitempty"`
	Route  Route  `toml:"route" json:"route"`
}

// SlackUser maps a Slack user id to an operator identity and role.
type SlackUser struct {
	SlackID string `toml:"slack-id" json:"slack-id"`
	Name    string `toml:"name" json:"name"`
	Role    string `toml:"role" json:"role"`
}

// SlackSink posts Block Kit messages with Approve and Reject buttons.
type SlackSink struct {
	Name    string `toml:"name" json:"name"`
	Token   string `toml:"token" json:"token,omitempty"`
	Channel string `toml:"channel" json:"channel"`
	// SigningSecret verifies interaction callbacks
	// (POST /api/v1/slack/interactions); without it buttons are not shown.
	SigningSecret string `toml:"signing-secret" json:"signing-secret,omitempty"`
	// APIURL is Slack's Web API base (default https://slack.com/api/;
	// tests and the demo point it at a local fake).
	APIURL string      `toml:"api-url" json:"api-url,omitempty"`
	Users  []SlackUser `toml:"users" json:"users,omitempty"`
	Route  Route       `toml:"route" json:"route"`
}

// AlertmanagerSink posts ticket events as alerts to Alertmanager's v2 API.
type AlertmanagerSink struct {
	Name string `toml:"name" json:"name"`
	// URL is Alertmanager's base URL (…/api/v2/alerts is appended).
	URL   string `toml:"url" json:"url"`
	Route Route  `toml:"route" json:"route"`
}

// Alerting configures the Alertmanager webhook receiver ([alerting]).
type Alerting struct {
	// WebhookToken, when set, is a bearer token accepted on
	// POST /api/v1/alerts/alertmanager besides API tokens.
	WebhookToken string `toml:"webhook-token" json:"webhook-token,omitempty"`
	// RequireToken refuses unauthenticated alert posts (default false:
	// loopback setups without tokens).
	RequireToken bool `toml:"require-token" json:"require-token"`
}

func validHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// slackSinkName is what a Slack sink's name may be: it becomes the path
// of its interaction callback, POST /api/v1/slack/interactions/NAME
// (lower-cased), so it must be path-safe.
var slackSinkName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// validateNotify checks [notify] and [alerting].
func (c *Config) validateNotify() error {
	n := c.Notify
	names := map[string]bool{}
	seen := func(kind, name string) error {
		if name == "" {
			return fmt.Errorf("config: notify.%s: a name is required", kind)
		}
		if names[name] {
			return fmt.Errorf("config: notify: duplicate sink name %q", name)
		}
		names[name] = true
		return nil
	}
	checkRoute := func(name string, r Route) error {
		switch strings.ToLower(r.MinSeverity) {
		case "", "warning", "critical", "emergency":
		default:
			return fmt.Errorf("config: notify sink %q: min-severity %q (warning, critical or emergency)", name, r.MinSeverity)
		}
		return nil
	}
	if n.ConsoleURL != "" && !validHTTPURL(n.ConsoleURL) {
		return fmt.Errorf("config: notify console-url %q must be an http(s) URL", redactURL(n.ConsoleURL))
	}
	for _, w := range n.Webhooks {
		if err := seen("webhook", w.Name); err != nil {
			return err
		}
		if !validHTTPURL(w.URL) {
			return fmt.Errorf("config: notify webhook %q: url %q must be an http(s) URL", w.Name, redactURL(w.URL))
		}
		if err := checkRoute(w.Name, w.Route); err != nil {
			return err
		}
	}
	slackPaths := map[string]string{}
	for _, s := range n.Slack {
		if err := seen("slack", s.Name); err != nil {
			return err
		}
		if !slackSinkName.MatchString(s.Name) {
			return fmt.Errorf("config: notify slack %q: the name must be 1 to 63 letters, digits, '-' or '_', starting with a letter or digit (it is the path of its callback, /api/v1/slack/interactions/NAME)", s.Name)
		}
		if other, ok := slackPaths[strings.ToLower(s.Name)]; ok {
			return fmt.Errorf("config: notify slack %q and %q: names differing only in case share the callback path /api/v1/slack/interactions/%s", other, s.Name, strings.ToLower(s.Name))
		}
		slackPaths[strings.ToLower(s.Name)] = s.Name
		if s.Token == "" || s.Channel == "" {
			return fmt.Errorf("config: notify slack %q: token and channel are required", s.Name)
		}
		if s.APIURL != "" && !validHTTPURL(s.APIURL) {
			return fmt.Errorf("config: notify slack %q: api-url %q must be an http(s) URL", s.Name, s.APIURL)
		}
		for _, u := range s.Users {
			if u.SlackID == "" {
				return fmt.Errorf("config: notify slack %q: a user without slack-id", s.Name)
			}
			if err := auth.ValidName(u.Name); err != nil {
				return fmt.Errorf("config: notify slack %q user %s: %w", s.Name, u.SlackID, err)
			}
			if _, err := auth.ParseRole(u.Role); err != nil {
				return fmt.Errorf("config: notify slack %q user %s: %w", s.Name, u.SlackID, err)
			}
		}
		if err := checkRoute(s.Name, s.Route); err != nil {
			return err
		}
	}
	for _, a := range n.Alertmanager {
		if err := seen("alertmanager", a.Name); err != nil {
			return err
		}
		if !validHTTPURL(a.URL) {
			return fmt.Errorf("config: notify alertmanager %q: url %q must be an http(s) URL", a.Name, redactURL(a.URL))
		}
		if err := checkRoute(a.Name, a.Route); err != nil {
			return err
		}
	}
	if n.MaxAttempts < 0 || n.Backoff.Duration < 0 || n.MaxBackoff.Duration < 0 {
		return fmt.Errorf("config: notify max-attempts, backoff and max-backoff must not be negative")
	}
	return nil
}

// maskNotify masks the secrets of [notify] and [alerting].
func (c *Config) maskNotify(mask func(string) string) {
	ws := append([]WebhookSink(nil), c.Notify.Webhooks...)
	for i := range ws {
		ws[i].Secret = mask(ws[i].Secret)
	}
	c.Notify.Webhooks = ws
	ss := append([]SlackSink(nil), c.Notify.Slack...)
	for i := range ss {
		ss[i].Token, ss[i].SigningSecret = mask(ss[i].Token), mask(ss[i].SigningSecret)
	}
	c.Notify.Slack = ss
	c.Alerting.WebhookToken = mask(c.Alerting.WebhookToken)
}
