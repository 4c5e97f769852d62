package peers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tikvops/operator/internal/pd"
)

func up(ids ...uint64) []pd.StoreInfo {
	var out []pd.StoreInfo
	for _, id := range ids {
		out = append(out, pd.StoreInfo{Store: pd.StoreMeta{ID: id, StateName: pd.StateUp}})
	}
	return out
}

func peer(id, store uint64, role string) pd.Peer {
	p := pd.Peer{ID: id, StoreID: store, RoleName: role}
	if role == "Learner" {
		p.IsLearner, p.Role = true, 1
	}
	return p
}

func TestQuorum(t *testing.T) {
	three := []pd.Peer{peer(11, 1, "Voter"), peer(12, 2, "Voter"), peer(13, 3, "Voter")}
	cases := []struct {
		name      string
		r         pd.Region
		stores    []pd.StoreInfo
		quorum    string
		hasQuorum bool
		healthy   []uint64
	}{
		{"all healthy", pd.Region{ID: 1, Peers: three, Leader: three[0]}, up(1, 2, 3),
			"3 healthy of 3 voters (needs 2)", true, []uint64{1, 2, 3}},
		{"down voter on an Up store is not healthy", pd.Region{ID: 1, Peers: three, Leader: three[0],
			DownPeers: []pd.DownPeer{{Peer: three[2], DownSeconds: 40000}}}, up(1, 2, 3),
			"2 healthy of 3 voters (needs 2)", true, []uint64{1, 2}},
		{"two down: no quorum", pd.Region{ID: 1, Peers: three, Leader: three[0],
			DownPeers: []pd.DownPeer{{Peer: three[1]}, {Peer: three[2]}}}, up(1, 2, 3),
			"1 healthy of 3 voters (needs 2)", false, []uint64{1}},
		{"pending and unknown store", pd.Region{ID: 1, Peers: three, Leader: three[0],
			PendingPeers: []pd.Peer{three[2]}}, up(1, 3),
			"1 healthy of 3 voters (needs 2)", false, []uint64{1}},
		{"learner does not vote", pd.Region{ID: 1, Peers: append(slices.Clone(three), peer(14, 4, "Learner")), Leader: three[0]}, up(1, 2, 3, 4),
			"3 healthy of 3 voters (needs 2)", true, []uint64{1, 2, 3}},
		{"joint consensus: two sets", pd.Region{ID: 1, Leader: three[0], Peers: []pd.Peer{
			peer(11, 1, "Voter"), peer(12, 2, "Voter"), peer(13, 3, "DemotingVoter"), peer(14, 4, "IncomingVoter")},
			DownPeers: []pd.DownPeer{{Peer: peer(14, 4, "IncomingVoter")}}}, up(1, 2, 3, 4),
			"incoming 2 healthy of 3 voters (needs 2); outgoing 3 healthy of 3 voters (needs 2)", true, []uint64{1, 2, 3}},
		{"joint consensus: outgoing set lost", pd.Region{ID: 1, Leader: three[0], Peers: []pd.Peer{
			peer(11, 1, "Voter"), peer(12, 2, "DemotingVoter"), peer(13, 3, "DemotingVoter"), peer(14, 4, "IncomingVoter"), peer(15, 5, "IncomingVoter")}},
			up(1, 4, 5),
			"incoming 3 healthy of 3 voters (needs 2); outgoing 1 healthy of 3 voters (needs 2)", false, []uint64{1, 4, 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := New(&c.r, c.stores)
			if got := m.Quorum(); got != c.quorum {
				t.Errorf("Quorum() = %q, want %q", got, c.quorum)
			}
			if m.HasQuorum() != c.hasQuorum {
				t.Errorf("HasQuorum() = %v, want %v", m.HasQuorum(), c.hasQuorum)
			}
			if got := m.HealthyVoters(); !slices.Equal(got, c.healthy) {
				t.Errorf("HealthyVoters() = %v, want %v", got, c.healthy)
			}
		})
	}
}

