package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
)

func kinds(t *testing.T, s *Store) []string {
	t.Helper()
	evs, err := s.OutboxEvents(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func TestOutboxEventsWithTheirChanges(t *testing.T) {
	forEachBackend(t, testOutboxEventsWithTheirChanges)
}

func testOutboxEventsWithTheirChanges(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	id := proposed(t, s, "store:4")
	// Seen again: no second "opened".
	if _, _, err := s.Observe(ctx, obs("store_down", "store:4", `{}`), t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reject(ctx, id, "alice", "not tonight", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	tk, _ := s.OpenTicket(ctx, "store_down/store:4")
	if _, err := s.EscalateTicket(ctx, tk.ID, "emergency", "down for an hour", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.ResolveTicket(ctx, tk.ID, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got := kinds(t, s)
	want := []string{KindTicketOpened, KindAwaitingApproval, KindRejected, KindTicketEscalated, KindTicketResolved}
	if len(got) != len(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events = %v, want %v", got, want)
		}
	}
	evs, _ := s.OutboxEvents(ctx, 0)
	aw := evs[1]
	if aw.Key != "proposal/1/awaiting_approval" || aw.Action == nil || aw.Action.Type != "remove_store" || aw.Ticket == nil || aw.Invariant != "store_down" {
		t.Errorf("awaiting approval event = %+v", aw)
	}
	if evs[2].Record == nil || evs[2].Record.By != "alice" || evs[2].Record.Event != action.EventRejection {
		t.Errorf("rejection event = %+v", evs[2].Record)
	}
}

func TestOutboxRolledBackWithItsChange(t *testing.T) {
	forEachBackend(t, testOutboxRolledBackWithItsChange)
}

func testOutboxRolledBackWithItsChange(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	id := proposed(t, s, "store:4")
	before := len(kinds(t, s))
	// An approval refused by the store (second approval by the same
	// person) writes neither record nor event.
	if _, _, err := s.ApproveBound(ctx, id, Approval{By: "alice", Role: "approver", Required: 2}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ApproveBound(ctx, id, Approval{By: "alice", Role: "approver", Required: 2}, t0.Add(2*time.Second)); !errors.Is(err, ErrPolicy) {
		t.Fatalf("second approval by alice: %v", err)
	}
	if got := kinds(t, s); len(got) != before+1 || got[before] != KindApproved {
		t.Errorf("events after one approval and one refused = %v", got)
	}
}

func TestDeliveriesAtLeastOnceAndDead(t *testing.T) {
	forEachBackend(t, testDeliveriesAtLeastOnceAndDead)
}

func testDeliveriesAtLeastOnceAndDead(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	proposed(t, s, "store:4")
	n, err := s.Route(ctx, func(ev OutboxEvent) []string {
		if ev.Kind == KindAwaitingApproval {
			return []string{"slack", "webhook"}
		}
		return []string{"webhook"}
	}, t0)
	if err != nil || n != 2 {
		t.Fatalf("Route = %d, %v", n, err)
	}
	if n, _ := s.Route(ctx, func(OutboxEvent) []string { return []string{"x"} }, t0); n != 0 {
		t.Fatalf("routed twice: %d", n)
	}
	ds, err := s.ClaimDeliveries(ctx, t0, 10)
	if err != nil || len(ds) != 3 {
		t.Fatalf("ClaimDeliveries = %d, %v", len(ds), err)
	}
	if again, _ := s.ClaimDeliveries(ctx, t0, 10); len(again) != 0 {
		t.Fatalf("claimed twice: %d", len(again))
	}
	// The process dies during the sends: at restart they are pending again,
	// in doubt, and no event is lost.
	if n, err := s.RecoverDeliveries(ctx, t0.Add(time.Second)); err != nil || n != 3 {
		t.Fatalf("RecoverDeliveries = %d, %v", n, err)
	}
	ds, _ = s.ClaimDeliveries(ctx, t0.Add(time.Second), 10)
	if len(ds) != 3 || !ds[0].InDoubt || ds[0].Attempts != 2 {
		t.Fatalf("after recovery = %+v", ds)
	}
	for _, d := range ds {
		switch d.Sink {
		case "slack":
			err = s.DeliveryDone(ctx, d.Event.Seq, d.Sink, "C1/171.1", nil, false, time.Time{}, t0.Add(2*time.Second))
		default:
			if d.Event.Kind == KindTicketOpened {
				err = s.DeliveryDone(ctx, d.Event.Seq, d.Sink, "", errors.New("HTTP 400"), true, time.Time{}, t0.Add(2*time.Second))
			} else {
				err = s.DeliveryDone(ctx, d.Event.Seq, d.Sink, "", errors.New("HTTP 503"), false, t0.Add(time.Minute), t0.Add(2*time.Second))
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if ref, _ := s.DeliveryRef(ctx, "proposal/1/awaiting_approval", "slack"); ref != "C1/171.1" {
		t.Errorf("slack ref = %q", ref)
	}
	st, err := s.OutboxState(ctx)
	if err != nil || st.Dead["webhook"] != 1 || st.Backlog["webhook"] != 1 || st.OldestPending.IsZero() {
		t.Errorf("OutboxState = %+v, %v", st, err)
	}
	dead, _ := s.Deliveries(ctx, DeliveryFilter{Statuses: []string{DeliveryDead}})
	if len(dead) != 1 || dead[0].LastError != "HTTP 400" || dead[0].Event.Kind != KindTicketOpened {
		t.Errorf("dead = %+v", dead)
	}
	// Not due yet; due after the backoff.
	if ds, _ := s.ClaimDeliveries(ctx, t0.Add(30*time.Second), 10); len(ds) != 0 {
		t.Errorf("claimed before its backoff: %d", len(ds))
	}
	if ds, _ := s.ClaimDeliveries(ctx, t0.Add(time.Minute), 10); len(ds) != 1 {
		t.Errorf("due after backoff: %d", len(ds))
	}
}

func TestGauges(t *testing.T) { forEachBackend(t, testGauges) }

func testGauges(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	proposed(t, s, "store:4")
	proposed(t, s, "store:5")
	cs, err := s.OpenTicketCounts(ctx)
	if err != nil || len(cs) != 1 || cs[0].N != 2 || cs[0].Invariant != "store_down" {
		t.Errorf("OpenTicketCounts = %+v, %v", cs, err)
	}
	n, oldest, err := s.AwaitingApproval(ctx, t0.Add(time.Minute))
	if err != nil || n != 2 || !oldest.Equal(t0) {
		t.Errorf("AwaitingApproval = %d, %v, %v", n, oldest, err)
	}
	if n, _, _ := s.AwaitingApproval(ctx, t0.Add(2*time.Hour)); n != 0 {
		t.Errorf("expired proposals counted: %d", n)
	}
}
