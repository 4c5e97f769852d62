// Package gather builds the diagnose.Context of a ticket from the cluster:
// a fresh tikv.Snapshot read through PD's HTTP API, every store, the
// regions the ticket involves, PD's running operators, schedule and
// replication configuration, schedulers, the action catalog and, when a
// Prometheus is configured, a few series relevant to the invariant.
//
// What it reads is bounded by the problem, never by the cluster: regions
// are fetched by id (the ticket's subject and the region ids its evidence
// lists), and the region list of a store (GET /pd/api/v1/regions/store/{id})
// only for the one or two stores a ticket is about, keeping at most
// Options.MaxStoreRegions of them.
package gather

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/peers"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// Defaults of Options.
const (
	// DefaultMaxRegions caps the regions fetched by id (subject and
	// evidence), GET /pd/api/v1/region/id/{id} each.
	DefaultMaxRegions = 20
	// DefaultMaxStoreRegions caps the regions kept from one store's region
	// list (leader-imbalance candidates, the remaining regions of a
	// draining or dead store).
	DefaultMaxStoreRegions = 20
	// DefaultPromTimeout bounds each Prometheus query.
	DefaultPromTimeout = 5 * time.Second
	// maxPromBytes bounds the Prometheus text in a Context.
	maxPromBytes = 32 << 10
	// maxPromSeries caps the series rendered per query.
	maxPromSeries = 50
	// maxTombstones caps the Tombstone records added to Context.Stores.
	maxTombstones = 50
)

// Source names Gather adds to Context.SourceErrors for its own reads
// (the snapshot's sources keep tikv's names, e.g. tikv.SourceSchedule).
const (
	// SourceRegionPrefix + id: GET /pd/api/v1/region/id/{id}.
	SourceRegionPrefix = "region/"
	// SourceStoreRegionsPrefix + id: GET /pd/api/v1/regions/store/{id}.
	SourceStoreRegionsPrefix = "regions/store/"
)

// Options configure a Gatherer. Zero fields take the defaults noted.
type Options struct {
	// Prom, when not nil, is queried for Queries; nil means no Prometheus.
	Prom *tikv.Prom
	// Queries maps an invariant name to the PromQL instant queries run for
	// its tickets; key "" runs for every ticket. Nil means DefaultQueries.
	Queries map[string][]string
	// Catalog, when not nil, fills Context.Actions with its Specs.
	Catalog *action.Catalog
	// MaxRegions caps the regions fetched by id (DefaultMaxRegions).
	MaxRegions int
	// MaxStoreRegions caps the regions kept from one store's region list
	// (DefaultMaxStoreRegions).
	MaxStoreRegions int
	// PromTimeout bounds each Prometheus query (DefaultPromTimeout).
	PromTimeout time.Duration
	// Snapshot, when not nil, returns the snapshot the monitor's last
	// cycle collected, or nil when there is none recent enough: Gather
	// then uses it (read-only, shared) instead of reading the whole
	// cluster again for every ticket (issue 17); its own targeted reads
	// (the ticket's regions, a store's region list, operators) still go to
	// PD. Nil means every Gather collects a fresh snapshot.
	Snapshot func(ctx context.Context) *tikv.Snapshot
	// Now is the clock used when PD's clock is unknown; time.Now when nil.
	Now func() time.Time
	// Logger: slog.Default() when nil.
	Logger *slog.Logger
}

var _ diagnose.Gatherer = (*Gatherer)(nil)

// Gatherer implements diagnose.Gatherer over a PD client. Create it with
// New; it is safe for concurrent use.
type Gatherer struct {
	pd   *pd.Client
	opts Options
	log  *slog.Logger
}

