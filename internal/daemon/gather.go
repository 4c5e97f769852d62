package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// Caps of what a gathered Context holds, so that its size grows with the
// problem and never with the cluster.
const (
	maxGatherRegions      = 20
	maxStoreRegionsGather = 50
)

// Gatherer builds a diagnosis Context from PD: a fresh snapshot (for the
// rules backend), the stores, the regions the ticket names (its subject and
// the *region_ids lists of its evidence), for a leader or region imbalance
// the regions of the most loaded store, PD's operators, configuration and
// schedulers, and the action catalog.
type Gatherer struct {
	pd      *pd.Client
	prom    *tikv.Prom
	catalog *action.Catalog
	log     *slog.Logger
}

// NewGatherer returns a Gatherer over c; prom may be nil.
func NewGatherer(c *pd.Client, prom *tikv.Prom, catalog *action.Catalog, log *slog.Logger) *Gatherer {
	return &Gatherer{pd: c, prom: prom, catalog: catalog, log: log}
}

// Gather implements diagnose.Gatherer. It fails when the snapshot cannot be
// read (the ticket is retried later); a region or operator list that cannot
// be read is only logged.
func (g *Gatherer) Gather(ctx context.Context, t ticket.Ticket) (*diagnose.Context, error) {
	snap, err := tikv.Collect(ctx, g.pd)
	if err != nil {
		return nil, fmt.Errorf("read cluster: %w", err)
	}
	c := &diagnose.Context{
		Time:              snap.Time,
		Ticket:            t,
		Stores:            snap.Stores,
		Schedule:          snap.Schedule,
		Replication:       snap.Replication,
		Schedulers:        snap.Schedulers,
		PausedSchedulers:  snap.PausedSchedulers,
		EvictLeaderStores: snap.EvictLeaderStores,
		Snapshot:          snap,
	}
	if g.catalog != nil {
		c.Actions = g.catalog.Specs()
	}
	if ops, err := g.pd.Operators(ctx); err != nil {
		g.log.Warn("list operators", "ticket", t.ID, "err", err)
	} else {
		c.Operators = ops
	}
	seen := map[uint64]bool{}
	for _, id := range regionIDs(t) {
		if len(c.Regions) >= maxGatherRegions {
			break
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		r, err := g.pd.Region(ctx, id)
		if err != nil {
			g.log.Warn("read region", "ticket", t.ID, "region", id, "err", err)
			continue
		}
		c.Regions = append(c.Regions, *r)
	}
	if sid := loadedStore(t); sid != 0 {
		rs, err := g.pd.RegionsByStore(ctx, sid)
		if err != nil {
			g.log.Warn("read regions of store", "ticket", t.ID, "store", sid, "err", err)
		}
		for _, r := range rs {
			if len(c.Regions) >= maxGatherRegions+maxStoreRegionsGather {
				break
			}
			if !seen[r.ID] {
				seen[r.ID] = true
				c.Regions = append(c.Regions, r)
			}
		}
	}
	return c, nil
}

// regionIDs returns the region of a "region:N" subject and every id listed
// in the evidence under a key ending in "region_ids".
func regionIDs(t ticket.Ticket) []uint64 {
	var ids []uint64
	if s, ok := strings.CutPrefix(t.Subject, "region:"); ok {
		if id, err := strconv.ParseUint(s, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(t.Evidence, &ev) != nil {
		return ids
	}
	for k, v := range ev {
		if !strings.HasSuffix(k, "region_ids") {
			continue
		}
		var list []uint64
		if json.Unmarshal(v, &list) == nil {
			ids = append(ids, list...)
		}
	}
	return ids
}

// loadedStore returns the most loaded store of an imbalance ticket
// (evidence max_store_id), 0 for other tickets.
func loadedStore(t ticket.Ticket) uint64 {
	if !strings.HasSuffix(t.Invariant, "_imbalance") {
		return 0
	}
	var ev struct {
		MaxStoreID uint64 `json:"max_store_id"`
	}
	if json.Unmarshal(t.Evidence, &ev) != nil {
		return 0
	}
	return ev.MaxStoreID
}
