package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/api"
	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// hookRecorder is a loopback webhook receiver checking the signature.
type hookRecorder struct {
	mu   sync.Mutex
	keys []string
	srv  *httptest.Server
}

func newHookRecorder(t *testing.T, secret string) *hookRecorder {
	h := &hookRecorder{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !VerifySignature([]byte(secret), b, r.Header.Get(HeaderSignature)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		h.mu.Lock()
		h.keys = append(h.keys, r.Header.Get(HeaderEvent))
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookRecorder) got(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.keys, key)
}

// slackMentions reports whether a message posted to the fake Slack
// mentions s.
func (f *fakeSlack) mentions(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.Method == "chat.postMessage" && (strings.Contains(c.Form.Get("text"), s) || strings.Contains(c.Form.Get("blocks"), s)) {
			return true
		}
	}
	return false
}

// TestSilenceThroughAPIMutesNotifications: a real store with the daemon's
// audit key, the daemon's API (tokens: alice approver, carol viewer), the
// deliverer with the webhook and Slack sinks posting to local receivers.
// A viewer cannot silence (403). alice silences store 4 through the API:
// store 4's ticket is neither posted to the webhook nor to Slack (its
// deliveries are "silenced"), store 5's is; store 4's ticket resolves
// inside the window and is never announced; another store-4 ticket still
// open when alice expires the silence is sent then; after the expiry, the
// next store-4 ticket notifies at once. The silence's creation and expiry
// reach the team as events, and an edited silence row fails verification.
func TestSilenceThroughAPIMutesNotifications(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "op.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := auditkey.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.SetAuditKey(key, auditkey.NewCheckpoint(dir, key), nil)
	if err := st.BindCluster(ctx, "7001", "", time.Now()); err != nil {
		t.Fatal(err)
	}

	secrets := map[string]string{}
	var toks []auth.Token
	for name, role := range map[string]string{"alice": "approver", "carol": "viewer"} {
		sec, err := auth.NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = sec
		toks = append(toks, auth.Token{Name: name, Role: role, SHA256: auth.HashToken(sec)})
	}
	tokens, err := auth.NewTokens(toks)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(ctx context.Context) (store.VerifyReport, error) {
		return st.VerifyWith(ctx, store.VerifyOptions{PublicKey: key.Public(), KeyDir: dir})
	}
	// A configured maintenance window on store 6 behaves the same.
	windows := api.MaintenanceSilences([]config.Maintenance{{Store: "6", Invariant: "store_disconnected",
		Start: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), End: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Reason: "rack move"}})
	if len(windows) != 1 {
		t.Fatalf("windows = %+v", windows)
	}
	srv := httptest.NewServer(api.New(api.Options{Store: st, Tokens: tokens, Verify: verify, Windows: windows,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}).Handler())
	t.Cleanup(srv.Close)
	alice, carol := api.NewURLClient(srv.URL, secrets["alice"]), api.NewURLClient(srv.URL, secrets["carol"])

	const hookSecret = "hook-secret"
	hook := newHookRecorder(t, hookSecret)
	fs := newFakeSlack(t)
	sk := NewSlack(config.SlackSink{Name: "team", Token: "xoxb-test", Channel: "C123", APIURL: fs.srv.URL}, "", st)
	d := New(Options{Store: st, Sinks: []Sink{NewWebhook("hook", hook.srv.URL, hookSecret, nil), sk},
		Silences: &store.SilenceMatcher{Store: st, Windows: windows}, ReleaseEvery: time.Nanosecond})
	once := func() {
		t.Helper()
		if err := d.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	observe := func(inv, sub string) ticket.Ticket {
		t.Helper()
		tk, _, err := st.Observe(ctx, ticket.Observation{Invariant: inv, Subject: sub, Severity: ticket.Critical,
			Summary: inv + " on " + sub, Evidence: json.RawMessage(`{}`)}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	opened := func(tk ticket.Ticket) string { return "ticket/" + itoa(tk.ID) + "/opened" }

	// A viewer cannot silence.
	_, err = carol.CreateSilence(ctx, api.SilenceRequest{Store: "4", For: "2h", Reason: "mine"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("viewer creates a silence: %v, want 403", err)
	}
	// Bad scope, no reason, no end: 400.
	for _, bad := range []api.SilenceRequest{{Store: "store-4", For: "1h", Reason: "r"}, {Store: "4", For: "1h"},
		{Store: "4", Reason: "r"}, {Invariant: "no_such_invariant", For: "1h", Reason: "r"}} {
		if _, err := alice.CreateSilence(ctx, bad); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("create %+v: %v, want 400", bad, err)
		}
	}
	sl, err := alice.CreateSilence(ctx, api.SilenceRequest{Store: "4", For: "2h", Reason: "disk swap"})
	if err != nil {
		t.Fatal(err)
	}
	if sl.ID != 1 || sl.Subject != "store:4" || sl.CreatedBy != "alice" || sl.CreatedRole != "approver" || sl.CreatedVia != "token" || sl.Signature == "" {
		t.Fatalf("silence = %+v", sl)
	}
	if ls, err := carol.Silences(ctx, true); err != nil || len(ls) != 2 || ls[0].Window != 1 || ls[1].ID != 1 {
		t.Fatalf("active silences = %+v, %v", ls, err)
	}

	muted := observe("store_disconnected", "store:4")
	held := observe("store_low_space", "store:4")
	loud := observe("store_disconnected", "store:5")
	rack := observe("store_disconnected", "store:6")
	rackOther := observe("store_slow", "store:6")
	once()
	if hook.got(opened(rack)) || !hook.got(opened(rackOther)) {
		t.Errorf("maintenance window on store_disconnected of store 6: hook %v", hook.keys)
	}
	slackOpened := func(tk ticket.Ticket) bool { return fs.mentions("ticket " + itoa(tk.ID) + " opened") }
	if !hook.got(opened(loud)) || !slackOpened(loud) {
		t.Errorf("store 5's ticket not notified: hook %v", hook.keys)
	}
	if hook.got(opened(muted)) || hook.got(opened(held)) || slackOpened(muted) || slackOpened(held) {
		t.Errorf("store 4's tickets notified during the silence: hook %v", hook.keys)
	}
	if !hook.got("silence/1/created") || !fs.mentions("silence #1 created by alice") {
		t.Errorf("the silence's creation was not told: hook %v", hook.keys)
	}
	ds, err := st.Deliveries(ctx, store.DeliveryFilter{Statuses: []string{store.DeliverySilenced}})
	if err != nil || len(ds) != 6 {
		t.Fatalf("silenced deliveries %d (want 3 tickets x 2 sinks), %v", len(ds), err)
	}
	for _, dl := range ds {
		if dl.Event.Ticket.ID == rack.ID {
			if dl.SilencedBy != "maintenance window 1" || !strings.Contains(dl.LastError, "(rack move, by config)") {
				t.Errorf("delivery muted by the window: %+v", dl)
			}
			continue
		}
		if dl.SilencedBy != "#1" || !strings.Contains(dl.LastError, "silenced by #1 until") {
			t.Errorf("silenced delivery %+v", dl)
		}
	}

	// Resolved inside the window: never announced, even after it.
	if err := st.ResolveTicket(ctx, muted.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	once()
	if hook.got("ticket/" + itoa(muted.ID) + "/resolved") {
		t.Error("a ticket resolved inside the window was announced")
	}
	if _, err := carol.ExpireSilence(ctx, 1, api.ExpireRequest{Reason: "done"}); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Errorf("viewer expires: %v", err)
	}
	if _, err := alice.ExpireSilence(ctx, 1, api.ExpireRequest{}); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Errorf("expire without reason: %v", err)
	}
	ex, err := alice.ExpireSilence(ctx, 1, api.ExpireRequest{Reason: "swap done early"})
	if err != nil || ex.Expired == nil || ex.Expired.By != "alice" {
		t.Fatalf("expire = %+v, %v", ex, err)
	}
	if _, err := alice.ExpireSilence(ctx, 1, api.ExpireRequest{Reason: "again"}); !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("second expire: %v, want 409", err)
	}
	again := observe("store_disconnected", "store:4")
	once()
	once() // released deliveries are due at the release time
	if !hook.got(opened(again)) || !hook.got("silence/1/expired") {
		t.Errorf("after the expiry: hook %v", hook.keys)
	}
	if !hook.got(opened(held)) || !slackOpened(held) {
		t.Errorf("a ticket still open when the silence ended was never sent: hook %v", hook.keys)
	}
	if hook.got(opened(muted)) {
		t.Errorf("a ticket resolved inside the window was sent after it: hook %v", hook.keys)
	}

	// An edited silence row fails verification (the daemon's audit verify).
	if rep, err := alice.Verify(ctx); err != nil || !rep.OK || rep.Silences != 1 {
		t.Fatalf("verify before the edit: %+v %v", rep, err)
	}
	db := rawSQL(t, filepath.Join(dir, "op.db"))
	for _, q := range []string{`DROP TRIGGER silences_no_update`, `UPDATE silences SET reason = 'nothing to see' WHERE id = 1`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := alice.Verify(ctx); err != nil || rep.OK || rep.Broken == nil || !strings.Contains(rep.Broken.Detail, "silence 1") {
		t.Errorf("verify after editing silence 1: %+v %v", rep, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// rawSQL opens the database file directly, as someone editing it by hand.
func rawSQL(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