// New returns a Gatherer reading the cluster through c.
func New(c *pd.Client, opts Options) *Gatherer {
	if opts.MaxRegions <= 0 {
		opts.MaxRegions = DefaultMaxRegions
	}
	if opts.MaxStoreRegions <= 0 {
		opts.MaxStoreRegions = DefaultMaxStoreRegions
	}
	if opts.PromTimeout <= 0 {
		opts.PromTimeout = DefaultPromTimeout
	}
	if opts.Queries == nil {
		opts.Queries = DefaultQueries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Gatherer{pd: c, opts: opts, log: log.With("component", "gather")}
}

// pdTickets are the tickets about PD itself: their context is gathered
// even when PD cannot serve the snapshot, since that is the problem.
var pdTickets = map[string]bool{
	invariant.NamePDUnreachable: true,
	invariant.NamePDNoLeader:    true,
	invariant.NamePDUnhealthy:   true,
}

// Gather implements diagnose.Gatherer: it reads a fresh snapshot
// (tikv.Collect) and builds t's Context from it. Only an unreadable
// snapshot (GET /stores failed, or the context ended) fails it, with an
// error wrapping diagnose.ErrUnavailable, and for tickets about PD itself
// (pd_unreachable, pd_no_leader, pd_unhealthy) not even that: the Context
// then holds whatever of GET /health and GET /members answered. Every
// other read that fails — a configuration, the schedulers, PD's
// operators, an involved region, a store's region list, Prometheus — is
// recorded in Context.SourceErrors (source name: error text) and the
// diagnosis goes on with what was read; the rules backend then proposes
// nothing that depends on a missing read, and a model is told what could
// not be read. A region that no longer exists (merged) is skipped.
func (g *Gatherer) Gather(ctx context.Context, t ticket.Ticket) (*diagnose.Context, error) {
	var snap *tikv.Snapshot
	if g.opts.Snapshot != nil {
		snap = g.opts.Snapshot(ctx)
	}
	var err error
	if snap == nil {
		snap, err = tikv.Collect(ctx, g.pd)
	}
	if err != nil {
		if pdTickets[t.Invariant] && ctx.Err() == nil {
			return g.pdOnly(ctx, t, err), nil
		}
		return nil, unavailable("read cluster", err)
	}
	c := &diagnose.Context{
		Time:              snap.Time,
		Ticket:            t,
		Stores:            append([]pd.StoreInfo(nil), snap.Stores...),
		Schedule:          snap.Schedule,
		Replication:       snap.Replication,
		Schedulers:        sorted(snap.Schedulers),
		PausedSchedulers:  sorted(snap.PausedSchedulers),
		EvictLeaderStores: snap.EvictLeaderStores,
		OperatorRecords:   snap.OperatorRecords,
		Snapshot:          snap,
	}
	if c.EvictLeaderStores == nil {
		c.EvictLeaderStores = []uint64{}
	}
	if g.opts.Catalog != nil {
		c.Actions = g.opts.Catalog.Specs()
	}
	for src, e := range snap.Errors {
		addSourceError(c, src, e)
	}
	if t.Invariant == invariant.NameTombstonePileup {
		n := min(len(snap.Tombstones), maxTombstones)
		c.Stores = append(c.Stores, snap.Tombstones[:n]...)
	}
	sort.SliceStable(c.Stores, func(i, j int) bool { return c.Stores[i].Store.ID < c.Stores[j].Store.ID })
	if _, failed := snap.Errors[tikv.SourceOperators]; snap.Operators != nil || failed {
		c.Operators = orEmptyOps(snap.Operators)
	} else if ops, err := g.pd.Operators(ctx); err != nil {
		addSourceError(c, tikv.SourceOperators, err)
		c.Operators = []pd.Operator{}
	} else {
		c.Operators = orEmptyOps(ops)
	}
	if err := g.regions(ctx, t, snap, c); err != nil {
		return nil, err
	}
	if g.opts.Prom != nil {
		g.prometheus(ctx, t, snap, c)
	}
	if len(c.SourceErrors) > 0 {
		g.log.Warn("some PD reads failed; diagnosing with what was read", "ticket", t.ID, "failed", len(c.SourceErrors))
	}
	return c, nil
}

// pdOnly is the Context of a PD ticket when the snapshot could not be read.
func (g *Gatherer) pdOnly(ctx context.Context, t ticket.Ticket, collectErr error) *diagnose.Context {
	snap := &tikv.Snapshot{Time: g.opts.Now(), Errors: map[string]error{"stores": collectErr}}
	if h, err := g.pd.Health(ctx); err == nil {
		snap.Health = h
	} else {
		snap.Errors[tikv.SourceHealth] = err
	}
	if m, err := g.pd.Members(ctx); err == nil {
		snap.Members = *m
	} else {
		snap.Errors[tikv.SourceMembers] = err
	}
	c := &diagnose.Context{Time: snap.Time, Ticket: t, Snapshot: snap,
		Stores: []pd.StoreInfo{}, Regions: []pd.Region{}, Operators: []pd.Operator{},
		Schedulers: []string{}, PausedSchedulers: []string{}, EvictLeaderStores: []uint64{}}
	if g.opts.Catalog != nil {
		c.Actions = g.opts.Catalog.Specs()
	}
	for src, e := range snap.Errors {
		addSourceError(c, src, e)
	}
	g.log.Warn("PD snapshot unreadable; diagnosing the PD ticket with what answered", "ticket", t.ID, "err", collectErr)
	return c
}

// addSourceError records that source could not be read.
func addSourceError(c *diagnose.Context, source string, err error) {
	if c.SourceErrors == nil {
		c.SourceErrors = map[string]string{}
	}
	c.SourceErrors[source] = err.Error()
}

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", diagnose.ErrUnavailable, what, err)
}

