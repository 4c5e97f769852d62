package tikvsim

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/pingcap/kvproto/pkg/eraftpb"
	"github.com/pingcap/kvproto/pkg/metapb"
	"github.com/pingcap/kvproto/pkg/pdpb"
)

// region is the simulator's copy of one Raft group. All fields are guarded
// by Sim.mu. meta is never shared with a request: heartbeats carry clones.
type region struct {
	meta     *metapb.Region
	leaderID uint64 // peer ID of the leader
	term     uint64

	size uint64 // approximate size, bytes
	keys uint64 // approximate key count

	writeBytes uint64 // bytes written per second (hot region fault)
	writeKeys  uint64 // keys written per second

	pending map[uint64]bool      // store ID -> peer reported pending
	down    map[uint64]time.Time // store ID -> peer reported down since

	lastHB    time.Time // last heartbeat queued for sending
	sent      bool      // heartbeated at least once
	splitting bool      // a split is being asked for
	delaying  bool      // a command waits for its leader store's apply delay
	// silent stops the region's heartbeats (SetRegionSilent): its leader
	// stopped reporting while its store keeps heartbeating.
	silent bool
}

func (r *region) id() uint64 { return r.meta.GetId() }

func (r *region) peerOnStore(storeID uint64) *metapb.Peer {
	for _, p := range r.meta.GetPeers() {
		if p.GetStoreId() == storeID {
			return p
		}
	}
	return nil
}

func (r *region) leader() *metapb.Peer {
	for _, p := range r.meta.GetPeers() {
		if p.GetId() == r.leaderID {
			return p
		}
	}
	return nil
}

func (r *region) leaderStore() uint64 { return r.leader().GetStoreId() }

func (r *region) hot() bool { return r.writeBytes > 0 || r.writeKeys > 0 }

// canLead reports whether a peer with this role may become leader.
func canLead(role metapb.PeerRole) bool {
	return role == metapb.PeerRole_Voter || role == metapb.PeerRole_IncomingVoter
}

func inJoint(r *metapb.Region) bool {
	for _, p := range r.GetPeers() {
		if p.GetRole() == metapb.PeerRole_IncomingVoter || p.GetRole() == metapb.PeerRole_DemotingVoter {
			return true
		}
	}
	return false
}

func epochEqual(a, b *metapb.RegionEpoch) bool {
	return a.GetConfVer() == b.GetConfVer() && a.GetVersion() == b.GetVersion()
}

func clonePeer(p *metapb.Peer) *metapb.Peer {
	if p == nil {
		return nil
	}
	return &metapb.Peer{Id: p.Id, StoreId: p.StoreId, Role: p.Role, IsWitness: p.IsWitness}
}

func cloneRegion(r *metapb.Region) *metapb.Region {
	out := &metapb.Region{
		Id:       r.GetId(),
		StartKey: slices.Clone(r.GetStartKey()),
		EndKey:   slices.Clone(r.GetEndKey()),
		RegionEpoch: &metapb.RegionEpoch{
			ConfVer: r.GetRegionEpoch().GetConfVer(),
			Version: r.GetRegionEpoch().GetVersion(),
		},
		Peers: make([]*metapb.Peer, 0, len(r.GetPeers())),
	}
	for _, p := range r.GetPeers() {
		out.Peers = append(out.Peers, clonePeer(p))
	}
	return out
}

// transferLeader applies a TransferLeader command. alive reports whether a
// store is running. It returns whether the leader changed; a transfer to a
// dead store, a learner or the current leader is refused (notes fact 6).
func (r *region) transferLeader(tl *pdpb.TransferLeader, alive func(uint64) bool) bool {
	candidates := make([]*metapb.Peer, 0, 1+len(tl.GetPeers()))
	if tl.GetPeer() != nil {
		candidates = append(candidates, tl.GetPeer())
	}
	candidates = append(candidates, tl.GetPeers()...)
	for _, c := range candidates {
		p := r.peerOnStore(c.GetStoreId())
		if p == nil || p.GetId() != c.GetId() || !canLead(p.GetRole()) || !alive(p.GetStoreId()) {
			continue
		}
		if p.GetId() == r.leaderID {
			return false
		}
		r.leaderID = p.GetId()
		r.term++
		return true
	}
	return false
}

