package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// Getter reads one PD endpoint verbatim; *pd.Client implements it.
type Getter interface {
	GetRaw(ctx context.Context, path string) (*pd.RawResponse, error)
}

// Recording defaults.
const (
	// DefaultRecordEvery is the pause between two polls (the monitor's
	// default interval).
	DefaultRecordEvery = 10 * time.Second
	// DefaultRecordFor is how long Record polls.
	DefaultRecordFor = 5 * time.Minute
	// DefaultRecordMaxStoreRegions bounds the store region lists recorded:
	// GET /regions/store/{id} is read only for stores that hold at most
	// this many regions (~1 KB each, every poll that changes them).
	DefaultRecordMaxStoreRegions = 200
	// recordsKey is the tape key of GET /operators/records: its from= value
	// changes every poll, so the tape matches any.
	recordsKey = "operators/records?from=*"
)

// RecordOptions configure Record. Zero fields take the defaults noted.
type RecordOptions struct {
	// ID, Title and Source fill the tape's metadata; Source defaults to a
	// note saying where and when the tape was recorded.
	ID, Title string
	Source    []string
	// Every is the pause between polls (DefaultRecordEvery); For the
	// recording's length (DefaultRecordFor). Polls happen at 0, Every,
	// 2*Every, ... up to For.
	Every, For time.Duration
	// MaxStoreRegions: DefaultRecordMaxStoreRegions.
	MaxStoreRegions int
	// Now is the local clock (time.Now); Sleep waits d or until ctx ends
	// (a timer). Tests replace both.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// OnStep, when not nil, is called after each poll with the step index,
	// its offset and how many endpoints changed.
	OnStep func(step int, at time.Duration, changed int)
}

// RecordedPaths are the endpoints every poll reads, relative to APIPrefix:
// what tikv.Collect, the diagnosis gatherer and the actions' dry runs read
// (the region checks are tikv.CollectChecks). Per poll Record also reads
// GET /operators/records (stored under "operators/records?from=*"), the
// region list of each store holding at most MaxStoreRegions regions (the
// diagnosis reads them for imbalance and store tickets) and the removal
// progress of each Offline store.
func RecordedPaths() []string {
	p := []string{
		"stores", "stores/check?state=tombstone", "version",
		"config/schedule", "config/replicate", "config/rules", "config/label-property",
		"hotspot/regions/write", "hotspot/stores",
		"schedulers", "schedulers?status=paused", "schedulers?status=paused&timestamp=true",
		"scheduler-config/evict-leader-scheduler/list",
		"health", "members", "operators?object",
	}
	for _, c := range tikv.CollectChecks {
		p = append(p, "regions/check/"+c)
	}
	return p
}