// sorted returns a sorted copy of s (PD lists schedulers in no stable
// order), never nil.
func sorted(s []string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	return out
}

func orEmptyOps(s []pd.Operator) []pd.Operator {
	if s == nil {
		return []pd.Operator{}
	}
	return s
}

// regions fills c.Regions: the subject's region and the evidence's region
// ids (by id, bounded by MaxRegions), then the per-invariant store region
// lists (bounded by MaxStoreRegions).
func (g *Gatherer) regions(ctx context.Context, t ticket.Ticket, snap *tikv.Snapshot, c *diagnose.Context) error {
	c.Regions = []pd.Region{}
	seen := map[uint64]bool{}
	ids := RegionIDs(t)
	if len(ids) > g.opts.MaxRegions {
		ids = ids[:g.opts.MaxRegions]
	}
	for _, id := range ids {
		r, err := g.pd.Region(ctx, id)
		if errors.Is(err, pd.ErrRegionNotFound) {
			g.log.Info("region of the ticket no longer exists", "ticket", t.ID, "region", id)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return unavailable(fmt.Sprintf("read region %d", id), err)
			}
			addSourceError(c, SourceRegionPrefix+strconv.FormatUint(id, 10), err)
			continue
		}
		seen[r.ID] = true
		c.Regions = append(c.Regions, *r)
	}
	var extra []pd.Region
	var err error
	switch t.Invariant {
	case invariant.NameLeaderImbalance:
		extra, err = g.leaderCandidates(ctx, snap)
	case invariant.NameRegionImbalance:
		extra, err = g.regionCandidates(ctx, snap)
	case invariant.NameStoreDown, invariant.NameStoreUnhealthy, invariant.NameStoreDisconnected, invariant.NameStoreOfflineStuck, invariant.NameStoreOfflineBlocked:
		if kind, id, ok := ParseSubject(t.Subject); ok && kind == "store" {
			extra, err = g.storeRegions(ctx, snap, id)
		}
	}
	var se *storeRegionsError
	switch {
	case errors.As(err, &se) && ctx.Err() == nil:
		addSourceError(c, SourceStoreRegionsPrefix+strconv.FormatUint(se.store, 10), se.err)
	case err != nil:
		return err
	}
	for _, r := range extra {
		if !seen[r.ID] {
			seen[r.ID] = true
			c.Regions = append(c.Regions, r)
		}
	}
	return nil
}