// changePeer applies one plain conf change (ChangePeer, or ChangePeerV2 with
// one change). ConfVer rises by exactly 1 when the change does something;
// duplicates and conflicting peer IDs are no-ops (notes facts 5 and 6).
func (r *region) changePeer(cp *pdpb.ChangePeer) (bool, error) {
	target := cp.GetPeer()
	if target == nil {
		return false, fmt.Errorf("%w: change peer without peer", ErrInvalidArgument)
	}
	p := r.peerOnStore(target.GetStoreId())
	if p != nil && p.GetId() != target.GetId() {
		return false, fmt.Errorf("store %d already holds peer %d, not %d", target.GetStoreId(), p.GetId(), target.GetId())
	}
	switch cp.GetChangeType() {
	case eraftpb.ConfChangeType_AddNode:
		switch {
		case p == nil:
			r.meta.Peers = append(r.meta.Peers, &metapb.Peer{Id: target.GetId(), StoreId: target.GetStoreId(), Role: metapb.PeerRole_Voter})
		case p.GetRole() == metapb.PeerRole_Learner:
			p.Role = metapb.PeerRole_Voter
		default:
			return false, nil
		}
	case eraftpb.ConfChangeType_AddLearnerNode:
		switch {
		case p == nil:
			r.meta.Peers = append(r.meta.Peers, &metapb.Peer{Id: target.GetId(), StoreId: target.GetStoreId(), Role: metapb.PeerRole_Learner})
		case p.GetRole() == metapb.PeerRole_Voter:
			if p.GetId() == r.leaderID {
				return false, fmt.Errorf("cannot demote leader peer %d", p.GetId())
			}
			p.Role = metapb.PeerRole_Learner
		default:
			return false, nil
		}
	case eraftpb.ConfChangeType_RemoveNode:
		if p == nil {
			return false, nil
		}
		if p.GetId() == r.leaderID {
			return false, fmt.Errorf("cannot remove leader peer %d", p.GetId())
		}
		r.removePeer(p.GetId())
	default:
		return false, fmt.Errorf("%w: change type %v", ErrInvalidArgument, cp.GetChangeType())
	}
	r.meta.RegionEpoch.ConfVer++
	return true, nil
}

func (r *region) removePeer(peerID uint64) {
	for i, p := range r.meta.Peers {
		if p.GetId() == peerID {
			delete(r.pending, p.GetStoreId())
			delete(r.down, p.GetStoreId())
			r.meta.Peers = slices.Delete(r.meta.Peers, i, i+1)
			return
		}
	}
}

// changePeerV2 applies a ChangePeerV2 command: no change = leave joint
// state, one change = plain step, several = enter joint state. ConfVer rises
// by len(changes) on entering and by incoming+demoting peers on leaving, as
// PD's ChangePeerV2Enter/Leave steps expect (PD pkg/schedule/operator/step.go).
func (r *region) changePeerV2(cp *pdpb.ChangePeerV2) (bool, error) {
	changes := cp.GetChanges()
	switch len(changes) {
	case 0:
		return r.leaveJoint(), nil
	case 1:
		return r.changePeer(changes[0])
	}
	if inJoint(r.meta) {
		return false, nil // already entered: a re-sent step
	}
	next := cloneRegion(r.meta)
	find := func(storeID uint64) (int, *metapb.Peer) {
		for i, p := range next.Peers {
			if p.GetStoreId() == storeID {
				return i, p
			}
		}
		return -1, nil
	}
	for _, c := range changes {
		target := c.GetPeer()
		i, p := find(target.GetStoreId())
		if p != nil && p.GetId() != target.GetId() {
			return false, fmt.Errorf("store %d already holds peer %d, not %d", target.GetStoreId(), p.GetId(), target.GetId())
		}
		switch c.GetChangeType() {
		case eraftpb.ConfChangeType_AddNode:
			switch {
			case p == nil:
				next.Peers = append(next.Peers, &metapb.Peer{Id: target.GetId(), StoreId: target.GetStoreId(), Role: metapb.PeerRole_IncomingVoter})
			case p.GetRole() == metapb.PeerRole_Learner:
				p.Role = metapb.PeerRole_IncomingVoter
			default:
				return false, fmt.Errorf("peer %d is already a voter", p.GetId())
			}
		case eraftpb.ConfChangeType_AddLearnerNode:
			switch {
			case p == nil:
				next.Peers = append(next.Peers, &metapb.Peer{Id: target.GetId(), StoreId: target.GetStoreId(), Role: metapb.PeerRole_Learner})
			case p.GetRole() == metapb.PeerRole_Voter:
				p.Role = metapb.PeerRole_DemotingVoter
			default:
				return false, fmt.Errorf("peer %d is already a learner", p.GetId())
			}
		case eraftpb.ConfChangeType_RemoveNode:
			if p == nil {
				return false, fmt.Errorf("no peer on store %d to remove", target.GetStoreId())
			}
			if p.GetId() == r.leaderID {
				return false, fmt.Errorf("cannot remove leader peer %d", p.GetId())
			}
			next.Peers = slices.Delete(next.Peers, i, i+1)
		default:
			return false, fmt.Errorf("%w: change type %v", ErrInvalidArgument, c.GetChangeType())
		}
	}
	next.RegionEpoch.ConfVer += uint64(len(changes))
	for _, p := range r.meta.Peers {
		if _, q := find(p.GetStoreId()); q == nil {
			delete(r.pending, p.GetStoreId())
			delete(r.down, p.GetStoreId())
		}
	}
	r.meta = next
	return true, nil
}

