package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/ticket"
)

func TestMonitorStateRoundTrip(t *testing.T) { forEachBackend(t, testMonitorStateRoundTrip) }

func testMonitorStateRoundTrip(t *testing.T, be backend) {
	s, path := be.openTemp(t)
	ctx := context.Background()
	st, err := s.LoadMonitorState(ctx)
	if err != nil || len(st.Alerts) != 0 || len(st.Histories) != 0 {
		t.Fatalf("fresh state = %+v, %v", st, err)
	}
	want := MonitorState{
		Alerts: []MonitorAlert{
			{Key: "store_down/store:4", Invariant: "store_down", ActiveAt: t0, Firing: true},
			{Key: "store_slow/store:5", Invariant: "store_slow", ActiveAt: t0.Add(time.Second)},
		},
		Histories: map[string]json.RawMessage{"invariant/store_offline_stuck": json.RawMessage(`{"4":{"lowest":7}}`)},
	}
	if err := s.SaveMonitorState(ctx, want, t0); err != nil {
		t.Fatal(err)
	}
	// Saving again replaces the alerts and keeps unnamed histories.
	want.Alerts = want.Alerts[1:]
	if err := s.SaveMonitorState(ctx, MonitorState{Alerts: want.Alerts}, t0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	got, err := s.LoadMonitorState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Alerts) != 1 || got.Alerts[0].Key != "store_slow/store:5" || !got.Alerts[0].ActiveAt.Equal(t0.Add(time.Second)) || got.Alerts[0].Firing {
		t.Errorf("alerts = %+v", got.Alerts)
	}
	if string(got.Histories["invariant/store_offline_stuck"]) != `{"4":{"lowest":7}}` {
		t.Errorf("histories = %s", got.Histories)
	}
	if err := s.SaveMonitorState(ctx, MonitorState{Histories: map[string]json.RawMessage{"x": json.RawMessage(`{`)}}, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid JSON history: %v", err)
	}
}

func TestLinkEscalateRediagnose(t *testing.T) { forEachBackend(t, testLinkEscalateRediagnose) }

func testLinkEscalateRediagnose(t *testing.T, be backend) {
	s, _ := be.openTemp(t)
	ctx := context.Background()
	root, _, _ := s.Observe(ctx, obs("store_disconnected", "store:4", `{}`), t0)
	child, _, _ := s.Observe(ctx, obs("region_down_peer", "cluster", `{}`), t0)
	grand, _, _ := s.Observe(ctx, obs("store_down", "store:4", `{}`), t0)
	if err := s.LinkTicket(ctx, child.ID, root.ID, t0); err != nil {
		t.Fatal(err)
	}
	// Linking to a linked ticket follows it to its root.
	if err := s.LinkTicket(ctx, grand.ID, child.ID, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkTicket(ctx, root.ID, root.ID, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("self link: %v", err)
	}
	if err := s.LinkTicket(ctx, 999, root.ID, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown child: %v", err)
	}
	ids, err := s.LinkedTickets(ctx, root.ID)
	if err != nil || len(ids) != 2 || ids[0] != child.ID || ids[1] != grand.ID {
		t.Errorf("linked = %v, %v", ids, err)
	}
	got, _ := s.Ticket(ctx, child.ID)
	if got.RootID == nil || *got.RootID != root.ID {
		t.Errorf("child root = %v", got.RootID)
	}
	keys, err := s.OpenTicketKeys(ctx)
	if err != nil || keys["store_down/store:4"] != grand.ID || len(keys) != 3 {
		t.Errorf("open keys = %v, %v", keys, err)
	}

	// Rediagnosis needs a diagnosed ticket; it archives the diagnosis.
	if err := s.RequestRediagnosis(ctx, root.ID, "operator asked", t0); err == nil {
		t.Error("rediagnosis of an open ticket accepted")
	}
	if _, err := s.SaveDiagnosis(ctx, root.ID, DiagnosisInput{Markdown: "network partition", Backend: "rules"}, t0); err != nil {
		t.Fatal(err)
	}
	raised, err := s.EscalateTicket(ctx, root.ID, ticket.Emergency, "store 4 is Down\x1b[31m", t0.Add(time.Minute))
	if err != nil || !raised {
		t.Fatalf("escalate = %v, %v", raised, err)
	}
	got, _ = s.Ticket(ctx, root.ID)
	if got.Severity != ticket.Emergency || got.Status != ticket.Open {
		t.Errorf("escalated ticket = %s %s", got.Severity, got.Status)
	}
	// Never lowered.
	if raised, _ := s.EscalateTicket(ctx, root.ID, ticket.Warning, "x", t0); raised {
		t.Error("severity lowered")
	}
	if _, err := s.SaveDiagnosis(ctx, root.ID, DiagnosisInput{Markdown: "store down", Backend: "rules"}, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestRediagnosis(ctx, root.ID, "  human asked  ", t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	hist, err := s.Diagnoses(ctx, root.ID)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	if hist[0].Markdown != "network partition" || hist[0].Reason != "escalated to emergency: store 4 is Down [31m" ||
		hist[1].Markdown != "store down" || hist[1].Reason != "human asked" {
		t.Errorf("history = %+v", hist)
	}
	if err := s.RequestRediagnosis(ctx, root.ID, "", t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty reason: %v", err)
	}
}
