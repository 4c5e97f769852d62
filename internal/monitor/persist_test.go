package monitor

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/tikv"
)

// countingState is a StateStore that records every save.
type countingState struct {
	mu    sync.Mutex
	saves []store.MonitorState
	docs  map[string]json.RawMessage
	sink  *memSink
}

func (c *countingState) LoadMonitorState(context.Context) (store.MonitorState, error) {
	return store.MonitorState{Histories: map[string]json.RawMessage{}}, nil
}

func (c *countingState) SaveMonitorState(_ context.Context, st store.MonitorState, _ time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.saves = append(c.saves, st)
	if c.docs == nil {
		c.docs = map[string]json.RawMessage{}
	}
	for k, v := range st.Histories {
		c.docs[k] = v
	}
	return nil
}

func (c *countingState) OpenTicketKeys(context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for k, t := range c.sink.open() {
		out[k] = t.ID
	}
	return out, nil
}

// stateful is a small Stateful whose document the test changes.
type stateful struct{ doc string }

func (s *stateful) StateName() string                      { return "test/state" }
func (s *stateful) MarshalState() (json.RawMessage, error) { return json.RawMessage(s.doc), nil }
func (s *stateful) UnmarshalState(d json.RawMessage) error { s.doc = string(d); return nil }
func (s *statefulInv) States() []invariant.Stateful {
	return []invariant.Stateful{s.st, historyRegionsOf(s.h)}
}
func historyRegionsOf(h *invariant.History) invariant.Stateful { return h.States()[1] }

// statefulInv is a fakeInv holding a Stateful and a History.
type statefulInv struct {
	*fakeInv
	st *stateful
	h  *invariant.History
}

// Issue 17: persist writes only what changed. Unchanged cycles write
// nothing; a changed alert set or document is written; the History's region
// tracks (a Digester) are re-marshalled only when a track changes.
func TestPersistSkipsUnchanged(t *testing.T) {
	inv := &statefulInv{fakeInv: &fakeInv{name: "x"}, st: &stateful{doc: `{"n":1}`}, h: invariant.NewHistory()}
	sink := &memSink{}
	state := &countingState{sink: sink}
	m := New(Options{Invariants: []invariant.Invariant{inv}, Collect: (&fakeCollect{}).collect, Sink: sink, State: state, Quiet: time.Second})
	saves := func() int { state.mu.Lock(); defer state.mu.Unlock(); return len(state.saves) }

	runOnce(t, m, at(0))
	if saves() != 1 {
		t.Fatalf("first cycle: %d saves, want 1", saves())
	}
	runOnce(t, m, at(10))
	runOnce(t, m, at(20))
	if saves() != 1 {
		t.Errorf("unchanged cycles saved again: %d saves", saves())
	}
	inv.set("store:1") // a new alert
	runOnce(t, m, at(30))
	if saves() != 2 || len(state.saves[1].Alerts) != 1 || len(state.saves[1].Histories) != 0 {
		t.Fatalf("new alert: saves %d, last %+v; want the alert and no unchanged history", saves(), state.saves[len(state.saves)-1])
	}
	inv.st.doc = `{"n":2}`
	runOnce(t, m, at(40))
	if saves() != 3 || string(state.saves[2].Histories["test/state"]) != `{"n":2}` {
		t.Fatalf("changed document: saves %d, last %+v", saves(), state.saves[len(state.saves)-1])
	}
	// A region track appears in the History: its document is saved once.
	snap := &tikv.Snapshot{Checks: map[string][]pd.Region{tikv.CheckPendingPeer: {{ID: 7, PendingPeers: []pd.Peer{{ID: 70, StoreID: 2}}}}}}
	inv.h.Observe(snap, at(45))
	runOnce(t, m, at(50))
	runOnce(t, m, at(60))
	if saves() != 4 {
		t.Fatalf("region track: %d saves, want 4: %+v", saves(), state.saves[3:])
	}
	if doc := string(state.docs["history/regions"]); doc == "" || !json.Valid([]byte(doc)) {
		t.Fatalf("history/regions not saved: %q", doc)
	}
	// Restore into a fresh History from the saved documents.
	h2 := invariant.NewHistory()
	if err := historyRegionsOf(h2).UnmarshalState(state.docs["history/regions"]); err != nil {
		t.Fatal(err)
	}
	if got := historyRegionsOf(h2).(invariant.Digester).StateDigest(); got != historyRegionsOf(inv.h).(invariant.Digester).StateDigest() {
		t.Errorf("restored region tracks differ from the saved ones")
	}
}
