// Package peers is the operator's one model of a region's peers: voters,
// learners, witnesses, down and pending peers, and joint consensus (a
// region leaving one configuration for another votes with two voter sets:
// the incoming one — Voters and IncomingVoters — and the outgoing one —
// Voters and DemotingVoters — and needs a majority of healthy voters in
// each). Diagnosis rationales and dry runs state quorum from the same
// arithmetic so that they never disagree.
//
// Facts come from PD: a region from GET /pd/api/v1/region/id/{id} (peers
// with role_name, PD >= 4.x; before, only is_learner), stores from GET
// /pd/api/v1/stores (state_name). Nothing here reads PD or the clock.
package peers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tikvops/operator/internal/pd"
)

// Role is a peer's Raft role as PD renders role_name (metapb.PeerRole).
type Role string

// Roles. PD omits role (0 = Voter) and, before 4.x, role_name.
const (
	Voter         Role = "Voter"
	Learner       Role = "Learner"
	IncomingVoter Role = "IncomingVoter"
	DemotingVoter Role = "DemotingVoter"
)

// RoleOf returns p's role from role_name, falling back to the numeric
// role (0 Voter, 1 Learner, 2 IncomingVoter, 3 DemotingVoter) and to
// is_learner for PDs that render neither.
func RoleOf(p pd.Peer) Role {
	switch p.RoleName {
	case string(Voter), string(Learner), string(IncomingVoter), string(DemotingVoter):
		return Role(p.RoleName)
	}
	switch {
	case p.IsLearner || p.Role == 1:
		return Learner
	case p.Role == 2:
		return IncomingVoter
	case p.Role == 3:
		return DemotingVoter
	}
	return Voter
}

// Peer is one peer of a region with what PD says about its health.
type Peer struct {
	pd.Peer
	Role Role
	// Witness: the peer votes but holds no data (is_witness).
	Witness bool
	// Down: the region's leader reports the peer down (down_peers);
	// DownSeconds is how long, by the leader's count.
	Down        bool
	DownSeconds uint64
	// Pending: the peer's Raft log lags the leader's (pending_peers).
	Pending bool
	// StoreState is the state_name of the peer's store; "" when PD does not
	// list the store (Tombstone or removed).
	StoreState string
	// TiFlash: the peer's store is a TiFlash store (label engine=tiflash).
	TiFlash bool
	// Leader: the peer is the region's leader.
	Leader bool
}

// Voting reports whether the peer votes in some configuration (Voter,
// IncomingVoter or DemotingVoter).
func (p Peer) Voting() bool { return p.Role != Learner }

// Healthy reports whether the peer counts towards a quorum that can
// commit now: its store is Up, and the leader reports it neither down nor
// pending. This is the definition the dry runs use (a down voter is never
// healthy; a voter on a Disconnected, Down, Offline or unknown store is
// not either).
func (p Peer) Healthy() bool { return p.Why() == "" }

// Why returns why the peer is not healthy, "" when it is.
func (p Peer) Why() string {
	switch {
	case p.StoreState == "":
		return "store unknown to PD"
	case p.StoreState != pd.StateUp:
		return "store is " + p.StoreState
	case p.Down:
		return fmt.Sprintf("peer reported down for %ds", p.DownSeconds)
	case p.Pending:
		return "peer pending (log behind)"
	}
	return ""
}

// Config is one voter set of a region and its quorum arithmetic.
type Config struct {
	// Name is "voters" outside joint consensus, else "incoming" or
	// "outgoing".
	Name string
	// Voters are the store ids of the set's voters, ascending.
	Voters []uint64
	// Healthy are the store ids of its healthy voters, ascending.
	Healthy []uint64
}

// Majority is the votes the set needs: len(Voters)/2 + 1.
func (c Config) Majority() int { return len(c.Voters)/2 + 1 }

// HasMajority reports whether the set's healthy voters form a majority.
func (c Config) HasMajority() bool { return len(c.Voters) > 0 && len(c.Healthy) >= c.Majority() }

