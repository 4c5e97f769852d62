package invariant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// DefaultPDLeaderChangeHold is how long LeaderGuard holds the store-state
// invariants after a PD leader change: TiKV's store heartbeat interval
// (raftstore.pd-store-heartbeat-tick-interval, 10 s) twice, plus one
// default monitor interval of margin.
const DefaultPDLeaderChangeHold = 30 * time.Second

// HeldByLeaderChange names the invariants LeaderGuard holds: those read
// from the store heartbeat figures a new PD leader rebuilds (state_name
// from last_heartbeat, capacity, available, leader and region counts). A
// new leader loads stores from its storage, where last_heartbeat is
// persisted at most every 5 minutes and the stats not at all, so until
// each store heartbeats again PD shows it Disconnected with capacity 0 and
// no leaders (seen on PD v8.1 with the simulator, tikv/pd storeinfo
// NeedPersist).
var HeldByLeaderChange = []string{
	NameStoreDisconnected, NameStoreUnhealthy, NameStoreDown,
	NameStoreLowSpace, NameClusterSpaceUsed, NameStoreCapacitySuspect,
	NameStoreNoLeaders, NameUpStoresBelowReplicas, NameStoreOfflineBlocked,
	NameStoreLeaderDrop, NameHostStoresFailing,
}

// ErrHeld is matched (errors.Is) by every *HeldError.
var ErrHeld = errors.New("invariant held")

// HeldError is what a held invariant's Eval returns instead of evaluating:
// the monitor keeps its alerts and tickets as they are (neither updated
// nor resolved) and shows Reason in its status, without counting an
// evaluation error.
type HeldError struct {
	Invariant string
	// Reason says what was detected and when, e.g. "PD leader changed
	// from member pd-1 to pd-2".
	Reason string
	// Until is when the hold ends (monitor clock).
	Until time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("held until %s: %s; PD rebuilds store states and stats from store heartbeats (every 10 s)",
		e.Until.UTC().Format(time.RFC3339), e.Reason)
}

// Is matches ErrHeld.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// LeaderGuard detects a PD leader change in the snapshots the monitor
// collects and holds the store-state invariants (HeldByLeaderChange) for
// Hold afterwards, so that the new leader's rebuilt store figures open no
// ticket; a store still Disconnected after the hold fires as usual. A
// change is any of: the leader's member id in GET /members changed; a
// store's last_heartbeat went backwards (> 1 s): a new leader shows the
// last_heartbeat it persisted (at most every 5 minutes), older than the
// one the previous leader reported — also after a restart of a single PD,
// whose member id stays. (Capacity 0 alone is no sign: a store can report
// it, store_capacity_suspect.) One guard is shared by the invariants Default
// wraps; it is safe for concurrent use. It is a Stateful
// ("invariant/pd-leader-guard"): the monitor persists the last PD leader,
// the stores' last heartbeats and a running hold, so a PD leader change
// while the operator was stopped is still detected at its first cycle.
type LeaderGuard struct {
	Hold time.Duration

	mu       sync.Mutex
	last     *tikv.Snapshot // last snapshot observed
	lastTime time.Time      // its PD time
	leader   pd.Member      // last known PD leader
	hb       map[uint64]time.Time
	until    time.Time
	reason   string
}

// NewLeaderGuard returns a guard holding for hold (0 =
// DefaultPDLeaderChangeHold).
func NewLeaderGuard(hold time.Duration) *LeaderGuard {
	if hold <= 0 {
		hold = DefaultPDLeaderChangeHold
	}
	return &LeaderGuard{Hold: hold, hb: map[uint64]time.Time{}}
}

