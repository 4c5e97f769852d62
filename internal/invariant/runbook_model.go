package invariant

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/peers"
)

// Facts the runbooks judge stores and PD operators by.
const (
	// recentRestart: a store that started less than this ago is still
	// receiving leaders and catching up (pingcap/tidb-operator#4483, pingcap/tiup#369 uses 10 min).
	recentRestart = 10 * time.Minute
	// heartbeatFresh: a store heartbeats every 10 s (TiKV
	// pd-heartbeat-tick-interval); PD calls it Disconnected after 20 s.
	// A store whose last heartbeat is older than this is not "heartbeating".
	heartbeatFresh = 30 * time.Second
	// maxKeyChars bounds a region key rendered in a page (hex, user data
	// stays local: rules diagnoses never go to a model).
	maxKeyChars = 48
)

// model returns the peer model of r over the context's stores.
func (f *facts) model(r *pd.Region) peers.Region {
	stores := f.c.Stores
	if len(stores) == 0 && f.c.Snapshot != nil {
		stores = f.c.Snapshot.Stores
	}
	return peers.New(r, stores)
}

// leaderCapable reports whether r has a plain voter on store that is
// healthy and not a witness: the only peer a leader can move to now
// (learners, witnesses and joint-consensus voters cannot take it).
func (f *facts) leaderCapable(r *pd.Region, store uint64) (peers.Peer, bool) {
	p, ok := f.model(r).On(store)
	if !ok || p.Role != peers.Voter || p.Witness || !p.Healthy() {
		return peers.Peer{}, false
	}
	return p, true
}

// heartbeating reports whether store s sent a heartbeat within
// heartbeatFresh of the context's time; when the age is unknown it
// reports false with the missing input named (fail closed).
func (f *facts) heartbeating(s *pd.StoreInfo) (bool, string) {
	age, ok := f.heartbeatAge(s)
	if !ok {
		return false, fmt.Sprintf("store %d's last heartbeat is unknown (no last_heartbeat in GET /pd/api/v1/stores, or no PD clock)", s.Store.ID)
	}
	if age > heartbeatFresh {
		return false, fmt.Sprintf("store %d's last heartbeat is %s old (> %s)", s.Store.ID, roundDur(age), heartbeatFresh)
	}
	return true, fmt.Sprintf("store %d heartbeated %s ago", s.Store.ID, roundDur(max(age, 0)))
}

// restartedRecently reports whether store s restarted less than
// recentRestart ago (status.uptime, else start_ts against the context
// time) while the cluster itself is older: some other Up TiKV store has
// been up for recentRestart. In a freshly started cluster no store counts
// as restarted.
func (f *facts) restartedRecently(s *pd.StoreInfo) (time.Duration, bool) {
	up := f.uptime(s)
	if up <= 0 || up >= recentRestart {
		return up, false
	}
	for _, id := range f.upTiKV() {
		if id != s.Store.ID && f.uptime(f.stores[id]) >= recentRestart {
			return up, true
		}
	}
	return up, false
}

func (f *facts) uptime(s *pd.StoreInfo) time.Duration {
	up := time.Duration(s.Status.Uptime)
	if up <= 0 && !s.Status.StartTS.IsZero() && !f.c.Time.IsZero() {
		up = f.c.Time.Sub(s.Status.StartTS)
	}
	return up
}

// unfit returns why store id must not receive a leader or a replica now,
// "" when it may: not Up, TiFlash, busy, recently restarted, under an
// evict-leader scheduler (leaders only), low on space, slow, or the
// target of no fresh heartbeat. It also refuses a store a running PD
// operator is moving load off (see opFlows).
func (f *facts) unfit(id uint64, leader bool) string {
	s, ok := f.stores[id]
	switch {
	case !ok:
		return fmt.Sprintf("store %d is not listed by PD", id)
	case s.Store.StateName != pd.StateUp:
		return fmt.Sprintf("store %d is %s", id, s.Store.StateName)
	case s.IsTiFlash():
		return fmt.Sprintf("store %d is a TiFlash store", id)
	case s.Status.IsBusy:
		return fmt.Sprintf("store %d reports is_busy", id)
	case leader && f.evicted[id]:
		return fmt.Sprintf("store %d is under an evict-leader scheduler", id)
	case f.lowSpace(s):
		return fmt.Sprintf("store %d is low on space (%s of %s available)", id, s.Status.Available, s.Status.Capacity)
	case f.isSlow(s):
		return fmt.Sprintf("store %d is slow (slow_score %d)", id, s.Status.SlowScore)
	}
	if up, recent := f.restartedRecently(s); recent {
		return fmt.Sprintf("store %d restarted %s ago", id, roundDur(up))
	}
	if _, known := f.heartbeatAge(s); known {
		if ok, why := f.heartbeating(s); !ok {
			return why
		}
	}
	for _, fl := range f.opFlows() {
		if fl.from == id {
			return fmt.Sprintf("PD's running operator on region %d moves load off store %d (%s)", fl.region, id, fl.name)
		}
	}
	return ""
}

