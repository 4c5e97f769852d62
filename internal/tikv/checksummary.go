package tikv

import (
	"cmp"
	"container/heap"
	"context"
	"slices"

	"github.com/tikvops/operator/internal/pd"
)

// CheckKeepRegions bounds the regions Collect keeps per region check in
// Snapshot.Checks: the lowest region ids (a stable choice from cycle to
// cycle, since PD lists a check in map order), leaderless regions first.
// It matches invariant.History's per-region track bound (10,000), so
// every per-region track still sees the same regions each cycle. The
// counts and per-store breakdowns (Snapshot.CheckSummaries) cover every
// region PD lists.
const CheckKeepRegions = 10000

// CheckSummary is what one streaming pass over a /regions/check/{name}
// list computes over every region PD lists, whatever CheckKeepRegions
// kept.
type CheckSummary struct {
	// Count is the number of regions PD listed; for a list a Collector
	// reused (Snapshot.ReusedChecks), PD's count of this cycle
	// (pd_regions_status), while the other fields are as of the read.
	Count int
	// Kept is len(Snapshot.Checks[name]); Count > Kept means the list was
	// truncated to CheckKeepRegions.
	Kept int
	// Leaderless is the number of listed regions with leader.store_id 0.
	Leaderless int
	// DownPeersByStore counts down peers per store id (down-peer check).
	DownPeersByStore map[uint64]int
	// MaxDownSecondsByStore is the largest down_seconds per store id.
	MaxDownSecondsByStore map[uint64]uint64
	// PendingPeersByStore counts pending peers per store id.
	PendingPeersByStore map[uint64]int
}

// CheckCount returns the number of regions PD lists for check name: the
// summary's count when Collect streamed it, else len(Checks[name])
// (hand-built snapshots).
func (s *Snapshot) CheckCount(name string) int {
	if cs := s.CheckSummaries[name]; cs != nil {
		return cs.Count
	}
	return len(s.Checks[name])
}

// regionHeap is a max-heap of kept regions by (has leader, id): the root
// is the first to drop.
type regionHeap []pd.Region

func (h regionHeap) Len() int { return len(h) }
func (h regionHeap) Less(i, j int) bool {
	if h[i].HasLeader() != h[j].HasLeader() {
		return h[i].HasLeader()
	}
	return h[i].ID > h[j].ID
}
func (h regionHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *regionHeap) Push(x any)   { *h = append(*h, x.(pd.Region)) }
func (h *regionHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// streamCheck reads one check list in one pass: the summary over every
// region, and at most keep regions (lowest ids, leaderless first) in
// ascending id order.
func streamCheck(ctx context.Context, c *pd.Client, name string, keep int) ([]pd.Region, *CheckSummary, error) {
	sum := &CheckSummary{}
	if name == CheckDownPeer {
		sum.DownPeersByStore = map[uint64]int{}
		sum.MaxDownSecondsByStore = map[uint64]uint64{}
	}
	if name == CheckPendingPeer {
		sum.PendingPeersByStore = map[uint64]int{}
	}
	h := &regionHeap{}
	n, err := c.StreamCheckRegions(ctx, name, func(r *pd.Region) error {
		if !r.HasLeader() {
			sum.Leaderless++
		}
		for _, d := range r.DownPeers {
			if sum.DownPeersByStore != nil {
				sum.DownPeersByStore[d.Peer.StoreID]++
				sum.MaxDownSecondsByStore[d.Peer.StoreID] = max(sum.MaxDownSecondsByStore[d.Peer.StoreID], d.DownSeconds)
			}
		}
		if sum.PendingPeersByStore != nil {
			for _, p := range r.PendingPeers {
				sum.PendingPeersByStore[p.StoreID]++
			}
		}
		if h.Len() < keep {
			heap.Push(h, r.Clone())
			return nil
		}
		worst := &(*h)[0]
		better := !r.HasLeader() && worst.HasLeader() ||
			r.HasLeader() == worst.HasLeader() && r.ID < worst.ID
		if better {
			(*h)[0] = r.Clone()
			heap.Fix(h, 0)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	sum.Count = n
	out := []pd.Region(*h)
	sortRegionsByID(out)
	sum.Kept = len(out)
	if out == nil {
		out = []pd.Region{}
	}
	return out, sum, nil
}

func sortRegionsByID(rs []pd.Region) {
	slices.SortFunc(rs, func(a, b pd.Region) int { return cmp.Compare(a.ID, b.ID) })
}
