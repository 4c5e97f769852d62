package tikv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// CollectChecks are the region checks Collect reads: those whose size grows
// with the number of problems, not with the cluster (empty-region,
// undersized-region and learner-peer can list most of a healthy cluster).
var CollectChecks = []string{
	CheckMissPeer, CheckExtraPeer, CheckPendingPeer, CheckDownPeer, CheckOfflinePeer, CheckOversizedRegion,
}

// collectParallelism bounds Collect's concurrent requests to PD.
const collectParallelism = 4

// Source names used as keys of Snapshot.Errors.
const (
	SourceTombstones  = "stores/tombstone"
	SourceSchedule    = "config/schedule"
	SourceReplication = "config/replicate"
	SourceHotWrite    = "hotspot/write"
	SourceHotStores   = "hotspot/stores"
	SourceSchedulers  = "schedulers"
	SourcePaused      = "schedulers/paused"
	SourceEvictLeader = "scheduler-config/evict-leader"
	SourceHealth      = "health"
	SourceMembers     = "members"
	// SourceOperators is GET /operators?object; SourceOperatorRecords GET
	// /operators/records.
	SourceOperators       = "operators"
	SourceOperatorRecords = "operators/records"
	sourceStoreRegionsPre = "regions/store/"
	sourceCheckPrefix     = "regions/check/"
	sourceProgressPref    = "stores/progress/"
)

// SourceCheck is the Snapshot.Errors key of a region check ("regions/check/miss-peer").
func SourceCheck(name string) string { return sourceCheckPrefix + name }

// SourceProgress is the Snapshot.Errors key of an Offline store's progress.
func SourceProgress(storeID uint64) string {
	return sourceProgressPref + strconv.FormatUint(storeID, 10)
}

// SourceStoreRegions is the Snapshot.Errors key of an Offline store's
// region list.
func SourceStoreRegions(storeID uint64) string {
	return sourceStoreRegionsPre + strconv.FormatUint(storeID, 10)
}

// OperatorRecordsWindow is how far back Collect asks PD for finished
// operators: three default monitor intervals, so that a cycle that ran
// late misses none; the history (invariant.History) deduplicates.
const OperatorRecordsWindow = 30 * time.Second

// StoreRegionsReadLimit is the largest region_count of an Offline store
// for which Collect lists the store's regions (GET /regions/store/{id}),
// so that the read stays bounded (~1 KB per region); larger drains are
// watched by their counts (store_offline_stuck).
const StoreRegionsReadLimit = 1000

// Collect reads one Snapshot from PD. GET /stores is essential: its failure
// is Collect's error (wrapping pd.ErrUnreachable when no PD answered). Every
// other source (tombstones, schedule and replication config, the
// CollectChecks region checks, write hotspots and hot stores, schedulers,
// paused schedulers, the evict-leader list, health, members, PD's running
// operators and those finished within OperatorRecordsWindow, the region
// list of each Offline store with at most StoreRegionsReadLimit regions,
// and the removal progress of each Offline store) is read in parallel, at most
// four requests at a time; one that fails is recorded in Snapshot.Errors
// and its field left zero. One the PD version does not have (404 "page not
// found", pd.ErrNotAvailable: e.g. regions/check/oversized-region on PD
// 3.0) is recorded in Snapshot.Unavailable instead: not a failure. Snapshot.Time is PD's Date header of GET /stores
// (the local clock if PD sent none). It never lists all regions.
func Collect(ctx context.Context, c *pd.Client) (*Snapshot, error) {
	return collect(ctx, c, nil)
}

// reusedCheck is a check list read by an earlier Collect that collect puts
// in the snapshot instead of reading it again (Collector).
type reusedCheck struct {
	regions []pd.Region
	sum     *CheckSummary
	readAt  time.Time
}

