package tikv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/pd"
)

// Collector defaults.
const (
	// DefaultHeavyCheckRegions is the region count from which a check list
	// is heavy (about 1 KB of JSON per region: 1,000 regions ~ 1 MB).
	DefaultHeavyCheckRegions = 1000
	// DefaultHeavyListInterval is the longest a heavy check list (its
	// kept regions and per-store breakdown) is reused before it is read
	// again: six default monitor intervals, well under the default
	// down-peer-unrepaired-after (10 min) that tracks its regions.
	DefaultHeavyListInterval = time.Minute
)

// Collector is Collect with the heavy region check lists on their own,
// longer interval (issue 17). Once a /regions/check/{name} list held at
// least HeavyRegions regions (a store with 60k regions down makes the
// down-peer and pending-peer lists ~70 MB), each cycle reads PD's own
// count for it instead, pd_regions_status{type="{name}-region-count"} from
// PD's GET /metrics (PD >= 3.0; computed by the PD leader's metrics job
// every 10 s), and reuses the kept regions and the per-store breakdown of
// the last read for at most HeavyListInterval: the snapshot's
// CheckSummaries[name].Count is PD's current count, its other fields and
// Checks[name] are as of Snapshot.ReusedChecks[name]. A count that moves
// (PD repairing peers, another store failing) does not force a read: the
// breakdown follows at the interval (or as soon as the count halves or
// doubles), the count every cycle. Any doubt
// reads the list: /metrics not read, the type absent, a count below
// HeavyRegions (the list is cheap again, or a PD follower answered with
// zeros). A healthy cycle costs exactly what Collect costs: /metrics is
// read only while some list is heavy, streamed and gzip-compressed (~28 KB
// on the wire for ~400 KB of text on PD v8.1), and left as soon as the
// pd_regions_status lines have been seen. Safe for concurrent use
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
// check lists read within HeavyListInterval while PD counts at least
// HeavyRegions regions for them. Errors as Collect's.
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
				// Read again when due, when the list is light again, and
				// when PD's count left [half, double] the read's: a
				// growing incident's breakdown follows it within a
				// factor of 2 for at most twice the final list's bytes.
				if !ok || n < heavyAt || now.Sub(rc.readAt) >= every || n > 2*rc.sum.Count || 2*n < rc.sum.Count {
					continue
				}
				if n != rc.sum.Count {
					sum := *rc.sum // the maps are shared, never written
					sum.Count = n
					rc.sum = &sum
				}
				if reuse == nil {
					reuse = make(map[string]reusedCheck, len(col.heavy))
				}
				reuse[name] = rc
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

// metricsLineBuf is the line buffer RegionStatusCounts scans /metrics
// with; longer lines (none in PD's exposition) are skipped.
const metricsLineBuf = 16 << 10

var metricsReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, metricsLineBuf) }}

// RegionStatusCounts reads PD's per-check region counts from GET /metrics
// (the gauge pd_regions_status, labels type="miss-peer-region-count",
// "oversized-region-count", ...; PD 3.x-4.x spell them with underscores),
// keyed by check name (CheckMissPeer, ...). Only the PD leader computes
// them (every 10 s, metricsCollectionJobInterval): a follower reports
// zeros or nothing. The body is streamed gzip-compressed and scanned line
// by line for that one gauge, without a Prometheus parser (it would
// allocate several MB per cycle for one gauge), and left as soon as the
// gauge's lines ended (a metric family's lines are contiguous in the text
// format; PD v8.1 exposes them about 65 % into its ~400 KB). The query
// name[]=pd_regions_status asks PD to expose that family alone
// (client_golang >= 1.24 honours it; PD v8.x ignores it). Errors:
// transport errors (wrapping pd.ErrUnreachable), a non-200 status.
func RegionStatusCounts(ctx context.Context, c *pd.Client) (map[string]int, error) {
	out := make(map[string]int, len(CollectChecks))
	err := c.StreamGet(ctx, "/metrics?name%5B%5D=pd_regions_status", func(status int, body io.Reader) error {
		if status != 200 {
			return fmt.Errorf("pd: GET /metrics: status %d", status)
		}
		br := metricsReaders.Get().(*bufio.Reader)
		br.Reset(body)
		defer func() {
			br.Reset(nil)
			metricsReaders.Put(br)
		}()
		return scanRegionStatus(br, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parseRegionStatus extracts pd_regions_status{type="..."} samples from a
// Prometheus text exposition.
func parseRegionStatus(body []byte) map[string]int {
	out := map[string]int{}
	_ = scanRegionStatus(bufio.NewReaderSize(bytes.NewReader(body), metricsLineBuf), out)
	return out
}

var regionStatusPrefix = []byte(`pd_regions_status{type="`)

// scanRegionStatus adds the pd_regions_status samples of r to out, by
// check name, and returns at the first line after them.
func scanRegionStatus(r *bufio.Reader, out map[string]int) error {
	seen := false
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) { // an overlong line: skip it
				_, err = r.ReadSlice('\n')
			}
			line = nil
		}
		if len(line) > 0 {
			rest, ok := bytes.CutPrefix(line, regionStatusPrefix)
			switch {
			case ok:
				seen = true
				addRegionStatus(rest, out)
			case seen && !bytes.HasPrefix(line, []byte("pd_regions_status")):
				return nil // the family's lines are contiguous: done
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// addRegionStatus parses `{type}"} {value}` of one sample into out.
func addRegionStatus(rest []byte, out map[string]int) {
	typ, val, ok := bytes.Cut(rest, []byte(`"} `))
	if !ok {
		return
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(val)), 64)
	if err != nil || !(f >= 0 && f < 1e15) { // NaN, negative, Inf
		return
	}
	var norm [64]byte
	if len(typ) > len(norm) {
		return
	}
	t := norm[:len(typ)]
	for i, b := range typ {
		if b == '_' {
			b = '-'
		}
		t[i] = b
	}
	for _, name := range CollectChecks {
		if n, ok := bytes.CutPrefix(t, []byte(name)); ok && (string(n) == "-region-count" || string(n) == "-count") {
			out[name] = int(f)
		}
	}
}