// String renders "2 healthy of 3 voters (needs 2)", prefixed with the set
// name in joint consensus.
func (c Config) String() string {
	s := fmt.Sprintf("%d healthy of %d voters (needs %d)", len(c.Healthy), len(c.Voters), c.Majority())
	if c.Name != "voters" {
		s = c.Name + " " + s
	}
	return s
}

// Region is the peer model of one region.
type Region struct {
	ID uint64
	// LeaderStore is the store of the leader; 0 when the region has none
	// (PD renders a leader object without store_id).
	LeaderStore uint64
	Peers       []Peer
}

// New builds the model of r given the stores PD lists (Tombstone stores
// may be included; a peer on one is unhealthy). Peers keep PD's order.
func New(r *pd.Region, stores []pd.StoreInfo) Region {
	byID := make(map[uint64]*pd.StoreInfo, len(stores))
	for i := range stores {
		byID[stores[i].Store.ID] = &stores[i]
	}
	m := Region{ID: r.ID, LeaderStore: r.Leader.StoreID}
	for _, p := range r.Peers {
		mp := Peer{Peer: p, Role: RoleOf(p), Witness: p.IsWitness,
			Leader: r.Leader.StoreID != 0 && p.StoreID == r.Leader.StoreID}
		for _, d := range r.DownPeers {
			// Old PDs may omit the peer id: match by store then.
			if d.Peer.ID == p.ID && p.ID != 0 || d.Peer.ID == 0 && d.Peer.StoreID == p.StoreID {
				mp.Down, mp.DownSeconds = true, d.DownSeconds
			}
		}
		for _, pp := range r.PendingPeers {
			if pp.ID == p.ID && p.ID != 0 || pp.ID == 0 && pp.StoreID == p.StoreID {
				mp.Pending = true
			}
		}
		if s, ok := byID[p.StoreID]; ok {
			mp.StoreState = s.Store.StateName
			mp.TiFlash = s.IsTiFlash()
		}
		m.Peers = append(m.Peers, mp)
	}
	return m
}

// HasLeader reports whether PD knows the region's leader.
func (m Region) HasLeader() bool { return m.LeaderStore != 0 }

// Joint reports whether the region is in joint consensus (has an
// IncomingVoter or a DemotingVoter).
func (m Region) Joint() bool {
	for _, p := range m.Peers {
		if p.Role == IncomingVoter || p.Role == DemotingVoter {
			return true
		}
	}
	return false
}

// On returns the peer on store id.
func (m Region) On(store uint64) (Peer, bool) {
	for _, p := range m.Peers {
		if p.StoreID == store {
			return p, true
		}
	}
	return Peer{}, false
}

// Configs returns the region's voter sets: one ("voters") outside joint
// consensus, two ("incoming", "outgoing") inside it.
func (m Region) Configs() []Config {
	if !m.Joint() {
		return []Config{m.config("voters", Voter)}
	}
	return []Config{m.config("incoming", Voter, IncomingVoter), m.config("outgoing", Voter, DemotingVoter)}
}

func (m Region) config(name string, roles ...Role) Config {
	c := Config{Name: name}
	for _, p := range m.Peers {
		if !slices.Contains(roles, p.Role) {
			continue
		}
		c.Voters = append(c.Voters, p.StoreID)
		if p.Healthy() {
			c.Healthy = append(c.Healthy, p.StoreID)
		}
	}
	slices.Sort(c.Voters)
	slices.Sort(c.Healthy)
	return c
}

// HasQuorum reports whether every voter set has a majority of healthy
// voters: the region can commit and change its membership now.
func (m Region) HasQuorum() bool {
	for _, c := range m.Configs() {
		if !c.HasMajority() {
			return false
		}
	}
	return true
}

// Quorum renders the quorum of every voter set, e.g. "2 healthy of 3
// voters (needs 2)" or "incoming 2 healthy of 3 voters (needs 2); outgoing
// ...".
func (m Region) Quorum() string {
	cs := m.Configs()
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, "; ")
}

