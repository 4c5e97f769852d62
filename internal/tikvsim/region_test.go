package tikvsim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pingcap/kvproto/pkg/eraftpb"
	"github.com/pingcap/kvproto/pkg/metapb"
	"github.com/pingcap/kvproto/pkg/pdpb"
)

func testRegion() *region {
	return &region{
		meta: &metapb.Region{
			Id: 10, StartKey: []byte("a"), EndKey: []byte("z"),
			RegionEpoch: &metapb.RegionEpoch{ConfVer: 5, Version: 7},
			Peers: []*metapb.Peer{
				{Id: 11, StoreId: 1}, {Id: 12, StoreId: 2}, {Id: 13, StoreId: 3},
			},
		},
		leaderID: 11,
		size:     90,
		keys:     900,
	}
}

func roles(r *region) map[uint64]metapb.PeerRole {
	m := map[uint64]metapb.PeerRole{}
	for _, p := range r.meta.Peers {
		m[p.StoreId] = p.Role
	}
	return m
}

func TestChangePeerConfVerAndDuplicates(t *testing.T) {
	r := testRegion()
	add := &pdpb.ChangePeer{ChangeType: eraftpb.ConfChangeType_AddLearnerNode, Peer: &metapb.Peer{Id: 14, StoreId: 4}}
	if ok, err := r.changePeer(add); !ok || err != nil {
		t.Fatalf("add learner: %v %v", ok, err)
	}
	if ok, _ := r.changePeer(add); ok {
		t.Fatal("duplicate add learner changed state")
	}
	promote := &pdpb.ChangePeer{ChangeType: eraftpb.ConfChangeType_AddNode, Peer: &metapb.Peer{Id: 14, StoreId: 4}}
	if ok, err := r.changePeer(promote); !ok || err != nil {
		t.Fatalf("promote: %v %v", ok, err)
	}
	remove := &pdpb.ChangePeer{ChangeType: eraftpb.ConfChangeType_RemoveNode, Peer: &metapb.Peer{Id: 12, StoreId: 2}}
	if ok, err := r.changePeer(remove); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if got := r.meta.RegionEpoch.ConfVer; got != 8 {
		t.Fatalf("conf_ver %d, want 5+3", got)
	}
	if _, err := r.changePeer(&pdpb.ChangePeer{ChangeType: eraftpb.ConfChangeType_RemoveNode, Peer: &metapb.Peer{Id: 11, StoreId: 1}}); err == nil {
		t.Fatal("removing the leader was accepted")
	}
	if _, err := r.changePeer(&pdpb.ChangePeer{ChangeType: eraftpb.ConfChangeType_AddNode, Peer: &metapb.Peer{Id: 99, StoreId: 3}}); err == nil {
		t.Fatal("conflicting peer id accepted")
	}
	if r.meta.RegionEpoch.ConfVer != 8 || r.meta.RegionEpoch.Version != 7 {
		t.Fatalf("refused changes moved the epoch: %v", r.meta.RegionEpoch)
	}
}

func TestChangePeerV2JointConsensus(t *testing.T) {
	r := testRegion()
	r.meta.Peers = append(r.meta.Peers, &metapb.Peer{Id: 14, StoreId: 4, Role: metapb.PeerRole_Learner})
	enter := &pdpb.ChangePeerV2{Changes: []*pdpb.ChangePeer{
		{ChangeType: eraftpb.ConfChangeType_AddNode, Peer: &metapb.Peer{Id: 14, StoreId: 4}},
		{ChangeType: eraftpb.ConfChangeType_AddLearnerNode, Peer: &metapb.Peer{Id: 12, StoreId: 2}},
	}}
	if ok, err := r.changePeerV2(enter); !ok || err != nil {
		t.Fatalf("enter joint: %v %v", ok, err)
	}
	if got := roles(r); got[4] != metapb.PeerRole_IncomingVoter || got[2] != metapb.PeerRole_DemotingVoter {
		t.Fatalf("roles after enter: %v", got)
	}
	if r.meta.RegionEpoch.ConfVer != 7 {
		t.Fatalf("conf_ver %d after enter, want 5+2", r.meta.RegionEpoch.ConfVer)
	}
	if ok, _ := r.changePeerV2(enter); ok {
		t.Fatal("re-sent enter changed state")
	}
	if ok, _ := r.changePeerV2(&pdpb.ChangePeerV2{}); !ok {
		t.Fatal("leave joint did nothing")
	}
	if got := roles(r); got[4] != metapb.PeerRole_Voter || got[2] != metapb.PeerRole_Learner {
		t.Fatalf("roles after leave: %v", got)
	}
	if r.meta.RegionEpoch.ConfVer != 9 {
		t.Fatalf("conf_ver %d after leave, want 7+2", r.meta.RegionEpoch.ConfVer)
	}
	if ok, _ := r.changePeerV2(&pdpb.ChangePeerV2{}); ok {
		t.Fatal("second leave changed state")
	}
}

func TestLeaveJointMovesDemotedLeader(t *testing.T) {
	r := testRegion()
	r.meta.Peers[0].Role = metapb.PeerRole_DemotingVoter
	r.meta.Peers = append(r.meta.Peers, &metapb.Peer{Id: 14, StoreId: 4, Role: metapb.PeerRole_IncomingVoter})
	if !r.leaveJoint() {
		t.Fatal("leave joint did nothing")
	}
	if l := r.leader(); l == nil || l.Role != metapb.PeerRole_Voter || l.StoreId == 1 {
		t.Fatalf("leader %v after demotion, want a voter off store 1", l)
	}
}

