package alerting

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

func payload(status string, fp string) string {
	return `{"version":"4","groupKey":"{}:{alertname=\"PD_cluster_lost_connect_tikv_nums\"}","status":"` + status + `","receiver":"operator",
"alerts":[{"status":"` + status + `","labels":{"alertname":"PD_cluster_lost_connect_tikv_nums","instance":"127.0.0.1:2379","level":"warning"},
"annotations":{"summary":"PD server has lost connection with TiKV"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T00:05:00Z","fingerprint":"` + fp + `"}]}`
}

func send(t *testing.T, rc *Receiver, body, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/alerts/alertmanager", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	return rec
}

func TestAlertmanagerWebhook(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "op.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	own, _, err := st.Observe(ctx, ticket.Observation{Invariant: "store_disconnected", Subject: "store:4", Severity: ticket.Warning,
		Summary: "store 4 disconnected", Evidence: json.RawMessage(`{"address":"127.0.0.1:20164"}`)}, now)
	if err != nil {
		t.Fatal(err)
	}
	rc := New(Options{Store: st, Token: "hook-secret", Now: func() time.Time { return now }})

	for _, bad := range []string{`{`, `{"version":"3","alerts":[]}`, `{"version":"4"}`,
		`{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"2026-01-01T00:00:00Z"}]}`} {
		if rec := send(t, rc, bad, ""); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "error") {
			t.Errorf("%s: %d %s", bad, rec.Code, rec.Body)
		}
	}
	if rec := send(t, rc, payload("firing", "abc"), "wrong"); rec.Code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", rec.Code)
	}
	if ts, _ := st.Tickets(ctx, store.TicketFilter{}); len(ts) != 1 {
		t.Fatalf("malformed bodies stored tickets: %d", len(ts))
	}
	// Firing twice (Alertmanager HA sends duplicates): one ticket, linked
	// under the operator's own store_disconnected ticket.
	for i := 0; i < 2; i++ {
		rec := send(t, rc, payload("firing", "abc"), "hook-secret")
		if rec.Code != http.StatusOK {
			t.Fatalf("firing: %d %s", rec.Code, rec.Body)
		}
	}
	ts, _ := st.Tickets(ctx, store.TicketFilter{})
	if len(ts) != 2 {
		t.Fatalf("tickets = %d", len(ts))
	}
	var al ticket.Ticket
	for _, tk := range ts {
		if tk.Invariant == "alert:PD_cluster_lost_connect_tikv_nums" {
			al = tk
		}
	}
	if al.ID == 0 || al.RootID == nil || *al.RootID != own.ID || al.Subject != "instance:127.0.0.1:2379" {
		t.Fatalf("alert ticket = %+v", al)
	}
	// A resolved alert never seen firing is ignored (2xx); the known one
	// resolves its ticket.
	if rec := send(t, rc, payload("resolved", "never-seen"), ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ignored":1`) {
		t.Errorf("unknown resolved: %d %s", rec.Code, rec.Body)
	}
	if rec := send(t, rc, payload("resolved", "abc"), ""); rec.Code != http.StatusOK {
		t.Fatalf("resolved: %d %s", rec.Code, rec.Body)
	}
	if got, _ := st.Ticket(ctx, al.ID); got.Status != ticket.Resolved {
		t.Errorf("alert ticket after resolved = %s", got.Status)
	}
	if got, _ := st.Ticket(ctx, own.ID); got.Status == ticket.Resolved {
		t.Errorf("the operator's own ticket was resolved by the alert")
	}
}

// TestRelinkAlertFirst: the official alert arrives before the operator's
// own ticket exists; once the operator opens it, Relink links the alert's
// ticket under it (one incident), and a second Relink changes nothing.
func TestRelinkAlertFirst(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "op.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	rc := New(Options{Store: st, Now: func() time.Time { return now }})
	rec := send(t, rc, payload("firing", "abc"), "")
	if rec.Code != http.StatusOK {
		t.Fatalf("firing: %d %s", rec.Code, rec.Body)
	}
	var res Result
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || len(res.Tickets) != 1 {
		t.Fatalf("result %s, %v", rec.Body, err)
	}
	alertID := res.Tickets[0]
	if n, err := rc.Relink(ctx); err != nil || n != 0 {
		t.Fatalf("Relink without an operator ticket: %d, %v", n, err)
	}
	own, _, err := st.Observe(ctx, ticket.Observation{Invariant: "store_disconnected", Subject: "store:4", Severity: ticket.Warning,
		Summary: "store 4 disconnected", Evidence: json.RawMessage(`{"address":"127.0.0.1:20164"}`)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Relink(ctx); err != nil || n != 1 {
		t.Fatalf("Relink: %d, %v", n, err)
	}
	if root, err := st.TicketRoot(ctx, alertID); err != nil || root != own.ID {
		t.Fatalf("alert ticket root = %d, %v; want %d", root, err, own.ID)
	}
	if n, err := rc.Relink(ctx); err != nil || n != 0 {
		t.Errorf("second Relink: %d, %v", n, err)
	}
}
