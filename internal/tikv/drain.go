package tikv

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tikvops/operator/internal/pd"
)

// availableTiKVStores returns the stores that can take replicas after a
// capacity-reducing action: Up TiKV stores (upTiKVStores), minus any whose
// node_state is Removing or Removed (being drained: PD moves replicas off
// them), minus the ids in except.
func availableTiKVStores(stores []pd.StoreInfo, except ...uint64) []uint64 {
	var out []uint64
	for _, id := range upTiKVStores(stores, except...) {
		s := findStore(stores, id)
		if s.Store.NodeState == pd.NodeRemoving || s.Store.NodeState == pd.NodeRemoved {
			continue
		}
		out = append(out, id)
	}
	return out
}

// checkIsolation checks the location labels after a drain. With PD's
// isolation-level set (GET /pd/api/v1/config/replicate), PD never puts two
// replicas of a region in the same value of that label: the remaining
// stores must span at least max-replicas distinct values, or regions stay
// under-replicated (isolation_level_satisfied, refusing). Without it,
// location-labels are best effort: a level left with fewer distinct values
// than max-replicas is a warning ("a zone left without a replica"). A
// store missing the label counts as one shared empty value.
func checkIsolation(p *plan, stores []pd.StoreInfo, left []uint64, rep replication) {
	distinct := func(label string) []string {
		seen := map[string]bool{}
		for _, id := range left {
			seen[findStore(stores, id).Label(label)] = true
		}
		vals := make([]string, 0, len(seen))
		for v := range seen {
			vals = append(vals, v)
		}
		slices.Sort(vals)
		return vals
	}
	if rep.isolationLevel != "" {
		vals := distinct(rep.isolationLevel)
		p.check("isolation_level_satisfied", uint64(len(vals)) >= rep.maxReplicas,
			"isolation-level %s: the remaining Up TiKV stores span %d distinct %s values [%s]; max-replicas is %d",
			rep.isolationLevel, len(vals), rep.isolationLevel, strings.Join(vals, ","), rep.maxReplicas)
	}
	for _, l := range rep.locationLabels {
		if l == rep.isolationLevel {
			continue
		}
		if vals := distinct(l); uint64(len(vals)) < rep.maxReplicas {
			p.warn("location label %s: the remaining stores span only %d distinct values [%s] for max-replicas %d, so some %s will hold two replicas of a region",
				l, len(vals), strings.Join(vals, ","), rep.maxReplicas, l)
		}
		break // the top level decides where a whole replica set can go
	}
}

// checkDrainSpace checks that the remaining stores can take the drained
// store's data without becoming low on space: their total available space
// minus the store's region_size (MiB, GET /pd/api/v1/stores) must stay at
// least (1 - low-space-ratio) of their total capacity, PD's low-space
// condition (PD v8.1 pkg/core/store.go IsLowSpace). low-space-ratio
// missing, null or outside (0, 1], or a remaining store without capacity,
// refuses.
func checkDrainSpace(ctx context.Context, c *pd.Client, p *plan, stores []pd.StoreInfo, left []uint64, s *pd.StoreInfo) error {
	v, err := scheduleView(ctx, c)
	if err != nil {
		return err
	}
	lsr, err := v.ratio("low-space-ratio")
	if !p.check("low_space_ratio_known", err == nil, "%s", errText(err, fmt.Sprintf("low-space-ratio is %g", lsr))) {
		return nil
	}
	var capacity, available float64
	for _, id := range left {
		o := findStore(stores, id)
		if o.Status.Capacity <= 0 {
			p.check("space_after_drain", false, "store %d: capacity missing or 0 in %s", id, endpointStores)
			return nil
		}
		capacity += float64(o.Status.Capacity)
		available += float64(o.Status.Available)
	}
	if len(left) == 0 {
		return nil // replicas_remain_placeable already refuses
	}
	moved := float64(s.Status.RegionSize) * (1 << 20)
	after := (available - moved) / capacity
	p.check("space_after_drain", after >= 1-lsr,
		"the remaining stores would have %.1f%% of their capacity available after taking store %d's %d MiB (low-space-ratio %g: PD counts a store low on space below %.1f%%)",
		after*100, s.Store.ID, s.Status.RegionSize, lsr, (1-lsr)*100)
	return nil
}
