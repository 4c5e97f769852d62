package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/ticket"
)

func mustSilence(t *testing.T, s *Store, sub, inv string, from, to time.Time) Silence {
	t.Helper()
	sl, err := s.CreateSilence(context.Background(), Silence{Subject: sub, Invariant: inv, StartsAt: from, EndsAt: to,
		Reason: "disk swap on store 4", CreatedBy: "alice", CreatedRole: "approver", CreatedVia: "token"}, from)
	if err != nil {
		t.Fatal(err)
	}
	return sl
}

// A silence is signed, audited as an outbox event, matches its scope
// only while active, and can be expired once, with a reason.
func TestSilenceLifecycle(t *testing.T) { forEachBackend(t, testSilenceLifecycle) }

func testSilenceLifecycle(t *testing.T, be backend) {
	s, _, vo := keyed(t, be)
	ctx := context.Background()
	sl := mustSilence(t, s, "store:4", "", t0, t0.Add(2*time.Hour))
	if sl.ID != 1 || sl.Hash != SilenceHash(sl) || !vo.PublicKey.Verify(silenceSigned(sl.Hash), sl.Signature) {
		t.Fatalf("silence = %+v", sl)
	}
	if ev, err := s.OutboxEventByKey(ctx, "silence/1/created"); err != nil || ev.Silence == nil || ev.Silence.By != "alice" ||
		ev.Silence.Scope != "store:4" || ev.Kind != KindSilenceCreated {
		t.Fatalf("created event = %+v, %v", ev, err)
	}
	m := &SilenceMatcher{Store: s}
	at := t0.Add(time.Minute)
	if got, err := m.Match(ctx, "store_low_space", "store:4", at); err != nil || got == nil || got.ID != 1 {
		t.Fatalf("match store:4 = %+v, %v", got, err)
	}
	for _, c := range []struct {
		inv, sub string
		at       time.Time
	}{{"store_low_space", "store:5", at}, {"store_low_space", "store:4", t0.Add(-time.Second)}, {"store_low_space", "store:4", t0.Add(2 * time.Hour)}} {
		if got, _ := m.Match(ctx, c.inv, c.sub, c.at); got != nil {
			t.Errorf("match %s %s at %s = %+v, want none", c.inv, c.sub, c.at, got)
		}
	}
	if n := sl.Note(); !strings.Contains(n, "silenced by #1 until ") || !strings.Contains(n, "(disk swap on store 4, by alice)") {
		t.Errorf("note = %q", n)
	}

	if _, err := s.ExpireSilence(ctx, 1, SilenceExpiry{By: "bob", Role: "approver"}, at); !errors.Is(err, ErrInvalid) {
		t.Errorf("expire without reason: %v", err)
	}
	ex, err := s.ExpireSilence(ctx, 1, SilenceExpiry{By: "bob", Role: "approver", Reason: "swap done"}, at)
	if err != nil || ex.Expired == nil || ex.Expired.By != "bob" || !ex.End().Equal(at) {
		t.Fatalf("expire = %+v, %v", ex, err)
	}
	if _, err := s.ExpireSilence(ctx, 1, SilenceExpiry{By: "bob", Role: "approver", Reason: "again"}, at); !errors.Is(err, ErrSilenceOver) {
		t.Errorf("second expire: %v", err)
	}
	if _, err := s.ExpireSilence(ctx, 9, SilenceExpiry{By: "bob", Role: "approver", Reason: "x"}, at); !errors.Is(err, ErrNotFound) {
		t.Errorf("expire unknown: %v", err)
	}
	if got, _ := m.Match(ctx, "store_low_space", "store:4", at.Add(time.Second)); got != nil {
		t.Errorf("expired silence still matches: %+v", got)
	}
	if _, err := s.OutboxEventByKey(ctx, "silence/1/expired"); err != nil {
		t.Error(err)
	}
	// Bad input.
	for _, bad := range []Silence{
		{Subject: "region:1", StartsAt: t0, EndsAt: t0.Add(time.Hour), Reason: "r", CreatedBy: "a"},
		{StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "a"},
		{StartsAt: t0, EndsAt: t0, Reason: "r", CreatedBy: "a"},
		{StartsAt: t0, EndsAt: t0.Add(MaxSilence + time.Hour), Reason: "r", CreatedBy: "a"},
		{StartsAt: t0, EndsAt: t0.Add(time.Hour), Reason: "r"},
	} {
		if _, err := s.CreateSilence(ctx, bad, t0); !errors.Is(err, ErrInvalid) {
			t.Errorf("create %+v: %v, want ErrInvalid", bad, err)
		}
	}
	if rep := mustVerify(t, s, vo); !rep.OK || rep.Silences != 1 {
		t.Errorf("verify = %+v %+v", rep, rep.Broken)
	}
}

// Silence rows are append-only, and an edit made by dropping the
// triggers, a deleted silence or a deleted expiry is found by verify.
func TestVerifyDetectsEditedSilence(t *testing.T) { forEachBackend(t, testVerifyDetectsEditedSilence) }

