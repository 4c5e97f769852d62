package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "op.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func deliveriesBySink(t *testing.T, st *store.Store) map[string][]store.Delivery {
	t.Helper()
	ds, err := st.Deliveries(context.Background(), store.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]store.Delivery{}
	for _, d := range ds {
		out[d.Sink] = append(out[d.Sink], d)
	}
	return out
}

// TestWebhookSinkSignature: a real store's outbox, the Deliverer and the
// webhook sink posting over loopback to a receiver that verifies
// X-Operator-Signature with its own copy of the secret. The sink with the
// right secret is delivered; the receiver refuses (401) the sink with a
// wrong secret, and that delivery is dead at once (permanent refusal).
func TestWebhookSinkSignature(t *testing.T) {
	const recvSecret = "s3cret-shared-with-the-receiver"
	type got struct {
		event, kind string
		body        map[string]any
	}
	var (
		mu       sync.Mutex
		accepted []got
		refused  int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if !VerifySignature([]byte(recvSecret), b, r.Header.Get(HeaderSignature)) {
			refused++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		accepted = append(accepted, got{event: r.Header.Get(HeaderEvent), kind: r.Header.Get(HeaderKind), body: m})
	}))
	defer srv.Close()

	st := openStore(t)
	ctx := context.Background()
	tk, _, err := st.Observe(ctx, ticket.Observation{Invariant: "store_disconnected", Subject: "store:4", Severity: ticket.Warning,
		Summary: "store 4 disconnected", Evidence: json.RawMessage(`{"store_id":4}`)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d := New(Options{Store: st, Sinks: []Sink{
		NewWebhook("good", srv.URL, recvSecret, nil),
		NewWebhook("forger", srv.URL, "not-the-secret", nil),
	}})
	if err := d.Once(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(accepted) != 1 || refused != 1 {
		t.Fatalf("receiver accepted %d, refused %d; want 1 and 1", len(accepted), refused)
	}
	a := accepted[0]
	mu.Unlock()
	key := "ticket/" + strconv.FormatInt(tk.ID, 10) + "/opened"
	if a.event != key || a.kind != store.KindTicketOpened || a.body["id"] != key || a.body["invariant"] != "store_disconnected" {
		t.Errorf("delivery headers %q %q, body %v", a.event, a.kind, a.body)
	}
	by := deliveriesBySink(t, st)
	if len(by["good"]) != 1 || by["good"][0].Status != "delivered" {
		t.Errorf("good sink deliveries: %+v", by["good"])
	}
	if len(by["forger"]) != 1 || by["forger"][0].Status != "dead" {
		t.Errorf("forger sink deliveries: %+v", by["forger"])
	}
	// Nothing is sent twice.
	if err := d.Once(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != 1 || refused != 1 {
		t.Errorf("after a second pass: accepted %d, refused %d", len(accepted), refused)
	}
}

// amAlert is the part of Alertmanager's v2 GettableAlert the test reads.
type amAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
	EndsAt time.Time `json:"endsAt"`
}

func amAlerts(t *testing.T, base string) []amAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET /api/v2/alerts: HTTP %d: %v", resp.StatusCode, err)
	}
	return out
}

// TestAlertmanagerSinkReal: the operator's ticket is posted by the
// Alertmanager sink to a real Alertmanager (POST /api/v2/alerts) and
// GET /api/v2/alerts shows it active with the ticket's labels; once the
// ticket resolves, the sink posts endsAt and Alertmanager no longer shows
// it active.
func TestAlertmanagerSinkReal(t *testing.T) {
	am := testcluster.StartAlertmanager(t, testcluster.AlertmanagerOptions{})
	st := openStore(t)
	ctx := context.Background()
	tk, _, err := st.Observe(ctx, ticket.Observation{Invariant: "store_low_space", Subject: "store:7", Severity: ticket.Critical,
		Summary: "store 7 below low-space-ratio", Evidence: json.RawMessage(`{"store_id":7}`)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d := New(Options{Store: st, Sinks: []Sink{NewAlertmanager("am", am.URL, "http://127.0.0.1:3000", nil)}})
	if err := d.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if by := deliveriesBySink(t, st); len(by["am"]) != 1 || by["am"][0].Status != "delivered" {
		t.Fatalf("am deliveries: %+v", by["am"])
	}
	id := strconv.FormatInt(tk.ID, 10)
	var mine *amAlert
	for _, a := range amAlerts(t, am.URL) {
		if a.Labels["alertname"] == "OperatorTicket" && a.Labels["ticket_id"] == id {
			mine = &a
		}
	}
	if mine == nil {
		t.Fatalf("Alertmanager does not show ticket %s: %+v", id, amAlerts(t, am.URL))
	}
	if mine.Status.State != "active" || mine.Labels["invariant"] != "store_low_space" || mine.Labels["subject"] != "store:7" ||
		mine.Labels["severity"] != "critical" {
		t.Errorf("alert in Alertmanager: %+v", *mine)
	}

	if err := st.ResolveTicket(ctx, tk.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := d.Once(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range amAlerts(t, am.URL) {
		if a.Labels["ticket_id"] == id && a.Status.State == "active" && (a.EndsAt.IsZero() || a.EndsAt.After(time.Now())) {
			t.Errorf("resolved ticket still active in Alertmanager: %+v", a)
		}
	}
}
