package invariant

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
)

// PD facts the runbooks reason with (PD v8.1 pkg/core/store.go,
// pkg/schedule/config/config.go).
const (
	pdDefaultLowSpaceRatio    = 0.8
	pdDefaultHighSpaceRatio   = 0.7
	pdDefaultMaxReplicas      = 3
	pdDefaultMaxStoreDownTime = 30 * time.Minute
	pdDefaultReplicaLimit     = 64
	pdSlowScore               = 80
	pdEvictSlowScore          = 100
	pdUnhealthyAfter          = 10 * time.Minute
	// pdLowSpaceMinRegions and pdLowSpaceMinAvailable are PD's new-cluster
	// exemption from low space (InitClusterRegionThreshold, 8 GiB).
	pdLowSpaceMinRegions   = 100
	pdLowSpaceMinAvailable = 8 << 30
)

// Scheduler names as PD lists them (GET /pd/api/v1/schedulers).
const (
	schedBalanceLeader = "balance-leader-scheduler"
	schedBalanceRegion = "balance-region-scheduler"
	schedHotRegion     = "balance-hot-region-scheduler"
	schedEvictSlow     = "evict-slow-store-scheduler"
	schedEvictLeader   = pd.EvictLeaderScheduler
)

// Operator status values of GET /pd/api/v1/operators?object
// (pd.Operator.Status): 0 CREATED and 1 STARTED are still running.
const (
	opCreated = 0
	opStarted = 1
)

// facts is what a runbook reads: the context with indexes over it.
type facts struct {
	c       *diagnose.Context
	ev      ticketEvidence
	opts    RunbookOptions
	stores  map[uint64]*pd.StoreInfo
	ids     []uint64 // store ids, ascending
	evicted map[uint64]bool
	regions map[uint64]*pd.Region
}

func newFacts(c *diagnose.Context, opts RunbookOptions) *facts {
	f := &facts{c: c, opts: opts, ev: parseEvidence(c.Ticket.Evidence),
		stores: map[uint64]*pd.StoreInfo{}, evicted: map[uint64]bool{}, regions: map[uint64]*pd.Region{}}
	stores := c.Stores
	if len(stores) == 0 && c.Snapshot != nil {
		stores = c.Snapshot.Stores
	}
	for i := range stores {
		s := &stores[i]
		if s.Store.StateName == pd.StateTombstone {
			continue
		}
		if _, dup := f.stores[s.Store.ID]; !dup {
			f.ids = append(f.ids, s.Store.ID)
		}
		f.stores[s.Store.ID] = s
	}
	slices.Sort(f.ids)
	for _, id := range c.EvictLeaderStores {
		f.evicted[id] = true
	}
	for _, n := range c.Schedulers {
		if rest, ok := strings.CutPrefix(n, schedEvictLeader+"-"); ok {
			if id, err := strconv.ParseUint(rest, 10, 64); err == nil {
				f.evicted[id] = true
			}
		}
	}
	for i := range c.Regions {
		r := &c.Regions[i]
		if _, dup := f.regions[r.ID]; !dup {
			f.regions[r.ID] = r
		}
	}
	return f
}

// store returns the store with id, if PD lists it (non-Tombstone).
func (f *facts) store(id uint64) (*pd.StoreInfo, bool) {
	s, ok := f.stores[id]
	return s, ok
}

// upTiKV returns the ids of the Up TiKV stores, ascending.
func (f *facts) upTiKV() []uint64 {
	var out []uint64
	for _, id := range f.ids {
		s := f.stores[id]
		if s.Store.StateName == pd.StateUp && !s.IsTiFlash() {
			out = append(out, id)
		}
	}
	return out
}

// tikvIn returns the ids of the TiKV stores whose state_name is one of
// states, ascending.
func (f *facts) tikvIn(states ...string) []uint64 {
	var out []uint64
	for _, id := range f.ids {
		s := f.stores[id]
		if !s.IsTiFlash() && slices.Contains(states, s.Store.StateName) {
			out = append(out, id)
		}
	}
	return out
}

// offlineTiKV returns the TiKV stores being removed (Offline, or
// node_state Removing), ascending.
func (f *facts) offlineTiKV() []uint64 {
	var out []uint64
	for _, id := range f.ids {
		s := f.stores[id]
		if !s.IsTiFlash() && isOffline(s) {
			out = append(out, id)
		}
	}
	return out
}

func isOffline(s *pd.StoreInfo) bool {
	return s.Store.StateName == pd.StateOffline || s.Store.NodeState == pd.NodeRemoving
}