// collect is Collect; the checks in reuse are not read but taken from
// there (and named in Snapshot.ReusedChecks).
func collect(ctx context.Context, c *pd.Client, reuse map[string]reusedCheck) (*Snapshot, error) {
	stores, now, err := c.StoresWithTime(ctx)
	if err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	s := &Snapshot{
		Time:   now,
		Stores: stores,
		Checks: make(map[string][]pd.Region, len(CollectChecks)),

		CheckSummaries: make(map[string]*CheckSummary, len(CollectChecks)),
		Progress:       map[uint64]pd.StoreProgress{},
		Errors:         map[string]error{},

		Unavailable: map[string]bool{},

		StoreRegions: map[uint64][]pd.Region{},
	}
	s.IndexStores()
	var mu sync.Mutex
	sem := make(chan struct{}, collectParallelism)
	var wg sync.WaitGroup
	run := func(source string, f func(ctx context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				s.Errors[source] = ctx.Err()
				mu.Unlock()
				return
			}
			defer func() { <-sem }()
			if err := f(ctx); err != nil {
				mu.Lock()
				if errors.Is(err, pd.ErrNotAvailable) {
					s.Unavailable[source] = true
				} else {
					s.Errors[source] = err
				}
				mu.Unlock()
			}
		}()
	}
	// Each closure writes only its own field; mu guards the maps.
	run(SourceTombstones, func(ctx context.Context) (err error) {
		s.Tombstones, err = c.Stores(ctx, pd.StateTombstone)
		return err
	})
	run(SourceSchedule, func(ctx context.Context) error {
		v, err := c.ScheduleConfig(ctx)
		if err == nil {
			s.Schedule = *v
		}
		return err
	})
	run(SourceReplication, func(ctx context.Context) error {
		v, err := c.ReplicationConfig(ctx)
		if err == nil {
			s.Replication = *v
		}
		return err
	})
	for _, name := range CollectChecks {
		if rc, ok := reuse[name]; ok {
			mu.Lock() // reads of the other checks are running
			s.Checks[name], s.CheckSummaries[name] = rc.regions, rc.sum
			if s.ReusedChecks == nil {
				s.ReusedChecks = map[string]time.Time{}
			}
			s.ReusedChecks[name] = rc.readAt
			mu.Unlock()
			continue
		}
		run(SourceCheck(name), func(ctx context.Context) error {
			regions, sum, err := streamCheck(ctx, c, name, CheckKeepRegions)
			if err == nil {
				mu.Lock()
				s.Checks[name] = regions
				s.CheckSummaries[name] = sum
				mu.Unlock()
			}
			return err
		})
	}
	run(SourceHotWrite, func(ctx context.Context) error {
		v, err := c.HotWrite(ctx)
		if err == nil {
			s.HotWrite = *v
		}
		return err
	})
	run(SourceHotStores, func(ctx context.Context) error {
		v, err := c.HotStores(ctx)
		if err == nil {
			s.HotStores = *v
		}
		return err
	})
	var evictList []uint64
	run(SourceSchedulers, func(ctx context.Context) (err error) {
		s.Schedulers, err = c.Schedulers(ctx)
		return err
	})
	run(SourcePaused, func(ctx context.Context) (err error) {
		s.PausedSchedulers, err = c.PausedSchedulers(ctx)
		return err
	})
	run(SourceEvictLeader, func(ctx context.Context) (err error) {
		evictList, err = c.EvictLeaderStores(ctx)
		return err
	})
	run(SourceHealth, func(ctx context.Context) (err error) {
		s.Health, err = c.Health(ctx)
		return err
	})
	run(SourceMembers, func(ctx context.Context) error {
		v, err := c.Members(ctx)
		if err == nil {
			s.Members = *v
		}
		return err
	})
	run(SourceOperators, func(ctx context.Context) (err error) {
		s.Operators, err = c.Operators(ctx)
		return err
	})
	run(SourceOperatorRecords, func(ctx context.Context) (err error) {
		s.OperatorRecords, err = c.OperatorRecords(ctx, now.Add(-OperatorRecordsWindow))
		return err
	})
	for _, st := range stores {
		if st.Store.StateName != pd.StateOffline || st.Status.RegionCount > StoreRegionsReadLimit {
			continue
		}
		id := st.Store.ID
		run(SourceStoreRegions(id), func(ctx context.Context) error {
			regions, err := c.RegionsByStore(ctx, id)
			if err == nil {
				mu.Lock()
				s.StoreRegions[id] = regions
				mu.Unlock()
			}
			return err
		})
	}
	for _, st := range stores {
		if st.Store.StateName != pd.StateOffline {
			continue
		}
		id := st.Store.ID
		run(SourceProgress(id), func(ctx context.Context) error {
			p, err := c.StoreProgress(ctx, id)
			if errors.Is(err, pd.ErrProgressNotFound) {
				return nil // PD starts tracking removal a moment after the store goes Offline
			}
			if err == nil {
				mu.Lock()
				s.Progress[id] = *p
				mu.Unlock()
			}
			return err
		})
	}
	wg.Wait()

	ids := append(evictList, evictLeaderNames(s.Schedulers)...)
	slices.Sort(ids)
	s.EvictLeaderStores = slices.Compact(ids)
	return s, nil
}
