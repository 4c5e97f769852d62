package daemon

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// pdCounter counts the PD requests and response bytes of one client
// (pd.WithObserver sees every HTTP attempt).
type pdCounter struct {
	mu       sync.Mutex
	requests int
	bytes    int64
	paths    []string
}

func (c *pdCounter) observe(method, path string, status int, _ time.Duration, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	c.bytes += n
	c.paths = append(c.paths, method+" "+path)
}

func (c *pdCounter) reset() (int, int64, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, b, p := c.requests, c.bytes, c.paths
	c.requests, c.bytes, c.paths = 0, 0, nil
	return r, b, p
}

// TestRecheckAfterTransferLeaderReadsNoRegions: the re-check after a
// transfer_leader (leader_imbalance/cluster) on a real PD, before (a fresh
// snapshot of its own) and after issue 17 (the monitor's next snapshot,
// SnapshotFeed): the re-check itself reads nothing from PD, in particular
// no /regions or /regions/check list, and answers as the fresh read does.
func TestRecheckAfterTransferLeaderReadsNoRegions(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 12, SkewLeaders: true, PauseBalanceLeader: true})
	cfg := testConfig(t, c.PDURL)
	var counted pdCounter
	pdc, err := NewPDClient(cfg, pd.WithObserver(counted.observe))
	if err != nil {
		t.Fatal(err)
	}
	monitorPD, err := NewPDClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tk := ticket.Ticket{ID: 1, Key: "leader_imbalance/cluster", Invariant: invariant.NameLeaderImbalance, Subject: "cluster"}

	// The action: one leader moves off the skewed store (PD's own
	// operator, as transfer_leader creates it); the imbalance remains.
	snap, err := tikv.Collect(ctx, monitorPD)
	if err != nil {
		t.Fatal(err)
	}
	from, to := uint64(0), uint64(0)
	for _, s := range snap.Stores {
		if s.Status.LeaderCount > 0 {
			from = s.Store.ID
		} else if to == 0 {
			to = s.Store.ID
		}
	}
	rs, err := monitorPD.RegionsByStore(ctx, from)
	if err != nil || len(rs) == 0 || to == 0 {
		t.Fatalf("regions of store %d: %v (%d), target %d", from, err, len(rs), to)
	}
	if err := c.PostJSON(ctx, "/operators", map[string]any{"name": "transfer-leader", "region_id": rs[0].ID, "to_store_id": to}, nil); err != nil {
		t.Fatal(err)
	}

	// Before: the re-check reads a fresh snapshot of its own.
	before := NewReevaluator(func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, pdc) }, cfg.Invariants, time.Now)
	before.Settle = 0
	counted.reset()
	heldBefore, err := before.Reevaluate(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	nb, bb, pathsBefore := counted.reset()
	t.Logf("re-check before: %d PD requests, %d bytes: %s", nb, bb, strings.Join(pathsBefore, ", "))

	// After: the monitor (its own client) publishes a snapshot every
	// interval; the re-check waits for the next one.
	feed := NewSnapshotFeed()
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for mctx.Err() == nil {
			started := time.Now()
			if s, err := tikv.Collect(mctx, monitorPD); err == nil {
				feed.Publish(s, started)
			}
			select {
			case <-mctx.Done():
			case <-time.After(cfg.Monitor.Interval.Duration):
			}
		}
	}()
	after := NewReevaluator(func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, pdc) }, cfg.Invariants, time.Now)
	after.Feed, after.SettleLag, after.FeedWait = feed, 200*time.Millisecond, 10*time.Second
	start := time.Now()
	heldAfter, err := after.Reevaluate(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	na, ba, pathsAfter := counted.reset()
	t.Logf("re-check after: %d PD requests, %d bytes (waited %s for the monitor's next snapshot)", na, ba, time.Since(start).Round(time.Millisecond))
	for _, p := range pathsAfter {
		if strings.Contains(p, "/regions") {
			t.Errorf("the re-check read %s", p)
		}
	}
	if na != 0 {
		t.Errorf("the re-check made %d PD requests of its own: %v", na, pathsAfter)
	}
	if heldAfter != heldBefore || heldAfter {
		t.Errorf("held: fresh read %v, shared snapshot %v; want both false (one leader moved, still skewed)", heldBefore, heldAfter)
	}
	// Without a monitor cycle (the feed stays quiet), it falls back to
	// one read of PD.
	quiet := NewReevaluator(func(ctx context.Context) (*tikv.Snapshot, error) { return tikv.Collect(ctx, pdc) }, cfg.Invariants, time.Now)
	quiet.Feed, quiet.FeedWait, quiet.Settle = NewSnapshotFeed(), 100*time.Millisecond, 0
	if held, err := quiet.Reevaluate(ctx, tk); err != nil || held {
		t.Errorf("fallback: held %v, err %v", held, err)
	}
	if n, _, _ := counted.reset(); n == 0 {
		t.Errorf("the fallback read nothing from PD")
	}
}