// Voters returns the store ids of every voting peer (any set), ascending.
func (m Region) Voters() []uint64 { return m.stores(func(p Peer) bool { return p.Voting() }) }

// HealthyVoters returns the store ids of the healthy voting peers.
func (m Region) HealthyVoters() []uint64 {
	return m.stores(func(p Peer) bool { return p.Voting() && p.Healthy() })
}

// UnhealthyVoters returns the store ids of the voting peers that are not
// healthy (down, pending, on a store that is not Up).
func (m Region) UnhealthyVoters() []uint64 {
	return m.stores(func(p Peer) bool { return p.Voting() && !p.Healthy() })
}

// DownVoters returns the store ids of the voters the leader reports down.
func (m Region) DownVoters() []uint64 {
	return m.stores(func(p Peer) bool { return p.Voting() && p.Down })
}

// Learners returns the store ids of the learners, ascending.
func (m Region) Learners() []uint64 { return m.stores(func(p Peer) bool { return p.Role == Learner }) }

// Witnesses returns the store ids of the witness peers, ascending.
func (m Region) Witnesses() []uint64 { return m.stores(func(p Peer) bool { return p.Witness }) }

func (m Region) stores(keep func(Peer) bool) []uint64 {
	var out []uint64
	for _, p := range m.Peers {
		if keep(p) {
			out = append(out, p.StoreID)
		}
	}
	slices.Sort(out)
	return out
}

// Replacement returns the learner that is the region's replacement copy,
// if any: while a voter is unhealthy, the newest learner (highest peer id)
// on a healthy Up TiKV store is what PD (replace-down-peer,
// replace-offline-peer) or a human added to take its place; removing it
// undoes the repair. TiFlash learners are never replacements.
func (m Region) Replacement() (Peer, bool) {
	if len(m.UnhealthyVoters()) == 0 {
		return Peer{}, false
	}
	var best Peer
	found := false
	for _, p := range m.Peers {
		if p.Role != Learner || p.TiFlash || p.Witness || p.StoreState != pd.StateUp || p.Down {
			continue
		}
		if !found || p.ID > best.ID {
			best, found = p, true
		}
	}
	return best, found
}

// Without returns the model after the peer on store is removed (the
// remove-peer operator's end state).
func (m Region) Without(store uint64) Region {
	out := Region{ID: m.ID, LeaderStore: m.LeaderStore}
	for _, p := range m.Peers {
		if p.StoreID != store {
			out.Peers = append(out.Peers, p)
		}
	}
	if out.LeaderStore == store {
		out.LeaderStore = 0
	}
	return out
}

// Moved returns the model after the peer on from moved to store to, a
// healthy Up store (the transfer-peer operator's end state: the new peer
// takes the old one's role once promoted and caught up).
func (m Region) Moved(from, to uint64) Region {
	out := Region{ID: m.ID, LeaderStore: m.LeaderStore}
	for _, p := range m.Peers {
		if p.StoreID == from {
			p = Peer{Peer: pd.Peer{StoreID: to, RoleName: string(p.Role)}, Role: p.Role, StoreState: pd.StateUp}
			if out.LeaderStore == from {
				out.LeaderStore = 0
			}
		}
		out.Peers = append(out.Peers, p)
	}
	return out
}

// Live reports whether the peer can vote at all now: its store heartbeats
// to PD (state_name Up, or Offline while draining) and the leader does not
// report it down. A pending peer is live (it votes, it only lags).
func (p Peer) Live() bool {
	return !p.Down && (p.StoreState == pd.StateUp || p.StoreState == pd.StateOffline)
}

// Available reports whether every voter set has a majority of live voters:
// false means the region cannot elect a leader or commit until stores
// return (quorum lost).
func (m Region) Available() bool {
	cs := m.Configs()
	for _, c := range cs {
		live := 0
		for _, s := range c.Voters {
			if p, ok := m.On(s); ok && p.Live() {
				live++
			}
		}
		if len(c.Voters) == 0 || live < c.Majority() {
			return false
		}
	}
	return true
}
