package store

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/ticket"
)

// bound opens another handle on path bound to (id, name).
func bound(t *testing.T, path, id, name string) *Store {
	t.Helper()
	s := openAt(t, path)
	if err := s.BindCluster(context.Background(), id, name, t0); err != nil {
		t.Fatalf("bind %s as %q: %v", id, name, err)
	}
	return s
}

func TestClusterNameBoundToOneID(t *testing.T) {
	ctx := context.Background()
	_, path := openTemp(t)
	east := bound(t, path, "111", "east")
	if east.ClusterName() != "east" || east.ClusterID() != "111" {
		t.Fatalf("bound as %q/%q", east.ClusterName(), east.ClusterID())
	}
	bound(t, path, "222", "west") // a new name with a new id is added
	for _, c := range []struct{ id, name, want string }{
		{"333", "east", `"east" is bound to PD cluster 111, but this daemon's PD answers with cluster id 333`},
		{"111", "north", `PD cluster 111 is bound to the name "east", not "north"`},
		{"444", "", `answers with cluster id 444`}, // no name: never a silent second cluster
		{"555", "bad name", "only letters"},
	} {
		s := openAt(t, path)
		err := s.BindCluster(ctx, c.id, c.name, t0)
		if c.name != "bad name" && !errors.Is(err, ErrWrongCluster) || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bind %s as %q: %v, want %q", c.id, c.name, err, c.want)
		}
		if s.ClusterID() != "" {
			t.Errorf("refused binding set cluster %q", s.ClusterID())
		}
	}
	// No name: the name the id is bound under.
	if w := bound(t, path, "222", ""); w.ClusterName() != "west" {
		t.Errorf("unnamed bind of 222 took name %q, want west", w.ClusterName())
	}
	cs, err := east.ClusterList(ctx)
	if err != nil || len(cs) != 2 || cs[0].Name != "east" || cs[1].Name != "west" {
		t.Fatalf("clusters = %+v, %v", cs, err)
	}
	if id, err := east.ClusterNamed(ctx, "west"); err != nil || id != "222" {
		t.Errorf("ClusterNamed(west) = %q, %v", id, err)
	}
	if _, err := east.ClusterNamed(ctx, "south"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "east, west") {
		t.Errorf("ClusterNamed(south) = %v", err)
	}
}

