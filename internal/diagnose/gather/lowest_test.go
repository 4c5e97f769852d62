package gather

import (
	"math/rand/v2"
	"testing"

	"github.com/tikvops/operator/internal/pd"
)

// A store's region list is streamed and only the MaxStoreRegions lowest
// ids are kept, in bounded memory whatever the list's length (issue 17: a
// store of a 100k-region cluster lists ~35 MB to keep 20).
func TestLowestRegionsBounded(t *testing.T) {
	g := &Gatherer{opts: Options{MaxStoreRegions: 20}}
	l := g.lowest()
	ids := rand.New(rand.NewPCG(1, 2)).Perm(100000)
	peak := 0
	for _, id := range ids {
		r := pd.Region{ID: uint64(id) + 1, Peers: []pd.Peer{{ID: 1, StoreID: 1}}}
		l.add(&r)
		peak = max(peak, len(l.rs))
	}
	got := l.list()
	if len(got) != 20 || got[0].ID != 1 || got[19].ID != 20 {
		t.Fatalf("kept %d regions, first %v last %v; want ids 1..20", len(got), got[0].ID, got[len(got)-1].ID)
	}
	if peak > 2*20+16 {
		t.Errorf("held %d regions at once, want at most %d", peak, 2*20+16)
	}
	// The kept regions are copies: the streamed *Region is reused.
	r := pd.Region{ID: 1, Peers: []pd.Peer{{ID: 7, StoreID: 3}}}
	l2 := g.lowest()
	l2.add(&r)
	r.Peers[0].StoreID = 9
	if l2.list()[0].Peers[0].StoreID != 3 {
		t.Error("a kept region shares its peers with the streamed one")
	}
}