func testVerifyDetectsEditedSilence(t *testing.T, be backend) {
	setup := func(t *testing.T) (*Store, string, VerifyOptions) {
		s, path, vo := keyed(t, be)
		mustSilence(t, s, "store:4", "", t0, t0.Add(time.Hour))
		mustSilence(t, s, "", "store_low_space", t0, t0.Add(time.Hour))
		if _, err := s.ExpireSilence(context.Background(), 2, SilenceExpiry{By: "bob", Role: "approver", Reason: "done"}, t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		return s, path, vo
	}
	s, path, _ := setup(t)
	db := be.rawDB(t, path)
	for _, q := range []string{`UPDATE silences SET ends_at = '2099-01-01T00:00:00.000000000Z' WHERE id = 1`, `DELETE FROM silences WHERE id = 1`,
		`DELETE FROM silence_expiries`, `UPDATE silence_expiries SET reason = 'x'`} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused by the append-only trigger", q, err)
		}
	}
	_ = s
	cases := []struct {
		name string
		sql  []string
		want BreakKind
	}{
		{"lengthen", []string{`DROP TRIGGER silences_no_update`, `UPDATE silences SET ends_at = '2099-01-01T00:00:00.000000000Z' WHERE id = 1`}, BreakEdited},
		{"change creator", []string{`DROP TRIGGER silences_no_update`, `UPDATE silences SET created_by = 'carol' WHERE id = 1`}, BreakEdited},
		{"resign without key", []string{`DROP TRIGGER silences_no_update`, `UPDATE silences SET signature = '' WHERE id = 1`}, BreakForged},
		{"delete silence", []string{`DROP TRIGGER silences_no_delete`, `DELETE FROM silences WHERE id = 2`}, BreakMissing},
		{"delete expiry", []string{`DROP TRIGGER silence_expiries_no_delete`, `DELETE FROM silence_expiries`}, BreakMissing},
		{"edit expiry", []string{`DROP TRIGGER silence_expiries_no_update`, `UPDATE silence_expiries SET expired_by = 'root'`}, BreakEdited},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, path, vo := setup(t)
			if rep := mustVerify(t, s, vo); !rep.OK {
				t.Fatalf("clean: %+v", rep.Broken)
			}
			db := be.rawDB(t, path)
			for _, q := range c.sql {
				if _, err := db.Exec(be.sqlFor(q)); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			rep := mustVerify(t, s, vo)
			if rep.OK || rep.Broken == nil || rep.Broken.Kind != c.want || !strings.Contains(rep.Broken.Detail, "silence") {
				t.Errorf("verify after %s = %+v broken=%+v, want %s", c.name, rep, rep.Broken, c.want)
			}
		})
	}
}

// Silenced deliveries are released when the silence ends while the ticket
// is open, and stay silenced when the ticket resolved inside the window.
func TestReleaseSilenced(t *testing.T) { forEachBackend(t, testReleaseSilenced) }

func testReleaseSilenced(t *testing.T, be backend) {
	s, _, _ := keyed(t, be)
	ctx := context.Background()
	open, _, err := s.Observe(ctx, ticket.Observation{Invariant: "store_down", Subject: "store:4", Severity: ticket.Critical,
		Summary: "down", Evidence: json.RawMessage(`{}`)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := s.Observe(ctx, ticket.Observation{Invariant: "store_slow", Subject: "store:4", Severity: ticket.Warning,
		Summary: "slow", Evidence: json.RawMessage(`{}`)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Route(ctx, func(OutboxEvent) []string { return []string{"hook"} }, t0); err != nil {
		t.Fatal(err)
	}
	ds, err := s.ClaimDeliveries(ctx, t0, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("claimed %d, %v", len(ds), err)
	}
	for _, d := range ds {
		if err := s.SilenceDelivery(ctx, d.Event.Seq, d.Sink, "#1", "silenced by #1", t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ResolveTicket(ctx, gone.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	st, err := s.OutboxState(ctx)
	if err != nil || st.Backlog["hook"] != 0 {
		t.Errorf("silenced deliveries count as backlog: %+v %v", st, err)
	}
	muted := true
	still := func(OutboxEvent) (bool, error) { return muted, nil }
	if n, err := s.ReleaseSilenced(ctx, t0.Add(2*time.Minute), still); err != nil || n != 0 {
		t.Fatalf("released %d while muted, %v", n, err)
	}
	muted = false
	if n, err := s.ReleaseSilenced(ctx, t0.Add(3*time.Minute), still); err != nil || n != 1 {
		t.Fatalf("released %d, %v; want 1 (the open ticket)", n, err)
	}
	ds, err = s.Deliveries(ctx, DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		want := DeliverySilenced
		if d.Event.Ticket != nil && d.Event.Ticket.ID == open.ID && d.Event.Kind == KindTicketOpened {
			want = DeliveryPending
		}
		if d.Status != want {
			t.Errorf("%s: status %s, want %s", d.Event.Key, d.Status, want)
		}
	}
}
