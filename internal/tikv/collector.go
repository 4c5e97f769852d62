package tikv

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// Collector defaults.
const (
	// DefaultHeavyCheckRegions is the region count from which a check list
	// is heavy (about 1 KB of JSON per region: 1,000 regions ~ 1 MB).
	DefaultHeavyCheckRegions = 1000
	// DefaultHeavyListInterval is the longest a heavy check list is reused
	// while PD's count for it does not change: six default monitor
	// intervals.
	DefaultHeavyListInterval = time.Minute
)

// Collector is Collect with the heavy region check lists on their own,
// longer interval (issue 17): a /regions/check/{name} list whose last read
// held at least HeavyRegions regions (a store with 60k regions down makes
// the down-peer and pending-peer lists ~70 MB) is not read again while PD's
// own count for it, pd_regions_status{type="{name}-region-count"} in PD's
// GET /metrics (PD >= 3.0; the PD leader's figure), equals the count of
// that read and HeavyListInterval has not passed since; the snapshot then
// carries the earlier list and summary (Snapshot.ReusedChecks says since
// when). The count is read only while some list is heavy, so a healthy
// cycle costs what Collect costs: PD's /metrics is ~350 KB, 30 times a
// healthy cycle's reads. Any doubt reads the list again: /metrics not
// read, the type absent, a count that moved. PD updates the count in its
// metrics job (every few seconds), so a change shows in the list at the
// latest one job later than it would have. Safe for concurrent use
// (collections are serialised). Create it with NewCollector.
type Collector struct {
	c *pd.Client
	// HeavyRegions is the heavy-list threshold (regions); <= 0 means
	// DefaultHeavyCheckRegions.
	HeavyRegions int
	// HeavyListInterval is the longest a heavy list is reused; <= 0 means
	// DefaultHeavyListInterval.
	HeavyListInterval time.Duration

	mu    sync.Mutex
	heavy map[string]reusedCheck
}

// NewCollector returns a Collector over c with the default thresholds.
func NewCollector(c *pd.Client) *Collector {
	return &Collector{c: c, heavy: map[string]reusedCheck{}}
}

// Collect reads one Snapshot like the package's Collect, reusing the heavy
// check lists whose count PD reports unchanged. Errors as Collect's.
func (col *Collector) Collect(ctx context.Context) (*Snapshot, error) {
	col.mu.Lock()
	defer col.mu.Unlock()
	heavyAt := col.HeavyRegions
	if heavyAt <= 0 {
		heavyAt = DefaultHeavyCheckRegions
	}
	every := col.HeavyListInterval
	if every <= 0 {
		every = DefaultHeavyListInterval
	}
	var reuse map[string]reusedCheck
	if len(col.heavy) > 0 {
		if counts, err := RegionStatusCounts(ctx, col.c); err == nil {
			now := time.Now()
			for name, rc := range col.heavy {
				n, ok := counts[name]
				if ok && n == rc.sum.Count && now.Sub(rc.readAt) < every {
					if reuse == nil {
						reuse = map[string]reusedCheck{}
					}
					reuse[name] = rc
				}
			}
		}
	}
	s, err := collect(ctx, col.c, reuse)
	if err != nil {
		return nil, err
	}
	for _, name := range CollectChecks {
		if _, reused := reuse[name]; reused {
			continue
		}
		sum := s.CheckSummaries[name]
		if sum == nil || sum.Count < heavyAt {
			delete(col.heavy, name) // light, failed or unavailable: read every cycle
			continue
		}
		// readAt is the local clock: the interval is ours, not PD's.
		col.heavy[name] = reusedCheck{regions: s.Checks[name], sum: sum, readAt: time.Now()}
	}
	return s, nil
}

// RegionStatusCounts reads PD's per-check region counts from GET /metrics
// (the gauge pd_regions_status, labels type="miss-peer-region-count",
// "oversized-region-count", ...; PD 3.x-4.x spell them with underscores),
// keyed by check name (CheckMissPeer, ...). Only the PD leader computes
// them: a follower reports zeros or nothing. The body is scanned line by
// line for that one gauge (PD exposes ~350 KB of metrics; decoding every
// family with a Prometheus text parser would allocate several MB per
// cycle for one gauge). Errors: transport errors (wrapping
// pd.ErrUnreachable), a non-200 status.
func RegionStatusCounts(ctx context.Context, c *pd.Client) (map[string]int, error) {
	res, err := c.GetRaw(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	if res.Status != 200 {
		return nil, fmt.Errorf("pd: GET /metrics: status %d", res.Status)
	}
	return parseRegionStatus(res.Body), nil
}

// parseRegionStatus extracts pd_regions_status{type="..."} samples from a
// Prometheus text exposition.
func parseRegionStatus(body []byte) map[string]int {
	const prefix = `pd_regions_status{type="`
	out := map[string]int{}
	for line := range bytes.Lines(body) {
		rest, ok := bytes.CutPrefix(line, []byte(prefix))
		if !ok {
			continue
		}
		typ, val, ok := bytes.Cut(rest, []byte(`"} `))
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(string(bytes.TrimSpace(val)), 64)
		if err != nil || !(f >= 0 && f < 1e15) { // NaN, negative, Inf
			continue
		}
		t := strings.ReplaceAll(string(typ), "_", "-")
		for _, name := range CollectChecks {
			if t == name+"-region-count" || t == name+"-count" {
				out[name] = int(f)
			}
		}
	}
	return out
}
