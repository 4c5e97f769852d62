package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"sort"
	"strings"

	"github.com/tikvops/operator/internal/safetext"
	"github.com/tikvops/operator/internal/tikv"
)

// stateDiff is the cluster state an execution captured before and after
// (tikv.CaptureState), as rows a person reads: leaders and regions per
// store, the region's leader and peers, and the cluster-wide values the
// action may have changed.
type stateDiff struct {
	Before, After string // PD's clock
	HasAfter      bool
	Stores        []storeDiff
	Region        *regionDiff
	Values        []valueDiff
	Errors        []string
}

type storeDiff struct {
	ID                          uint64
	Address                     string
	StateBefore, StateAfter     string
	LeadersBefore, LeadersAfter int
	RegionsBefore, RegionsAfter int
	LeaderDelta, RegionDelta    string
	Changed                     bool
	LeaderBar                   template.HTML
}

type regionDiff struct {
	ID                        uint64
	LeaderBefore, LeaderAfter string
	PeersBefore, PeersAfter   string
	Changed                   bool
}

type valueDiff struct {
	Name, Before, After string
	Changed             bool
}

func delta(a, b int) string {
	switch {
	case b > a:
		return fmt.Sprintf("+%d", b-a)
	case b < a:
		return fmt.Sprintf("−%d", a-b)
	}
	return ""
}

// diffStates builds the diff of two CaptureState JSON documents; after may
// be empty (not executed yet). Nil when before is empty or unreadable.
func diffStates(beforeRaw, afterRaw json.RawMessage) *stateDiff {
	var before, after tikv.State
	if len(beforeRaw) == 0 || json.Unmarshal(beforeRaw, &before) != nil {
		return nil
	}
	d := &stateDiff{Before: before.Time.UTC().Format("15:04:05Z")}
	if len(afterRaw) > 0 && json.Unmarshal(afterRaw, &after) == nil {
		d.HasAfter = true
		d.After = after.Time.UTC().Format("15:04:05Z")
	} else {
		after = before
	}
	byID := map[uint64]tikv.StoreState{}
	for _, s := range after.Stores {
		byID[s.ID] = s
	}
	maxLeaders := 1
	for _, s := range append(append([]tikv.StoreState{}, before.Stores...), after.Stores...) {
		maxLeaders = max(maxLeaders, s.LeaderCount)
	}
	seen := map[uint64]bool{}
	for _, b := range before.Stores {
		a, ok := byID[b.ID]
		if !ok {
			a = tikv.StoreState{ID: b.ID, Address: b.Address, StateName: "(gone)"}
		}
		seen[b.ID] = true
		d.Stores = append(d.Stores, storeRow(b, a, maxLeaders))
	}
	for _, a := range after.Stores {
		if !seen[a.ID] {
			d.Stores = append(d.Stores, storeRow(tikv.StoreState{ID: a.ID, Address: a.Address, StateName: "(new)"}, a, maxLeaders))
		}
	}
	sort.Slice(d.Stores, func(i, j int) bool { return d.Stores[i].ID < d.Stores[j].ID })
	if before.Region != nil || after.Region != nil {
		rd := &regionDiff{LeaderBefore: leaderOf(before.Region), LeaderAfter: leaderOf(after.Region),
			PeersBefore: peersOf(before.Region), PeersAfter: peersOf(after.Region)}
		if before.Region != nil {
			rd.ID = before.Region.ID
		} else {
			rd.ID = after.Region.ID
		}
		rd.Changed = rd.LeaderBefore != rd.LeaderAfter || rd.PeersBefore != rd.PeersAfter
		d.Region = rd
	}
	add := func(name, b, a string) {
		d.Values = append(d.Values, valueDiff{Name: name, Before: b, After: a, Changed: b != a})
	}
	add("paused schedulers", pausedList(before.PausedSchedulers), pausedList(after.PausedSchedulers))
	add("schedulers", list(before.Schedulers), list(after.Schedulers))
	add("evict-leader stores", ids(before.EvictLeaderStores), ids(after.EvictLeaderStores))
	add("max-replicas", fmt.Sprint(before.MaxReplicas), fmt.Sprint(after.MaxReplicas))
	keys := map[string]bool{}
	for k := range before.Schedule {
		keys[k] = true
	}
	for k := range after.Schedule {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		add(k, valueOf(before.Schedule, k), valueOf(after.Schedule, k))
	}
	for _, st := range []tikv.State{before, after} {
		for k, v := range st.Errors {
			d.Errors = append(d.Errors, safetext.Line(k+": "+v, 500))
		}
	}
	return d
}