func TestReplacementAndWhatIf(t *testing.T) {
	r := pd.Region{ID: 9, Peers: []pd.Peer{peer(11, 1, "Voter"), peer(12, 2, "Voter"), peer(13, 3, "Voter"),
		peer(20, 4, "Learner"), peer(30, 5, "Learner")}, Leader: peer(11, 1, "Voter"),
		DownPeers: []pd.DownPeer{{Peer: peer(13, 3, "Voter"), DownSeconds: 600}}}
	m := New(&r, up(1, 2, 3, 4, 5))
	rep, ok := m.Replacement()
	if !ok || rep.StoreID != 5 {
		t.Fatalf("Replacement() = %+v %v, want the newest learner on store 5", rep, ok)
	}
	if got := m.DownVoters(); !slices.Equal(got, []uint64{3}) {
		t.Errorf("DownVoters = %v", got)
	}
	if got := m.Moved(3, 6).Quorum(); got != "3 healthy of 3 voters (needs 2)" {
		t.Errorf("after moving the down voter: %q", got)
	}
	if got := m.Without(2).Quorum(); got != "1 healthy of 2 voters (needs 2)" {
		t.Errorf("after removing a healthy voter: %q", got)
	}
	// Without an unhealthy voter no learner is a replacement.
	r.DownPeers = nil
	if _, ok := New(&r, up(1, 2, 3, 4, 5)).Replacement(); ok {
		t.Error("a learner of a healthy region reported as a replacement")
	}
	// No leader: never "store 0".
	r.Leader = pd.Peer{}
	if m := New(&r, up(1, 2, 3)); m.HasLeader() {
		t.Error("leaderless region reported with a leader")
	}
}

// region09 is the region of tikv/pd#6573 (../shared/fixtures/
// 09-region-orphan-learners-operator-timeouts-v7.1.txt, PD 6.5/7.1),
// keys elided: 3 voters and the first 3 learners left by timed-out
// replace-rule-down-peer operators.
const region09 = `{"id":353747615,"epoch":{"conf_ver":368,"version":32492},"peers":[
{"id":353747616,"store_id":350571036,"role_name":"Voter"},
{"id":353747617,"store_id":350571030,"role_name":"Voter"},
{"id":353747618,"store_id":350571032,"role_name":"Voter"},
{"id":391098694,"store_id":350571034,"role":1,"role_name":"Learner","is_learner":true},
{"id":433406127,"store_id":350571134,"role":1,"role_name":"Learner","is_learner":true},
{"id":522453028,"store_id":350571031,"role":1,"role_name":"Learner","is_learner":true}]}`

// TestFixtures reads real PD region outputs: the pre-4.0 shape without
// role_name (R2, tikv/pd#1721) and the orphan learners of tikv/pd#6573.
func TestFixtures(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "invariant", "testdata", "R2-region-v3.x-example-pd1721.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r pd.Region
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	m := New(&r, up(1, 7, 11))
	if m.Quorum() != "3 healthy of 3 voters (needs 2)" || !m.HasLeader() || m.LeaderStore != 7 {
		t.Errorf("R2: quorum %q leader %d", m.Quorum(), m.LeaderStore)
	}

	r = pd.Region{}
	if err := json.Unmarshal([]byte(region09), &r); err != nil {
		t.Fatalf("09: %v", err)
	}
	// The voter on store 350571030 is the one PD kept trying to replace.
	r.DownPeers = []pd.DownPeer{{Peer: r.Peers[1], DownSeconds: 3600}}
	r.Leader = r.Peers[0]
	var stores []pd.StoreInfo
	for _, p := range r.Peers {
		stores = append(stores, up(p.StoreID)...)
	}
	m = New(&r, stores)
	if got := m.Learners(); len(got) != 3 {
		t.Errorf("09: learners %v, want 3", got)
	}
	if m.Quorum() != "2 healthy of 3 voters (needs 2)" {
		t.Errorf("09: quorum %q", m.Quorum())
	}
	if rep, ok := m.Replacement(); !ok || rep.ID != 522453028 {
		t.Errorf("09: replacement %+v, want the newest learner 522453028", rep)
	}
}

func TestAvailable(t *testing.T) {
	three := []pd.Peer{peer(11, 1, "Voter"), peer(12, 2, "Voter"), peer(13, 3, "Voter")}
	stores := up(1, 2, 3)
	stores[1].Store.StateName = pd.StateOffline
	r := pd.Region{ID: 1, Peers: three, Leader: three[0], PendingPeers: []pd.Peer{three[2]}}
	if !New(&r, stores).Available() {
		t.Error("Offline and pending voters still vote: region should be available")
	}
	stores[2].Store.StateName = pd.StateDown
	r.DownPeers = []pd.DownPeer{{Peer: three[0]}}
	if New(&r, stores).Available() {
		t.Error("one live voter of three: region should have lost its quorum")
	}
}