// flow is the direction of one running PD operator: it moves a leader or
// a peer of region from store from to store to.
type flow struct {
	region   uint64
	from, to uint64
	name     string
}

// opMove matches PD's operator descriptions and briefs: "transfer
// leader: store 1 to 2", "{mv peer: store [1061] to [1064]}" (PD v8.1
// pkg/schedule/operator/step.go String methods).
var opMove = regexp.MustCompile(`store \[?(\d+)\]? to \[?(\d+)\]?`)

// opFlows returns the directions of PD's running operators
// (GET /pd/api/v1/operators), in the order PD lists them.
func (f *facts) opFlows() []flow {
	var out []flow
	for _, op := range f.c.Operators {
		if op.Status != opCreated && op.Status != opStarted {
			continue
		}
		// PD >= 7 renders the name in desc and the steps in brief ("transfer
		// leader: store 3 to 2"); older PDs put everything in desc.
		m := opMove.FindStringSubmatch(op.Desc + " " + op.Brief)
		if m == nil {
			continue
		}
		from, _ := strconv.ParseUint(m[1], 10, 64)
		to, _ := strconv.ParseUint(m[2], 10, 64)
		out = append(out, flow{region: op.RegionID, from: from, to: to, name: firstWord(op.Desc)})
	}
	return out
}

// againstPD returns the running PD operator a move of load from store
// from to store to would contradict (PD moves load the other way: onto
// from, or off to), "" when none.
func (f *facts) againstPD(from, to uint64) string {
	for _, fl := range f.opFlows() {
		if fl.to == from || fl.from == to {
			return fmt.Sprintf("PD's running operator %s on region %d moves load from store %d to store %d", fl.name, fl.region, fl.from, fl.to)
		}
	}
	return ""
}

// repairing returns evidence that PD is repairing region r: a running
// operator on it, and whether the region's configuration has changed
// since the operator was created (its conf_ver moved: a step completed).
// ok is false when PD runs no operator on r.
func (f *facts) repairing(r *pd.Region) (text string, ok bool) {
	op, ok := f.runningOperator(r.ID)
	if !ok {
		return "", false
	}
	progress := "no step completed yet"
	if op.Epoch.ConfVer > 0 && r.Epoch.ConfVer > op.Epoch.ConfVer {
		progress = fmt.Sprintf("conf_ver %d -> %d since it was created: it progresses", op.Epoch.ConfVer, r.Epoch.ConfVer)
	}
	return fmt.Sprintf("PD runs operator %q on region %d (%s)", clipText(strings.TrimSpace(op.Desc+" "+op.Brief), 160), r.ID, progress), true
}

// keyRange renders a region's key range for a page (hex as PD shows it,
// each key bounded).
func keyRange(r *pd.Region) string {
	k := func(s string) string {
		if s == "" {
			return "(unbounded)"
		}
		return clipText(s, maxKeyChars)
	}
	return fmt.Sprintf("[%s, %s)", k(r.StartKey), k(r.EndKey))
}

// clipText bounds s to n bytes and strips control characters: PD strings
// (operator descriptions, addresses) are untrusted.
func clipText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// leaderless returns the given regions that have no leader.
func leaderless(rs []*pd.Region) []*pd.Region {
	var out []*pd.Region
	for _, r := range rs {
		if !r.HasLeader() {
			out = append(out, r)
		}
	}
	return out
}

// leaderlessPage is the NoActionReason for leaderless regions: never an
// operator (PD cannot run one on a region without a leader); a human gets
// the ids, key ranges and sizes.
func leaderlessPage(rs []*pd.Region) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("region %d %s %d MiB", r.ID, keyRange(r), r.ApproximateSize))
	}
	return page("regions without a leader cannot run any PD operator: %s; find which of their voters' stores are down (pd-ctl region <id>) and bring them back; unsafe recovery (pd-ctl unsafe remove-failed-stores) only with PingCAP's guidance", strings.Join(parts, "; "))
}

func slicesSortStrings(s []string) { sort.Strings(s) }