// leaveJoint turns incoming voters into voters and demoting voters into
// learners. If the leader was demoted, leadership moves to a voter.
func (r *region) leaveJoint() bool {
	var n uint64
	for _, p := range r.meta.Peers {
		switch p.GetRole() {
		case metapb.PeerRole_IncomingVoter:
			p.Role = metapb.PeerRole_Voter
			n++
		case metapb.PeerRole_DemotingVoter:
			p.Role = metapb.PeerRole_Learner
			n++
		}
	}
	if n == 0 {
		return false
	}
	r.meta.RegionEpoch.ConfVer += n
	if l := r.leader(); l == nil || l.GetRole() != metapb.PeerRole_Voter {
		for _, p := range r.meta.Peers {
			if p.GetRole() == metapb.PeerRole_Voter {
				r.leaderID = p.GetId()
				r.term++
				break
			}
		}
	}
	return true
}

// splitKeys returns the sorted, de-duplicated split keys strictly inside
// the region's range. With no usable keys (policy SCAN/APPROXIMATE) it picks
// the middle of the range.
func (r *region) splitKeys(sr *pdpb.SplitRegion) [][]byte {
	start, end := r.meta.GetStartKey(), r.meta.GetEndKey()
	var keys [][]byte
	for _, k := range sr.GetKeys() {
		if inside(k, start, end) {
			keys = append(keys, slices.Clone(k))
		}
	}
	if len(keys) == 0 && sr.GetPolicy() != pdpb.CheckPolicy_USEKEY {
		if m := midKey(start, end); m != nil {
			keys = append(keys, m)
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	return slices.CompactFunc(keys, bytes.Equal)
}

// inside reports start < k < end, where an empty end is +infinity.
func inside(k, start, end []byte) bool {
	return len(k) > 0 && bytes.Compare(k, start) > 0 && (len(end) == 0 || bytes.Compare(k, end) < 0)
}

// midKey returns a key strictly between start and end (empty end means
// +infinity), or nil if none exists at reasonable length.
func midKey(start, end []byte) []byte {
	for n := max(len(start), len(end)) + 1; n <= 64; n++ {
		a := make([]byte, n)
		copy(a, start)
		b := make([]byte, n)
		if len(end) == 0 {
			for i := range b {
				b[i] = 0xff
			}
		} else {
			copy(b, end)
		}
		// m = (a + b) / 2 over n-byte big-endian numbers.
		m := make([]byte, n)
		carry := 0
		for i := n - 1; i >= 0; i-- {
			s := int(a[i]) + int(b[i]) + carry
			m[i] = byte(s)
			carry = s >> 8
		}
		for i := 0; i < n; i++ {
			v := int(m[i]) | carry<<8
			m[i] = byte(v >> 1)
			carry = v & 1
		}
		if inside(m, start, end) {
			return m
		}
	}
	return nil
}

// splitInto applies a split at keys with the IDs PD allocated (right-derive,
// like TiKV: the new regions take the left ranges, the original keeps the
// rightmost). Every region's version becomes old version + len(keys).
// It returns the new regions, left to right.
func (r *region) splitInto(keys [][]byte, ids []*pdpb.SplitID) ([]*region, error) {
	if len(ids) != len(keys) {
		return nil, fmt.Errorf("PD allocated %d split IDs for %d keys", len(ids), len(keys))
	}
	for _, id := range ids {
		if len(id.GetNewPeerIds()) != len(r.meta.GetPeers()) {
			return nil, fmt.Errorf("PD allocated %d peer IDs for %d peers", len(id.GetNewPeerIds()), len(r.meta.GetPeers()))
		}
	}
	n := uint64(len(keys))
	version := r.meta.GetRegionEpoch().GetVersion() + n
	leaderStore := r.leaderStore()
	size, nkeys := r.size/(n+1), r.keys/(n+1)
	out := make([]*region, 0, n)
	start := r.meta.GetStartKey()
	for i, k := range keys {
		meta := &metapb.Region{
			Id:          ids[i].GetNewRegionId(),
			StartKey:    slices.Clone(start),
			EndKey:      slices.Clone(k),
			RegionEpoch: &metapb.RegionEpoch{ConfVer: r.meta.GetRegionEpoch().GetConfVer(), Version: version},
		}
		nr := &region{meta: meta, size: size, keys: nkeys, term: r.term}
		for j, p := range r.meta.GetPeers() {
			np := &metapb.Peer{Id: ids[i].GetNewPeerIds()[j], StoreId: p.GetStoreId(), Role: p.GetRole()}
			meta.Peers = append(meta.Peers, np)
			if p.GetStoreId() == leaderStore {
				nr.leaderID = np.GetId()
			}
		}
		out = append(out, nr)
		start = k
	}
	r.meta.StartKey = slices.Clone(start)
	r.meta.RegionEpoch.Version = version
	r.size, r.keys = size, nkeys
	return out, nil
}

// sameStores reports whether two regions have peers on the same stores,
// which TiKV requires for a merge.
func sameStores(a, b *metapb.Region) bool {
	if len(a.GetPeers()) != len(b.GetPeers()) {
		return false
	}
	for _, p := range a.GetPeers() {
		found := false
		for _, q := range b.GetPeers() {
			if q.GetStoreId() == p.GetStoreId() {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