// Observe records s at now (once per snapshot) and starts a hold when it
// shows a PD leader change against the previous snapshot.
func (g *LeaderGuard) Observe(s *tikv.Snapshot, now time.Time) {
	if s == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if s == g.last {
		return
	}
	g.last = s
	// Heartbeats are compared between successive reads of PD only (PD's
	// clock moved on); a snapshot of the same or an older time is not a
	// successor.
	successor := !s.Time.IsZero() && s.Time.After(g.lastTime)
	if !s.Time.IsZero() {
		g.lastTime = s.Time
	}
	var why []string
	if _, failed := s.Errors[tikv.SourceMembers]; !failed && s.Members.Leader != nil && s.Members.Leader.MemberID != 0 {
		cur := *s.Members.Leader
		if g.leader.MemberID != 0 && cur.MemberID != g.leader.MemberID {
			why = append(why, fmt.Sprintf("PD leader changed from member %s to %s (GET /members)", memberName(g.leader), memberName(cur)))
		}
		g.leader = cur
	}
	var back []uint64
	seen := make(map[uint64]bool, len(s.Stores))
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.Store.StateName == pd.StateTombstone {
			continue
		}
		id := st.Store.ID
		seen[id] = true
		hb := lastHeartbeat(st)
		if prev, ok := g.hb[id]; ok && successor && !hb.IsZero() && prev.Sub(hb) > time.Second {
			back = append(back, id)
		}
		if !hb.IsZero() {
			g.hb[id] = hb
		}
	}
	for id := range g.hb {
		if !seen[id] {
			delete(g.hb, id)
		}
	}
	if len(back) > 0 {
		slices.Sort(back)
		why = append(why, fmt.Sprintf("last_heartbeat went back on stores %v (GET /stores)", back))
	}
	if len(why) > 0 {
		g.until = now.Add(g.Hold)
		g.reason = fmt.Sprintf("%s at %s", strings.Join(why, "; "), now.UTC().Format(time.RFC3339))
	}
}

// guardState is LeaderGuard's persisted memory.
type guardState struct {
	Leader   pd.Member            `json:"leader"`
	LastTime time.Time            `json:"last_time,omitzero"`
	HB       map[uint64]time.Time `json:"heartbeats"`
	Until    time.Time            `json:"until,omitzero"`
	Reason   string               `json:"reason,omitempty"`
}

// StateName implements Stateful.
func (g *LeaderGuard) StateName() string { return "invariant/pd-leader-guard" }

// MarshalState implements Stateful.
func (g *LeaderGuard) MarshalState() (json.RawMessage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return json.Marshal(guardState{Leader: g.leader, LastTime: g.lastTime, HB: g.hb, Until: g.until, Reason: g.reason})
}

// UnmarshalState implements Stateful.
func (g *LeaderGuard) UnmarshalState(doc json.RawMessage) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var st guardState
	if err := json.Unmarshal(doc, &st); err != nil {
		g.leader, g.lastTime, g.hb, g.until, g.reason = pd.Member{}, time.Time{}, map[uint64]time.Time{}, time.Time{}, ""
		return fmt.Errorf("pd leader guard state: %w", err)
	}
	if st.HB == nil {
		st.HB = map[uint64]time.Time{}
	}
	g.leader, g.lastTime, g.hb, g.until, g.reason = st.Leader, st.LastTime, st.HB, st.Until, truncateText(st.Reason, 500)
	g.last = nil
	return nil
}

// Held returns the reason and end of the current hold, if now is within
// one.
func (g *LeaderGuard) Held(now time.Time) (reason string, until time.Time, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.until.IsZero() || !now.Before(g.until) {
		return "", time.Time{}, false
	}
	return g.reason, g.until, true
}

func memberName(m pd.Member) string {
	if m.Name != "" {
		return fmt.Sprintf("%s (%d)", m.Name, m.MemberID)
	}
	return fmt.Sprint(m.MemberID)
}

// Guard wraps inv so that its Eval first lets g observe the snapshot and,
// while g holds, returns a *HeldError instead of evaluating. The wrapper
// keeps inv's name, For and histories (StatesOf; it is a Stateful when inv
// is one).
func Guard(inv Invariant, g *LeaderGuard) Invariant {
	if s, ok := inv.(Stateful); ok {
		return guardedStateful{guarded{inv, g}, s}
	}
	return guarded{inv, g}
}

type guarded struct {
	Invariant
	g *LeaderGuard
}

// guardedStateful is a guarded Stateful invariant (store_leader_drop).
type guardedStateful struct {
	guarded
	Stateful
}

// Eval implements Invariant.
func (w guarded) Eval(ctx context.Context, s *tikv.Snapshot, now time.Time) ([]Violation, error) {
	w.g.Observe(s, now)
	if reason, until, ok := w.g.Held(now); ok {
		return nil, &HeldError{Invariant: w.Name(), Reason: reason, Until: until}
	}
	return w.Invariant.Eval(ctx, s, now)
}

// For returns the wrapped invariant's pending duration.
func (w guarded) For() time.Duration { return For(w.Invariant) }

// States returns the wrapped invariant's histories and the guard's own.
func (w guarded) States() []Stateful {
	out := []Stateful{w.g}
	if s, ok := w.Invariant.(Stateful); ok {
		out = append(out, s)
	}
	if h, ok := w.Invariant.(StateHolder); ok {
		out = append(out, h.States()...)
	}
	return out
}

// Unwrap returns the wrapped invariant.
func (w guarded) Unwrap() Invariant { return w.Invariant }