// leaderCandidates returns regions whose leader is on the store with the
// most leaders (among Up TiKV stores not under evict-leader, as PD reports
// them now) and that have a voter on the store with the fewest: first
// those, then other regions led by the most loaded store that have a voter
// on another eligible store, at most MaxStoreRegions in all, by region id.
func (g *Gatherer) leaderCandidates(ctx context.Context, snap *tikv.Snapshot) ([]pd.Region, error) {
	maxID, minID, ok := Extremes(snap.Stores, snap.EvictLeaderStores, func(s *pd.StoreInfo) int { return s.Status.LeaderCount })
	if !ok {
		return nil, nil
	}
	// PD balances leader_score (weights applied), and so does the rules
	// runbook when PD reports scores: gather for the same pair of stores.
	if hi, lo, ok := Extremes(snap.Stores, snap.EvictLeaderStores, func(s *pd.StoreInfo) int { return int(s.Status.LeaderScore * 1000) }); ok && scored(snap.Stores) {
		maxID, minID = hi, lo
	}
	eligible := eligibleTargets(snap.Stores, snap.EvictLeaderStores)
	first, rest := g.lowest(), g.lowest()
	if _, err := g.pd.StreamStoreRegions(ctx, maxID, func(r *pd.Region) error {
		if r.Leader.StoreID != maxID {
			return nil
		}
		switch {
		case hasHealthyVoter(r, minID):
			first.add(r)
		case anyHealthyVoter(r, eligible, maxID):
			rest.add(r)
		}
		return nil
	}); err != nil {
		return nil, &storeRegionsError{store: maxID, err: err}
	}
	return g.capped(first.list(), rest.list()), nil
}

// regionCandidates returns regions with a peer on the store holding the
// most regions and none on the store holding the fewest (candidates for a
// transfer_peer), at most MaxStoreRegions, by region id.
func (g *Gatherer) regionCandidates(ctx context.Context, snap *tikv.Snapshot) ([]pd.Region, error) {
	maxID, minID, ok := Extremes(snap.Stores, nil, func(s *pd.StoreInfo) int { return s.Status.RegionCount })
	if !ok {
		return nil, nil
	}
	out := g.lowest()
	if _, err := g.pd.StreamStoreRegions(ctx, maxID, func(r *pd.Region) error {
		if _, on := r.PeerOn(minID); !on {
			out.add(r)
		}
		return nil
	}); err != nil {
		return nil, &storeRegionsError{store: maxID, err: err}
	}
	return g.capped(out.list()), nil
}

// storeRegions returns the regions of a store that is leaving or dead:
// those whose live voters no longer form a majority first (the ones a
// human must look at), then the others, at most MaxStoreRegions.
func (g *Gatherer) storeRegions(ctx context.Context, snap *tikv.Snapshot, id uint64) ([]pd.Region, error) {
	lost, rest := g.lowest(), g.lowest()
	if _, err := g.pd.StreamStoreRegions(ctx, id, func(r *pd.Region) error {
		if m := peers.New(r, snap.Stores); len(m.Voters()) > 0 && !m.Available() {
			lost.add(r)
		} else {
			rest.add(r)
		}
		return nil
	}); err != nil {
		return nil, &storeRegionsError{store: id, err: err}
	}
	return g.capped(lost.list(), rest.list()), nil
}

// lowestRegions keeps the n regions with the lowest ids of a stream
// (copies), in at most 2n+16 regions of memory whatever the stream's
// length: a store's region list at 100k regions is ~35 MB of JSON, of
// which a diagnosis keeps MaxStoreRegions (issue 17).
type lowestRegions struct {
	n  int
	rs []pd.Region
}

func (g *Gatherer) lowest() *lowestRegions { return &lowestRegions{n: g.opts.MaxStoreRegions} }

func (l *lowestRegions) add(r *pd.Region) {
	l.rs = append(l.rs, r.Clone())
	if len(l.rs) >= 2*l.n+16 {
		l.trim()
	}
}

func (l *lowestRegions) trim() {
	l.rs = byID(l.rs)
	if len(l.rs) > l.n {
		clear(l.rs[l.n:])
		l.rs = l.rs[:l.n]
	}
}

// list returns the kept regions by id.
func (l *lowestRegions) list() []pd.Region {
	l.trim()
	return l.rs
}

func (g *Gatherer) capped(lists ...[]pd.Region) []pd.Region {
	var out []pd.Region
	for _, l := range lists {
		for _, r := range l {
			if len(out) == g.opts.MaxStoreRegions {
				return out
			}
			out = append(out, r)
		}
	}
	return out
}

func byID(rs []pd.Region) []pd.Region {
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	return rs
}

