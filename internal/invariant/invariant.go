// Package invariant holds the TiKV invariants the monitor evaluates every
// cycle: small units that read one tikv.Snapshot and report the subjects
// (stores, regions, the cluster) that violate them, with the PD values and
// thresholds as evidence.
//
// Definitions follow PD's own code (PD v8.1, commit 7179657d129b) and
// PingCAP's alert rules (pd.rules.yml, tikv.rules.yml at v8.5.7) as the
// floor; see /work/shared/pd-api.md sections 2-4. Time is passed in, so an
// invariant (and the pending -> firing logic built on its For duration) is
// tested step by step without sleeping, as Prometheus' rules package does.
//
// One place per invariant family: each family's file (balance, hot, cpu,
// offline, store_state, slow, space, region, pdwork, pdhealth, isolation)
// holds its detectors and their runbooks — the rules backend's diagnosis
// (Diagnose; package rules only dispatches to it) — and families.go ties
// every invariant to its runbook and allowed actions (Allowed).
package invariant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// Invariant is one property of the cluster that should hold. Eval returns
// the violations found in s at time now (an empty slice when it holds) or
// an error when it cannot be evaluated, for example because a snapshot
// source it needs failed (a *SourceError). Eval must not modify s.
type Invariant interface {
	// Name is the invariant's stable snake_case name, e.g. "store_down";
	// it is the first half of a ticket's dedup key.
	Name() string
	// Eval evaluates the invariant against s; now is the evaluation time.
	Eval(ctx context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error)
}

// Pender is implemented by invariants that carry a `for` duration: a
// violation must persist that long (pending) before it fires and reaches
// the ticket store, like a Prometheus alerting rule's `for:`. Invariants
// without it fire at once.
type Pender interface {
	For() time.Duration
}

// For returns inv's pending duration, or 0 if inv does not implement Pender.
func For(inv Invariant) time.Duration {
	if p, ok := inv.(Pender); ok {
		return p.For()
	}
	return 0
}

// WithFor wraps inv so that its violations stay pending for d before they
// fire. The wrapper keeps inv's name and evaluation.
func WithFor(inv Invariant, d time.Duration) Invariant { return withFor{inv, d} }

type withFor struct {
	Invariant
	d time.Duration
}

func (w withFor) For() time.Duration { return w.d }

// Subject names. A subject is what a violation is about; together with the
// invariant name it forms the ticket dedup key ("store_down/store:4").
const (
	// SubjectCluster is the subject of cluster-wide violations.
	SubjectCluster = "cluster"
)

// StoreSubject returns "store:<id>".
func StoreSubject(id uint64) string { return "store:" + strconv.FormatUint(id, 10) }

// RegionSubject returns "region:<id>".
func RegionSubject(id uint64) string { return "region:" + strconv.FormatUint(id, 10) }

// Violation is one subject violating an invariant.
type Violation struct {
	// Subject is "store:4", "region:12" or "cluster".
	Subject string
	// Severity follows PingCAP's alert levels.
	Severity ticket.Severity
	// Summary is one human line with the numbers, e.g.
	// "store 4 is Disconnected: last heartbeat 31s ago (> 20s)".
	Summary string
	// Evidence holds the PD values and the thresholds used; it must be
	// JSON-encodable (numbers, strings, bools, slices, maps with string keys).
	Evidence map[string]any
}

// Observation converts v into the ticket store's Observation for the
// invariant named name, encoding Evidence as a JSON object. It fails only
// if Evidence cannot be encoded.
func (v Violation) Observation(name string) (ticket.Observation, error) {
	ev := v.Evidence
	if ev == nil {
		ev = map[string]any{}
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return ticket.Observation{}, fmt.Errorf("invariant %s: encode evidence of %s: %w", name, v.Subject, err)
	}
	return ticket.Observation{
		Invariant: name,
		Subject:   v.Subject,
		Severity:  v.Severity,
		Summary:   v.Summary,
		Evidence:  raw,
	}, nil
}

