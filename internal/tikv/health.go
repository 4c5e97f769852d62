package tikv

import (
	"github.com/tikvops/operator/internal/pd"
)

// Quorum is the vote arithmetic of one region: how many voters it has and
// how many of them are healthy. A voter is healthy when its store's
// state_name is Up (not Disconnected, Down, Offline or Tombstone) and the
// region's leader reports it neither down nor pending.
type Quorum struct {
	Voters  int
	Healthy int
	// Unhealthy maps store id to why its voter does not count.
	Unhealthy map[uint64]string
}

// Majority is the number of votes the region needs: Voters/2 + 1.
func (q Quorum) Majority() int { return q.Voters/2 + 1 }

// HasMajority reports whether the healthy voters form a majority.
func (q Quorum) HasMajority() bool { return q.Voters > 0 && q.Healthy >= q.Majority() }

// RegionQuorum counts r's voters and healthy voters given stores (from GET
// /stores). A voter on a store missing from stores is unhealthy.
func RegionQuorum(r *pd.Region, stores []pd.StoreInfo) Quorum {
	byID := make(map[uint64]*pd.StoreInfo, len(stores))
	for i := range stores {
		byID[stores[i].Store.ID] = &stores[i]
	}
	down := map[uint64]bool{}
	for _, d := range r.DownPeers {
		down[d.Peer.ID] = true
	}
	pending := map[uint64]bool{}
	for _, p := range r.PendingPeers {
		pending[p.ID] = true
	}
	q := Quorum{Unhealthy: map[uint64]string{}}
	for _, p := range r.Peers {
		if !p.IsVoter() {
			continue
		}
		q.Voters++
		s, ok := byID[p.StoreID]
		switch {
		case !ok:
			q.Unhealthy[p.StoreID] = "store unknown to PD"
		case s.Store.StateName != pd.StateUp:
			q.Unhealthy[p.StoreID] = "store is " + s.Store.StateName
		case down[p.ID]:
			q.Unhealthy[p.StoreID] = "peer reported down"
		case pending[p.ID]:
			q.Unhealthy[p.StoreID] = "peer pending (log behind)"
		default:
			q.Healthy++
		}
	}
	return q
}

// upTiKVStores counts stores that can take replicas: state_name Up, not
// TiFlash, excluding the ids in except.
func upTiKVStores(stores []pd.StoreInfo, except ...uint64) []uint64 {
	var out []uint64
next:
	for i := range stores {
		s := &stores[i]
		if s.Store.StateName != pd.StateUp || s.IsTiFlash() {
			continue
		}
		for _, e := range except {
			if s.Store.ID == e {
				continue next
			}
		}
		out = append(out, s.Store.ID)
	}
	return out
}

func findStore(stores []pd.StoreInfo, id uint64) *pd.StoreInfo {
	for i := range stores {
		if stores[i].Store.ID == id {
			return &stores[i]
		}
	}
	return nil
}