// hasHealthyVoter reports whether r has a plain voter on store that is
// healthy (peers.Peer.Healthy: store Up, not down, not pending) and not a
// witness: a leader can only move to such a peer.
func hasHealthyVoter(r *pd.Region, store uint64) bool {
	p, ok := peers.New(r, nil).On(store)
	if !ok || p.Role != peers.Voter || p.Witness || p.Down || p.Pending {
		return false
	}
	return true
}

// scored reports whether PD reports leader scores (old PDs omit them).
func scored(stores []pd.StoreInfo) bool {
	for i := range stores {
		if stores[i].Status.LeaderScore > 0 {
			return true
		}
	}
	return false
}

func anyHealthyVoter(r *pd.Region, stores map[uint64]bool, except uint64) bool {
	for _, p := range r.Peers {
		if p.StoreID != except && stores[p.StoreID] && hasHealthyVoter(r, p.StoreID) {
			return true
		}
	}
	return false
}

// eligibleTargets returns the Up TiKV stores not under evict-leader.
func eligibleTargets(stores []pd.StoreInfo, evicted []uint64) map[uint64]bool {
	out := map[uint64]bool{}
	for i := range stores {
		s := &stores[i]
		if s.Store.StateName == pd.StateUp && !s.IsTiFlash() && !slices.Contains(evicted, s.Store.ID) {
			out[s.Store.ID] = true
		}
	}
	return out
}

// Extremes returns the ids of the Up TiKV stores (TiFlash and stores in
// excluded left out) with the highest and the lowest count, ties broken by
// the lower store id; ok is false with fewer than two such stores. It is
// how the leader_imbalance and region_imbalance invariants pick the most
// and least loaded stores.
func Extremes(stores []pd.StoreInfo, excluded []uint64, count func(*pd.StoreInfo) int) (maxID, minID uint64, ok bool) {
	n := 0
	var maxC, minC int
	ids := make([]int, 0, len(stores))
	for i := range stores {
		ids = append(ids, i)
	}
	sort.Slice(ids, func(a, b int) bool { return stores[ids[a]].Store.ID < stores[ids[b]].Store.ID })
	for _, i := range ids {
		s := &stores[i]
		if s.Store.StateName != pd.StateUp || s.IsTiFlash() || slices.Contains(excluded, s.Store.ID) {
			continue
		}
		c := count(s)
		if n == 0 || c > maxC {
			maxID, maxC = s.Store.ID, c
		}
		if n == 0 || c < minC {
			minID, minC = s.Store.ID, c
		}
		n++
	}
	return maxID, minID, n >= 2
}

// ParseSubject splits a ticket subject "store:4" or "region:12" into its
// kind and id; ok is false for "cluster" and anything malformed.
func ParseSubject(subject string) (kind string, id uint64, ok bool) {
	kind, rest, found := strings.Cut(subject, ":")
	if !found || (kind != "store" && kind != "region") {
		return "", 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || id == 0 {
		return "", 0, false
	}
	return kind, id, true
}

// RegionIDs returns the region ids a ticket names, without duplicates: the
// subject's ("region:N") first, then, in key order, the evidence's
// "region_id" and every list under a key ending in "region_ids"
// (sample_region_ids, hottest_region_ids, ...), each list in its own
// order (the hottest region first). Malformed evidence yields only the
// subject's id.
func RegionIDs(t ticket.Ticket) []uint64 {
	var ids []uint64
	seen := map[uint64]bool{}
	add := func(id uint64) {
		if id != 0 && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if kind, id, ok := ParseSubject(t.Subject); ok && kind == "region" {
		add(id)
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(t.Evidence, &ev) != nil {
		return ids
	}
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == "region_id":
			var id uint64
			if json.Unmarshal(ev[k], &id) == nil {
				add(id)
			}
		case strings.HasSuffix(k, "region_ids"):
			var list []uint64
			if json.Unmarshal(ev[k], &list) == nil {
				for _, id := range list {
					add(id)
				}
			}
		}
	}
	return ids
}

// storeRegionsError is a failed GET /pd/api/v1/regions/store/{id}.
type storeRegionsError struct {
	store uint64
	err   error
}

func (e *storeRegionsError) Error() string {
	return fmt.Sprintf("list regions of store %d: %v", e.store, e.err)
}

func (e *storeRegionsError) Unwrap() error { return e.err }
