package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tikvops/operator/internal/store"
)

// Webhook headers.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body
	// with the sink's secret (absent without a secret).
	HeaderSignature = "X-Operator-Signature"
	// HeaderEvent is the event's idempotency key (its "id").
	HeaderEvent = "X-Operator-Event"
	// HeaderKind is the event kind.
	HeaderKind = "X-Operator-Event-Kind"
)

// Sign returns the X-Operator-Signature value of body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks an X-Operator-Signature header in constant time.
func VerifySignature(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Webhook posts each event as JSON (store.OutboxEvent, documented in
// docs/alerting.md).
type Webhook struct {
	name, url string
	secret    []byte
	client    *http.Client
}

// NewWebhook returns a webhook sink.
func NewWebhook(name, url, secret string, client *http.Client) *Webhook {
	if client == nil {
		client = &http.Client{Timeout: SendTimeout}
	}
	return &Webhook{name: name, url: url, secret: []byte(secret), client: client}
}

// Name implements Sink.
func (w *Webhook) Name() string { return w.name }

// Deliver implements Sink: 2xx is delivered; 408, 429 and 5xx are
// retried; other statuses are permanent.
func (w *Webhook) Deliver(ctx context.Context, d store.Delivery) (string, error) {
	body, err := json.Marshal(d.Event)
	if err != nil {
		return "", Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return "", Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderEvent, d.Event.Key)
	req.Header.Set(HeaderKind, d.Event.Kind)
	req.Header.Set("X-Operator-Delivery-Attempt", strconv.Itoa(d.Attempts))
	req.Header.Set("X-Operator-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	if len(w.secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(w.secret, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return "", statusErr(resp.StatusCode)
}

// statusErr classifies an HTTP status.
func statusErr(code int) error {
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return fmt.Errorf("HTTP %d", code)
	}
	return Permanent(fmt.Errorf("HTTP %d", code))
}