// maxReplicas is replication.max-replicas (PD's default 3 when unknown).
func (f *facts) maxReplicas() int {
	if f.c.Replication.MaxReplicas > 0 {
		return int(f.c.Replication.MaxReplicas)
	}
	return pdDefaultMaxReplicas
}

// lowSpaceRatio is schedule.low-space-ratio (PD's default 0.8 when unknown).
func (f *facts) lowSpaceRatio() float64 {
	if f.c.Schedule.LowSpaceRatio > 0 {
		return f.c.Schedule.LowSpaceRatio
	}
	return pdDefaultLowSpaceRatio
}

func (f *facts) highSpaceRatio() float64 {
	if f.c.Schedule.HighSpaceRatio > 0 {
		return f.c.Schedule.HighSpaceRatio
	}
	return pdDefaultHighSpaceRatio
}

// lowSpace is PD's IsLowSpace: available/capacity < 1 - low-space-ratio,
// except capacity 0 and PD's new-cluster exemption.
func (f *facts) lowSpace(s *pd.StoreInfo) bool {
	capacity, avail := uint64(s.Status.Capacity), uint64(s.Status.Available)
	if capacity == 0 || (s.Status.RegionCount < pdLowSpaceMinRegions && avail > pdLowSpaceMinAvailable) {
		return false
	}
	return float64(avail)/float64(capacity) < 1-f.lowSpaceRatio()
}

// targets returns the Up TiKV stores PD can place new replicas on: not low
// on space (PD's placement filters refuse Disconnected and low-space
// stores).
func (f *facts) targets() []uint64 {
	var out []uint64
	for _, id := range f.upTiKV() {
		if !f.lowSpace(f.stores[id]) {
			out = append(out, id)
		}
	}
	return out
}

func (f *facts) slowScore() uint64 {
	if f.opts.SlowScore > 0 {
		return f.opts.SlowScore
	}
	return pdSlowScore
}

func (f *facts) isSlow(s *pd.StoreInfo) bool { return s.Status.SlowScore >= f.slowScore() }

// scheduler says whether PD runs the named scheduler: "running", "paused"
// (listed by GET /schedulers?status=paused) or "absent".
func (f *facts) scheduler(name string) string {
	if slices.Contains(f.c.PausedSchedulers, name) {
		return "paused"
	}
	if slices.Contains(f.c.Schedulers, name) {
		return "running"
	}
	return "absent"
}

// halted reports PD's schedule.halt-scheduling: while set, PD creates no
// operator at all, including the ones a human approves.
func (f *facts) halted() bool { return strings.EqualFold(f.c.Schedule.HaltScheduling, "true") }

// runningOperator returns PD's running operator on region id, if any.
func (f *facts) runningOperator(id uint64) (pd.Operator, bool) {
	for _, op := range f.c.Operators {
		if op.RegionID == id && (op.Status == opCreated || op.Status == opStarted) {
			return op, true
		}
	}
	return pd.Operator{}, false
}

// sourceError returns the error text of a snapshot source that could not
// be read, "" when it was read.
func (f *facts) sourceError(source string) string {
	if e, ok := f.c.SourceErrors[source]; ok {
		return e
	}
	if f.c.Snapshot != nil {
		if e, ok := f.c.Snapshot.Errors[source]; ok && e != nil {
			return e.Error()
		}
	}
	return ""
}