// ErrSourceUnavailable is matched (errors.Is) by every *SourceError.
var ErrSourceUnavailable = errors.New("snapshot source unavailable")

// SourceError reports that an invariant could not be evaluated because a
// snapshot source it needs failed (tikv.Snapshot.Errors).
type SourceError struct {
	Invariant string
	// Source is the failed source name as the collector recorded it.
	Source string
	Err    error
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("invariant %s: source %s unavailable: %v", e.Invariant, e.Source, e.Err)
}

// Unwrap returns the source's error.
func (e *SourceError) Unwrap() error { return e.Err }

// Is matches ErrSourceUnavailable.
func (e *SourceError) Is(target error) bool { return target == ErrSourceUnavailable }

// sourceStores names GET /stores in Snapshot.Errors. tikv.Collect fails
// as a whole when it cannot read the stores, so this key only appears in
// snapshots built by other means; the other source names are tikv's
// (tikv.SourceSchedule, tikv.SourceCheck(name), ...).
const sourceStores = "stores"

// needSources returns a *SourceError if any of the named sources (keys of
// tikv.Snapshot.Errors) failed in s.
func needSources(name string, s *tikv.Snapshot, sources ...string) error {
	if s == nil {
		return fmt.Errorf("invariant %s: nil snapshot", name)
	}
	for _, src := range sources {
		if err, ok := s.Errors[src]; ok {
			return &SourceError{Invariant: name, Source: src, Err: err}
		}
	}
	return nil
}

// refTime is the clock heartbeat ages are measured against: PD's own clock
// (Snapshot.Time, the Date header of GET /stores) when known, which is what
// PD used to derive state_name; otherwise now.
func refTime(s *tikv.Snapshot, now time.Time) time.Time {
	if !s.Time.IsZero() {
		return s.Time
	}
	return now
}

// lastHeartbeat returns the store's last heartbeat: store.last_heartbeat
// (unix ns, PD >= 4.x) or status.last_heartbeat_ts.
func lastHeartbeat(st *pd.StoreInfo) time.Time {
	if st.Store.LastHeartbeat > 0 {
		return time.Unix(0, st.Store.LastHeartbeat).UTC()
	}
	return st.Status.LastHeartbeatTS
}

// heartbeatAge returns how long ago the store last heartbeated, relative to
// ref, and false if the store never reported one.
func heartbeatAge(st *pd.StoreInfo, ref time.Time) (time.Duration, bool) {
	hb := lastHeartbeat(st)
	if hb.IsZero() {
		return 0, false
	}
	return ref.Sub(hb), true
}

// uptime returns status.uptime, or last_heartbeat_ts - start_ts when PD
// omitted it.
func uptime(st *pd.StoreInfo) time.Duration {
	if st.Status.Uptime > 0 {
		return time.Duration(st.Status.Uptime)
	}
	if !st.Status.StartTS.IsZero() && !st.Status.LastHeartbeatTS.IsZero() {
		return st.Status.LastHeartbeatTS.Sub(st.Status.StartTS)
	}
	return 0
}

// engine returns "tiflash" or "tikv".
func engine(st *pd.StoreInfo) string {
	if st.IsTiFlash() {
		return "tiflash"
	}
	return "tikv"
}

// seconds renders a duration as float seconds rounded to milliseconds, the
// unit evidence uses for ages and thresholds.
func seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// roundRatio rounds a ratio to 6 decimals for evidence.
func roundRatio(f float64) float64 {
	return math.Round(f*1e6) / 1e6
}

// idKey renders a store id as a JSON object key.
func idKey(id uint64) string { return strconv.FormatUint(id, 10) }

// sortedIDs returns the keys of m in ascending order.
func sortedIDs[V any](m map[uint64]V) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// base carries what every built-in invariant shares: its name and its
// pending duration.
type base struct {
	name    string
	pending time.Duration
}

// Name returns the invariant's name.
func (b base) Name() string { return b.name }

// For returns the invariant's pending duration.
func (b base) For() time.Duration { return b.pending }
