package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/store"
)

// Alertmanager posts the operator's tickets as alerts to Alertmanager's
// v2 API (POST /api/v2/alerts), so that the team's routing, silences and
// paging apply: alertname "OperatorTicket", labels invariant, subject,
// severity, ticket_id and cluster_id; a resolved ticket is sent with
// endsAt = now. Only ticket events are sent (opened, escalated, resolved,
// awaiting approval); Alertmanager deduplicates by label set.
type Alertmanager struct {
	name, url string
	client    *http.Client
	console   string
}

// NewAlertmanager returns an Alertmanager sink for the base URL.
func NewAlertmanager(name, baseURL, consoleURL string, client *http.Client) *Alertmanager {
	if client == nil {
		client = &http.Client{Timeout: SendTimeout}
	}
	return &Alertmanager{name: name, url: strings.TrimRight(baseURL, "/") + "/api/v2/alerts", client: client, console: consoleURL}
}

// Name implements Sink.
func (a *Alertmanager) Name() string { return a.name }

// postableAlert is Alertmanager's v2 PostableAlert.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Deliver implements Sink.
func (a *Alertmanager) Deliver(ctx context.Context, d store.Delivery) (string, error) {
	ev := d.Event
	if ev.Ticket == nil {
		return "skipped: no ticket", nil
	}
	switch ev.Kind {
	case store.KindTicketOpened, store.KindTicketEscalated, store.KindTicketResolved, store.KindAwaitingApproval:
	default:
		return "skipped: " + ev.Kind, nil
	}
	al := postableAlert{
		Labels: map[string]string{"alertname": "OperatorTicket", "invariant": ev.Invariant, "subject": ev.Subject,
			"severity": string(ev.Severity), "ticket_id": strconv.FormatInt(ev.Ticket.ID, 10), "source": "tikv-operator"},
		Annotations: map[string]string{"summary": ev.Ticket.Summary, "description": ev.Text},
		StartsAt:    ev.Ticket.FirstSeen,
	}
	if ev.ClusterID != "" {
		al.Labels["cluster_id"] = ev.ClusterID
	}
	if ev.Ticket.Diagnosis != "" {
		al.Annotations["diagnosis"] = ev.Ticket.Diagnosis
	}
	if a.console != "" {
		al.GeneratorURL = strings.TrimRight(a.console, "/") + "/tickets/" + strconv.FormatInt(ev.Ticket.ID, 10)
	}
	if ev.Kind == store.KindTicketResolved {
		end := ev.Time
		al.EndsAt = &end
	}
	body, err := json.Marshal([]postableAlert{al})
	if err != nil {
		return "", Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return "", Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if err := statusErr(resp.StatusCode); err != nil {
		return "", fmt.Errorf("alertmanager: %w: %s", err, strings.TrimSpace(string(msg)))
	}
	return "", nil
}