// TestClusterScoping: two daemons' handles on one file see their own
// cluster's tickets, monitor memory, diagnosis requests, claims, recovery
// and outbox; people's reads filter by cluster.
func TestClusterScoping(t *testing.T) {
	ctx := context.Background()
	_, path := openTemp(t)
	a, b := bound(t, path, "111", "east"), bound(t, path, "222", "west")

	// The same invariant and subject on two clusters: two tickets.
	ta, openedA, err := a.Observe(ctx, obs("store_down", "store:1", `{}`), t0)
	if err != nil || !openedA {
		t.Fatal(openedA, err)
	}
	tb, openedB, err := b.Observe(ctx, obs("store_down", "store:1", `{}`), t0)
	if err != nil || !openedB || tb.ID == ta.ID || tb.ClusterID != "222" || ta.ClusterID != "111" {
		t.Fatalf("second cluster's ticket: %+v opened=%v err=%v", tb, openedB, err)
	}
	if again, opened, _ := a.Observe(ctx, obs("store_down", "store:1", `{}`), t0.Add(time.Second)); opened || again.ID != ta.ID {
		t.Errorf("dedup inside cluster east: opened=%v id=%d", opened, again.ID)
	}
	if all, _ := a.Tickets(ctx, TicketFilter{}); len(all) != 2 {
		t.Errorf("unfiltered tickets = %d, want 2", len(all))
	}
	if west, _ := a.Tickets(ctx, TicketFilter{Cluster: "222"}); len(west) != 1 || west[0].ID != tb.ID {
		t.Errorf("tickets of west = %+v", west)
	}
	if keys, _ := b.OpenTicketKeys(ctx); len(keys) != 1 || keys["store_down/store:1"] != tb.ID {
		t.Errorf("west's open keys = %v", keys)
	}
	if td, _ := a.TicketsToDiagnose(ctx, t0.Add(time.Minute), 0); len(td) != 1 || td[0].ID != ta.ID {
		t.Errorf("east diagnoses %+v", td)
	}
	// A sweep of east resolves none of west's tickets.
	if res, err := a.Sweep(ctx, []string{"store_down"}, nil, t0.Add(time.Hour), 0); err != nil || len(res) != 1 || res[0].ID != ta.ID {
		t.Errorf("east's sweep resolved %+v, %v", res, err)
	}
	if got, _ := b.Ticket(ctx, tb.ID); got.Status != ticket.Open {
		t.Errorf("west's ticket after east's sweep: %s", got.Status)
	}

	// Monitor memory per cluster.
	if err := a.SaveMonitorState(ctx, MonitorState{Alerts: []MonitorAlert{{Key: "store_down/store:9", Invariant: "store_down", ActiveAt: t0}},
		Histories: map[string]json.RawMessage{"history": json.RawMessage(`{"east":1}`)}}, t0); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveMonitorState(ctx, MonitorState{Histories: map[string]json.RawMessage{"history": json.RawMessage(`{"west":1}`)}}, t0); err != nil {
		t.Fatal(err)
	}
	ma, _ := a.LoadMonitorState(ctx)
	mb, _ := b.LoadMonitorState(ctx)
	if len(ma.Alerts) != 1 || string(ma.Histories["history"]) != `{"east":1}` || len(mb.Alerts) != 0 || string(mb.Histories["history"]) != `{"west":1}` {
		t.Errorf("monitor state east=%+v west=%+v", ma, mb)
	}

	// An approved action of west is claimed by west only.
	pid, err := b.SaveDiagnosis(ctx, tb.ID, DiagnosisInput{Markdown: "m", Backend: "rules", Proposal: &action.Proposal{
		ActionType: "remove_store", Params: json.RawMessage(`{"store_id":1}`), ExpiresAt: t0.Add(time.Hour)}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := b.Proposal(ctx, pid); p.ClusterID != "222" {
		t.Errorf("proposal cluster %q", p.ClusterID)
	}
	if _, err := a.Approve(ctx, pid, "alice", t0); err != nil { // any handle records a decision
		t.Fatal(err)
	}
	if p, err := a.ClaimNext(ctx, "east:1", t0, ClaimOptions{}); err != nil || p != nil {
		t.Fatalf("east claimed west's action: %+v, %v", p, err)
	}
	if n, _ := a.ExpireProposals(ctx, t0.Add(2*time.Hour)); n != 0 {
		t.Errorf("east expired %d of west's proposals", n)
	}
	p, err := b.ClaimNext(ctx, "west:1", t0, ClaimOptions{})
	if err != nil || p == nil || p.ID != pid {
		t.Fatalf("west's claim: %+v, %v", p, err)
	}
	if ex, _ := a.Executing(ctx); len(ex) != 0 {
		t.Errorf("east recovers west's execution: %+v", ex)
	}
	if ex, _ := b.Executing(ctx); len(ex) != 1 {
		t.Errorf("west's executing = %+v", ex)
	}
	if ps, _ := a.Proposals(ctx, ProposalFilter{Cluster: "111"}); len(ps) != 0 {
		t.Errorf("east's proposals = %+v", ps)
	}
	if _, err := b.Finish(ctx, pid, action.Completed, "done", action.Record{}, t0); err != nil {
		t.Fatal(err)
	}
	if rs, _ := a.Records(ctx, RecordFilter{Cluster: "222"}); len(rs) != 2 || rs[0].ClusterID != "222" {
		t.Errorf("west's records = %+v", rs)
	}
	if rs, _ := a.Records(ctx, RecordFilter{Cluster: "111"}); len(rs) != 0 {
		t.Errorf("east's records = %+v", rs)
	}

	// Each daemon routes its own cluster's events, which name the cluster.
	var routedA, routedB []OutboxEvent
	if _, err := a.Route(ctx, func(ev OutboxEvent) []string { routedA = append(routedA, ev); return nil }, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Route(ctx, func(ev OutboxEvent) []string { routedB = append(routedB, ev); return nil }, t0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		evs        []OutboxEvent
		id, name   string
		atLeast    int
		wantApprov bool
	}{{routedA, "111", "east", 2, false}, {routedB, "222", "west", 4, true}} {
		kinds := map[string]bool{}
		for _, ev := range c.evs {
			kinds[ev.Kind] = true
			if ev.ClusterID != c.id || ev.Cluster != c.name {
				t.Errorf("%s routed event %s of cluster %q (%q)", c.name, ev.Key, ev.ClusterID, ev.Cluster)
			}
		}
		if len(c.evs) < c.atLeast || kinds[KindApproved] != c.wantApprov {
			t.Errorf("%s routed %d events (%v)", c.name, len(c.evs), kinds)
		}
	}
	if rep, err := a.Verify(ctx); err != nil || !rep.OK {
		t.Errorf("one chain for the database: %+v, %v", rep, err)
	}
}

// TestSingleClusterDatabaseUpgrade: a database made before migration 9
// (one cluster, bound without a name) keeps working: its cluster is named
// "default", an unnamed daemon binds to it with its tickets and monitor
// memory, and a second cluster needs a name.
func TestSingleClusterDatabaseUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v8.db")
	db := rawDB(t, path)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	exec(createSchemaMigrations)
	for _, m := range migrations[:8] {
		exec(m.sql)
		exec(`INSERT INTO schema_migrations(version, name) VALUES (?, ?)`, m.version, m.name)
	}
	ts := fmtTime(t0)
	exec(`INSERT INTO clusters (id, name, first_seen) VALUES ('7001', '', ?)`, ts)
	exec(`INSERT INTO tickets (key, invariant, subject, severity, status, first_seen, last_seen, updated_at, cluster_id)
VALUES ('store_down/store:4', 'store_down', 'store:4', 'critical', 'open', ?, ?, ?, '7001')`, ts, ts, ts)
	exec(`INSERT INTO monitor_alerts (key, invariant, active_at, firing, updated_at) VALUES ('store_down/store:5', 'store_down', ?, 0, ?)`, ts, ts)
	exec(`INSERT INTO monitor_state (name, state, updated_at) VALUES ('history', '{"n":1}', ?)`, ts)
	db.Close()

	s := bound(t, path, "7001", "")
	if v, _ := s.Version(ctx); v != SchemaVersion || s.ClusterName() != DefaultClusterName {
		t.Fatalf("version %d, name %q", v, s.ClusterName())
	}
	st, err := s.LoadMonitorState(ctx)
	if err != nil || len(st.Alerts) != 1 || string(st.Histories["history"]) != `{"n":1}` {
		t.Errorf("monitor memory after the upgrade: %+v, %v", st, err)
	}
	if tk, opened, err := s.Observe(ctx, obs("store_down", "store:4", `{}`), t0.Add(time.Minute)); err != nil || opened || tk.ID != 1 {
		t.Errorf("the old ticket no longer dedups: %+v opened=%v %v", tk, opened, err)
	}
	other := openAt(t, path)
	if err := other.BindCluster(ctx, "9999", "", t0); !errors.Is(err, ErrWrongCluster) || !strings.Contains(err.Error(), `"default" (PD cluster 7001)`) {
		t.Errorf("unnamed second cluster: %v", err)
	}
	bound(t, path, "9999", "west")
	// Naming the old cluster later is allowed once: it was never named.
	if n := bound(t, path, "7001", "east"); n.ClusterName() != "east" {
		t.Errorf("renamed to %q", n.ClusterName())
	}
	if err := openAt(t, path).BindCluster(ctx, "7001", "prod", t0); !errors.Is(err, ErrWrongCluster) {
		t.Errorf("second rename: %v", err)
	}
	cs, _ := s.ClusterList(ctx)
	if len(cs) != 2 || cs[0].Name+" "+cs[1].Name != "east west" {
		t.Errorf("clusters %+v", cs)
	}
}