func storeRow(b, a tikv.StoreState, maxLeaders int) storeDiff {
	r := storeDiff{ID: b.ID, Address: safetext.Line(b.Address, 200), StateBefore: safetext.Line(b.StateName, 40), StateAfter: safetext.Line(a.StateName, 40),
		LeadersBefore: b.LeaderCount, LeadersAfter: a.LeaderCount, RegionsBefore: b.RegionCount, RegionsAfter: a.RegionCount,
		LeaderDelta: delta(b.LeaderCount, a.LeaderCount), RegionDelta: delta(b.RegionCount, a.RegionCount)}
	r.Changed = r.StateBefore != r.StateAfter || r.LeaderDelta != "" || r.RegionDelta != ""
	r.LeaderBar = pairBar(b.LeaderCount, a.LeaderCount, maxLeaders, fmt.Sprintf("store %d leaders: %d before, %d after", b.ID, b.LeaderCount, a.LeaderCount))
	return r
}

func leaderOf(r *tikv.RegionSummary) string {
	if r == nil {
		return "—"
	}
	return fmt.Sprintf("store %d", r.LeaderStoreID)
}

func peersOf(r *tikv.RegionSummary) string {
	if r == nil {
		return "—"
	}
	s := "voters on stores " + ids(r.VoterStores)
	if len(r.LearnerStores) > 0 {
		s += "; learners on " + ids(r.LearnerStores)
	}
	if len(r.DownPeers) > 0 {
		s += "; down: " + ids(r.DownPeers)
	}
	if len(r.PendingPeers) > 0 {
		s += "; pending: " + ids(r.PendingPeers)
	}
	return s
}

func ids(v []uint64) string {
	if len(v) == 0 {
		return "none"
	}
	parts := make([]string, len(v))
	for i, id := range v {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ", ")
}

func list(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	c := append([]string(nil), v...)
	sort.Strings(c)
	for i := range c {
		c[i] = safetext.Line(c[i], 100)
	}
	return strings.Join(c, ", ")
}

func pausedList(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	return list(names)
}

func valueOf(m map[string]any, k string) string {
	v, ok := m[k]
	if !ok {
		return "—"
	}
	return safetext.Line(fmt.Sprint(v), 100)
}

// pairBar draws before (grey) and after (blue) as two horizontal bars
// scaled to maxV, 160×22 px, with an accessible label.
func pairBar(before, after, maxV int, label string) template.HTML {
	w := func(v int) int { return max(1, v*150/max(1, maxV)) }
	return template.HTML(fmt.Sprintf(`<svg class="bar" width="160" height="22" viewBox="0 0 160 22" role="img" aria-label="%s"><rect x="0" y="1" width="%d" height="9" fill="#9aa5b1"/><rect x="0" y="12" width="%d" height="9" fill="#2563eb"/></svg>`,
		template.HTMLEscapeString(label), w(before), w(after)))
}

// countBars draws a store's leader (blue) and region (green) counts as two
// bars scaled to the cluster's largest count, 200×22 px.
func countBars(leaders, regions, maxV int, label string) template.HTML {
	w := func(v int) int {
		if v <= 0 {
			return 0
		}
		return max(1, v*190/max(1, maxV))
	}
	return template.HTML(fmt.Sprintf(`<svg class="bar" width="200" height="22" viewBox="0 0 200 22" role="img" aria-label="%s"><rect x="0" y="1" width="%d" height="9" fill="#2563eb"/><rect x="0" y="12" width="%d" height="9" fill="#16a34a"/></svg>`,
		template.HTMLEscapeString(label), w(leaders), w(regions)))
}
