package invariant

import (
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// The region tracks are their own document, whose digest ignores
// NoOperatorSince moving within a minute (issue 17), and a restore never
// makes a down region look unrepaired for longer than it was (a restart
// must not fire region_down_peer_unrepaired early).
func TestHistoryRegionsDocument(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	snap := func() *tikv.Snapshot {
		return &tikv.Snapshot{
			Checks:    map[string][]pd.Region{tikv.CheckDownPeer: {{ID: 9, DownPeers: []pd.DownPeer{{Peer: pd.Peer{ID: 90, StoreID: 3}, DownSeconds: 700}}}}},
			Operators: []pd.Operator{{RegionID: 9, Desc: "replace-down-peer"}},
		}
	}
	h := NewHistory()
	regions := h.States()[1].(interface {
		Stateful
		Digester
	})
	if regions.StateName() != "history/regions" || h.States()[0].StateName() != "history" {
		t.Fatalf("state names: %s, %s", h.States()[0].StateName(), regions.StateName())
	}
	h.Observe(snap(), t0)
	d0 := regions.StateDigest()
	h.Observe(snap(), t0.Add(10*time.Second)) // the operator still runs: NoOperatorSince moves 10 s
	if regions.StateDigest() != d0 {
		t.Errorf("digest moved within the minute: the tracks would be re-saved every cycle")
	}
	doc, err := regions.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	main, err := h.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	h.Observe(snap(), t0.Add(50*time.Second)) // live value, never saved
	live := h.st.Down[9].NoOperatorSince

	h2 := NewHistory()
	if err := h2.States()[1].UnmarshalState(doc); err != nil {
		t.Fatal(err)
	}
	if err := h2.UnmarshalState(main); err != nil { // the order does not matter
		t.Fatal(err)
	}
	got, ok := h2.st.Down[9]
	if !ok {
		t.Fatalf("down track not restored: %+v", h2.st.Down)
	}
	if got.NoOperatorSince.Before(live) {
		t.Errorf("restored NoOperatorSince %s is before the live %s: the invariant could fire early after a restart", got.NoOperatorSince, live)
	}
	if got.DownSince != t0 {
		t.Errorf("DownSince %s, want %s", got.DownSince, t0)
	}
}