// Record polls PD through g and returns a tape skeleton: one step per
// poll holding the endpoints whose answer changed since the previous poll
// (the first step holds all), Start set to PD's clock at the first GET
// /stores, and an empty expectation for a human to fill in (a tape with
// none does not load until it is filled). It fails when GET /stores cannot
// be read at the first poll; later failures of an endpoint leave its
// previous answer in place. ctx ending stops the recording early and
// returns what was recorded, with ctx's error when nothing was.
func Record(ctx context.Context, g Getter, opts RecordOptions) (*Tape, error) {
	if opts.Every <= 0 {
		opts.Every = DefaultRecordEvery
	}
	if opts.For <= 0 {
		opts.For = DefaultRecordFor
	}
	if opts.MaxStoreRegions <= 0 {
		opts.MaxStoreRegions = DefaultRecordMaxStoreRegions
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	t := &Tape{ID: opts.ID, Title: opts.Title, Source: opts.Source}
	state := map[string]Response{}
	t0 := opts.Now()
	for i := 0; ; i++ {
		at := opts.Now().Sub(t0).Truncate(time.Millisecond)
		if i > 0 && at <= t.Steps[i-1].At.Duration {
			at = t.Steps[i-1].At.Duration + time.Millisecond
		}
		polled, date, err := poll(ctx, g, opts)
		if err != nil {
			if i == 0 {
				return nil, err
			}
			break
		}
		if i == 0 {
			t.Start = date
			if t.Start.IsZero() {
				t.Start = t0.UTC().Truncate(time.Second)
			}
			if v, ok := polled["version"]; ok {
				var ver struct {
					Version string `json:"version"`
				}
				if json.Unmarshal(v.Body, &ver) == nil {
					t.PDVersion = ver.Version
				}
			}
		}
		step := Step{At: Duration{at}, PD: map[string]Response{}}
		for k, r := range polled {
			if old, ok := state[k]; !ok || !sameResponse(old, r) {
				step.PD[k] = r
			}
		}
		maps.Copy(state, polled)
		t.Steps = append(t.Steps, step)
		if opts.OnStep != nil {
			opts.OnStep(i, at, len(step.PD))
		}
		next := time.Duration(i+1) * opts.Every
		if next > opts.For {
			break
		}
		if d := next - opts.Now().Sub(t0); d > 0 {
			if err := opts.Sleep(ctx, d); err != nil {
				break
			}
		}
	}
	if t.Title == "" {
		t.Title = fmt.Sprintf("recorded from PD %s at %s", t.PDVersion, t.Start.Format(time.RFC3339))
	}
	if len(t.Source) == 0 {
		t.Source = []string{fmt.Sprintf("recorded with `operator record` from PD %s at %s; cite the incident's public report here",
			t.PDVersion, t.Start.Format(time.RFC3339))}
	}
	t.Notes = fmt.Sprintf("%d polls every %s. Fill in expect (detect, response, never) before replaying.", len(t.Steps), opts.Every)
	t.Expect = Expect{Detect: []Detection{}, Response: []Answer{}, Never: []Match{}}
	return t, nil
}

// poll reads every recorded endpoint once. The error is GET /stores'.
func poll(ctx context.Context, g Getter, opts RecordOptions) (map[string]Response, time.Time, error) {
	out := map[string]Response{}
	stores, err := g.GetRaw(ctx, APIPrefix+"/stores")
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("record: GET /stores: %w", err)
	}
	out["stores"] = toResponse(stores)
	date := stores.Date
	for _, p := range RecordedPaths()[1:] {
		if ctx.Err() != nil {
			return nil, time.Time{}, ctx.Err()
		}
		if r, err := g.GetRaw(ctx, APIPrefix+"/"+p); err == nil {
			out[p] = toResponse(r)
		}
	}
	from := date
	if from.IsZero() {
		from = opts.Now()
	}
	if r, err := g.GetRaw(ctx, APIPrefix+"/operators/records?from="+strconv.FormatInt(from.Add(-tikv.OperatorRecordsWindow).Unix(), 10)); err == nil {
		out[recordsKey] = toResponse(r)
	}
	var list pd.StoresInfo
	if stores.Status == 200 && json.Unmarshal(stores.Body, &list) == nil {
		for _, s := range list.Stores {
			id := strconv.FormatUint(s.Store.ID, 10)
			if s.Status.RegionCount <= opts.MaxStoreRegions {
				if r, err := g.GetRaw(ctx, APIPrefix+"/regions/store/"+id); err == nil {
					out["regions/store/"+id] = toResponse(r)
				}
			}
			if s.Store.StateName == pd.StateOffline {
				if r, err := g.GetRaw(ctx, APIPrefix+"/stores/progress?id="+id); err == nil {
					out["stores/progress?id="+id] = toResponse(r)
				}
			}
		}
	}
	return out, date, nil
}

// toResponse keeps a body that parses as JSON as JSON (compacted) and
// anything else as text. The Content-Type is not trusted: PD writes some
// JSON bodies (region lists, PD v8.1) without one, and Go then sniffs
// text/plain.
func toResponse(r *pd.RawResponse) Response {
	out := Response{}
	if r.Status != 200 {
		out.Status = r.Status
	}
	trimmed := bytes.TrimSpace(r.Body)
	if len(trimmed) > 0 && json.Valid(trimmed) {
		var buf bytes.Buffer
		if json.Compact(&buf, trimmed) == nil {
			out.Body = buf.Bytes()
			return out
		}
	}
	out.Text = string(r.Body)
	return out
}

func sameResponse(a, b Response) bool {
	return a.Status == b.Status && a.Text == b.Text && bytes.Equal(a.Body, b.Body)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// errNoSteps is returned by MarshalTape for a tape without steps.
var errNoSteps = errors.New("tape has no steps")

// MarshalTape renders t as indented JSON, the tape file format; a tape
// without steps is an error.
func MarshalTape(t *Tape) ([]byte, error) {
	if len(t.Steps) == 0 {
		return nil, errNoSteps
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