func TestTransferLeaderRefusesDeadAndLearner(t *testing.T) {
	r := testRegion()
	r.meta.Peers[2].Role = metapb.PeerRole_Learner
	alive := func(id uint64) bool { return id != 2 }
	if r.transferLeader(&pdpb.TransferLeader{Peer: &metapb.Peer{Id: 12, StoreId: 2}}, alive) {
		t.Fatal("transferred to a dead store")
	}
	if r.transferLeader(&pdpb.TransferLeader{Peer: &metapb.Peer{Id: 13, StoreId: 3}}, alive) {
		t.Fatal("transferred to a learner")
	}
	if !r.transferLeader(&pdpb.TransferLeader{Peer: &metapb.Peer{Id: 12, StoreId: 2}, Peers: []*metapb.Peer{{Id: 11, StoreId: 1}}}, func(uint64) bool { return true }) {
		t.Fatal("transfer to a live voter refused")
	}
	if r.leaderStore() != 2 || r.meta.RegionEpoch.ConfVer != 5 || r.meta.RegionEpoch.Version != 7 {
		t.Fatalf("leader store %d epoch %v", r.leaderStore(), r.meta.RegionEpoch)
	}
}

func TestSplitRightDerive(t *testing.T) {
	r := testRegion()
	keys := r.splitKeys(&pdpb.SplitRegion{Policy: pdpb.CheckPolicy_USEKEY, Keys: [][]byte{[]byte("m"), []byte("c"), []byte("m"), []byte("zz"), []byte("a")}})
	if len(keys) != 2 || string(keys[0]) != "c" || string(keys[1]) != "m" {
		t.Fatalf("split keys %q, want [c m]", keys)
	}
	ids := []*pdpb.SplitID{{NewRegionId: 20, NewPeerIds: []uint64{21, 22, 23}}, {NewRegionId: 30, NewPeerIds: []uint64{31, 32, 33}}}
	news, err := r.splitInto(keys, ids)
	if err != nil {
		t.Fatal(err)
	}
	check := func(rg *region, id uint64, start, end string, leaderStore uint64) {
		t.Helper()
		if rg.id() != id || string(rg.meta.StartKey) != start || string(rg.meta.EndKey) != end ||
			rg.meta.RegionEpoch.Version != 9 || rg.meta.RegionEpoch.ConfVer != 5 || rg.leaderStore() != leaderStore {
			t.Fatalf("region %d [%q,%q) epoch %v leader store %d", rg.id(), rg.meta.StartKey, rg.meta.EndKey, rg.meta.RegionEpoch, rg.leaderStore())
		}
	}
	check(news[0], 20, "a", "c", 1)
	check(news[1], 30, "c", "m", 1)
	check(r, 10, "m", "z", 1)
	if r.size != 30 || news[0].size != 30 {
		t.Fatalf("sizes %d %d, want 90/3", r.size, news[0].size)
	}
	if _, err := testRegion().splitInto(keys, ids[:1]); err == nil {
		t.Fatal("split with too few IDs accepted")
	}
	if got := testRegion().splitKeys(&pdpb.SplitRegion{Policy: pdpb.CheckPolicy_USEKEY}); len(got) != 0 {
		t.Fatalf("usekey without keys gave %q", got)
	}
}

func TestMidKey(t *testing.T) {
	cases := [][2]string{{"", ""}, {"", "t00000001"}, {"t00000001", "t00000002"}, {"a", "a\x00\x01"}, {"a", ""}, {"\xff\xff", ""}}
	for _, c := range cases {
		m := midKey([]byte(c[0]), []byte(c[1]))
		if m == nil || !inside(m, []byte(c[0]), []byte(c[1])) {
			t.Errorf("midKey(%q, %q) = %q, not strictly inside", c[0], c[1], m)
		}
	}
	// No key lies strictly between "a" and "a\x00".
	if m := midKey([]byte("a"), []byte("a\x00")); m != nil {
		t.Errorf("midKey(a, a\\x00) = %q, want nil", m)
	}
}

func TestPlacement(t *testing.T) {
	for _, skew := range []bool{false, true} {
		leaders := map[int]int{}
		for i := 0; i < 30; i++ {
			p := placement(i, 5, 3, skew)
			seen := map[int]bool{}
			for _, s := range p {
				if seen[s] || s < 0 || s >= 5 {
					t.Fatalf("placement(%d, skew=%v) = %v", i, skew, p)
				}
				seen[s] = true
			}
			if i == 0 && p[0] != 0 {
				t.Fatalf("region 0 must have its leader on store 0 (bootstrap): %v", p)
			}
			leaders[p[0]]++
		}
		if skew && leaders[0] != 30 {
			t.Fatalf("skew: leaders %v", leaders)
		}
		if !skew && leaders[0] != 6 {
			t.Fatalf("no skew: leaders %v", leaders)
		}
	}
}

func TestStartValidatesConfig(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{
		{PD: ""},
		{PD: "http://127.0.0.1:1/x y"},
		{PD: "http://127.0.0.1:1", Stores: 2, Replicas: 3},
		{PD: "http://127.0.0.1:1", Regions: -1},
		{PD: "http://127.0.0.1:1", RegionHeartbeat: time.Millisecond},
	} {
		if _, err := Start(ctx, cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Start(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestStartFailsWhenPDUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, Config{PD: "http://127.0.0.1:1"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start against a closed port = %v, want a deadline error", err)
	}
}