// regionsOnStore returns the context's regions with a peer on store id,
// by region id.
func (f *facts) regionsOnStore(id uint64) []*pd.Region {
	var out []*pd.Region
	for i := range f.c.Regions {
		r := &f.c.Regions[i]
		if _, ok := r.PeerOn(id); ok {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// lostQuorum returns the ids of the given regions that lost their
// quorum (peers.Region.Available): in some voter set (two in joint
// consensus) fewer than a majority of voters are live — on a store that
// heartbeats (Up, or Offline while draining) and not reported down. Such a
// region cannot elect a leader or change its membership until its stores
// return.
func (f *facts) lostQuorum(rs []*pd.Region) []uint64 {
	var out []uint64
	for _, r := range rs {
		if m := f.model(r); len(m.Voters()) > 0 && !m.Available() {
			out = append(out, r.ID)
		}
	}
	return out
}

// heartbeatAge is how long ago the store last heartbeated, by PD's clock
// (the context time); false when unknown.
func (f *facts) heartbeatAge(s *pd.StoreInfo) (time.Duration, bool) {
	hb := time.Time{}
	if s.Store.LastHeartbeat > 0 {
		hb = time.Unix(0, s.Store.LastHeartbeat)
	} else {
		hb = s.Status.LastHeartbeatTS
	}
	if hb.IsZero() || f.c.Time.IsZero() {
		if sec, ok := f.ev.float("heartbeat_age_seconds"); ok {
			return time.Duration(sec * float64(time.Second)), true
		}
		return 0, false
	}
	return f.c.Time.Sub(hb), true
}

// storeLine renders a store for evidence.
func storeLine(s *pd.StoreInfo) string {
	kind := ""
	if s.IsTiFlash() {
		kind = " TiFlash"
	}
	return fmt.Sprintf("store %d%s (%s) %s: %d regions, %d leaders, %s of %s available",
		s.Store.ID, kind, s.Store.Address, s.Store.StateName, s.Status.RegionCount, s.Status.LeaderCount,
		s.Status.Available, s.Status.Capacity)
}

// regionLine renders a region for evidence (never its keys): leader (or
// "no leader"), voters, learners, witnesses, down and pending peers and
// its quorum per voter set (peers.Region.Quorum, the dry runs'
// arithmetic).
func (f *facts) regionLine(r *pd.Region) string {
	m := f.model(r)
	leader := fmt.Sprintf("leader on store %d", r.Leader.StoreID)
	if !m.HasLeader() {
		leader = "NO LEADER"
	}
	s := fmt.Sprintf("region %d: %s, voters on stores %s", r.ID, leader, idList(m.Voters()))
	if l := m.Learners(); len(l) > 0 {
		s += ", learners on stores " + idList(l)
	}
	if w := m.Witnesses(); len(w) > 0 {
		s += ", witnesses on stores " + idList(w)
	}
	s += fmt.Sprintf(", %d MiB, %d keys", r.ApproximateSize, r.ApproximateKeys)
	var down, pending []uint64
	for _, p := range m.Peers {
		if p.Down {
			down = append(down, p.StoreID)
		}
		if p.Pending {
			pending = append(pending, p.StoreID)
		}
	}
	slices.Sort(down)
	slices.Sort(pending)
	if len(down) > 0 {
		s += ", down peers on stores " + idList(down)
	}
	if len(pending) > 0 {
		s += ", pending peers on stores " + idList(pending)
	}
	if m.Joint() {
		s += ", in joint consensus"
	}
	return s + "; quorum: " + m.Quorum()
}

func idList(ids []uint64) string {
	if len(ids) == 0 {
		return "none"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ", ")
}

func pct(f float64) string { return strconv.FormatFloat(math.Round(f*1000)/10, 'f', -1, 64) + "%" }

func bytesOf(n uint64) string { return pd.ByteSize(n).String() }

func roundDur(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// ticketEvidence is a ticket's evidence object, read leniently: a missing or
// mistyped key reads as absent.
type ticketEvidence map[string]json.RawMessage

func parseEvidence(raw json.RawMessage) ticketEvidence {
	var ev ticketEvidence
	if json.Unmarshal(raw, &ev) != nil || ev == nil {
		return ticketEvidence{}
	}
	return ev
}

func (e ticketEvidence) uint(key string) (uint64, bool) {
	var v uint64
	if raw, ok := e[key]; ok && json.Unmarshal(raw, &v) == nil {
		return v, true
	}
	if f, ok := e.float(key); ok && f >= 0 && f == math.Trunc(f) {
		return uint64(f), true
	}
	return 0, false
}

func (e ticketEvidence) float(key string) (float64, bool) {
	var v float64
	if raw, ok := e[key]; ok && json.Unmarshal(raw, &v) == nil {
		return v, true
	}
	return 0, false
}

func (e ticketEvidence) str(key string) string {
	var v string
	if raw, ok := e[key]; ok && json.Unmarshal(raw, &v) == nil {
		return v
	}
	return ""
}

func (e ticketEvidence) ids(key string) []uint64 {
	var v []uint64
	if raw, ok := e[key]; ok && json.Unmarshal(raw, &v) == nil {
		return v
	}
	return nil
}

func (e ticketEvidence) strs(key string) []string {
	var v []string
	if raw, ok := e[key]; ok && json.Unmarshal(raw, &v) == nil {
		return v
	}
	return nil
}

// counts reads an object keyed by store or region id ("1": 14) as a map.
func (e ticketEvidence) counts(key string) map[uint64]float64 {
	var v map[string]float64
	raw, ok := e[key]
	if !ok || json.Unmarshal(raw, &v) != nil {
		return nil
	}
	out := make(map[uint64]float64, len(v))
	for k, n := range v {
		if id, err := strconv.ParseUint(k, 10, 64); err == nil {
			out[id] = n
		}
	}
	return out
}

// countsLine renders a per-id map as "store 1: 14, store 2: 0", by id.
func countsLine(prefix string, m map[uint64]float64) string {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s %d: %s", prefix, id, strconv.FormatFloat(m[id], 'f', -1, 64))
	}
	return strings.Join(parts, ", ")
}
