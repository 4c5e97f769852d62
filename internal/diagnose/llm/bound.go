package llm

import (
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/safetext"
)

// Bounds of the model's first user message (issue 17): it holds what
// matters for the ticket, whatever the cluster's size.
const (
	// MaxInputTokens caps the first user message (task, action catalog
	// and cluster data), in tokens estimated as bytes / 4. The system
	// prompt and the tool schemas come on top; they do not depend on the
	// cluster.
	MaxInputTokens = 6000
	// MaxInputBytes is MaxInputTokens in bytes.
	MaxInputBytes = MaxInputTokens * 4
	// ContextNeighbours is how many stores besides the affected ones are
	// listed in full for comparison: the Up stores with the most and the
	// fewest leaders and regions.
	ContextNeighbours = 4
	// MaxContextRegions caps the regions listed in full (the ticket's
	// own first).
	MaxContextRegions = 20
	// MaxContextStores caps the stores listed in full (affected and
	// neighbours).
	MaxContextStores = 16
	// MaxContextOperators caps the PD operators (running or finished)
	// listed in full; only those on the affected regions or stores are.
	MaxContextOperators = 20
	// maxEvidenceItems caps a list, or a map keyed by id, in the ticket's
	// evidence as the model sees it.
	maxEvidenceItems = 20
	// maxKinds caps the per-kind rows of an aggregate.
	maxKinds = 12
	// maxNames caps the scheduler names and evict-leader store ids.
	maxNames = 40
	// maxPromptPrometheus bounds the Prometheus text in the data.
	maxPromptPrometheus = 4 << 10
	// lineBytes bounds one PD string (label, address, operator text).
	lineBytes = 256
)

// omitted is what the data leaves out and how to read it: the note, and
// per-kind aggregates of the stores and PD operators not listed in full.
type omitted struct {
	Note            string           `json:"note"`
	Stores          []storeAggregate `json:"stores,omitempty"`
	Regions         int              `json:"regions,omitempty"`
	Operators       []kindCount      `json:"operators,omitempty"`
	OperatorRecords []kindCount      `json:"operator_records,omitempty"`
}

// storeAggregate sums up the stores of one state_name not listed in full.
type storeAggregate struct {
	State string `json:"state_name"`
	Count int    `json:"count"`
	// IDs lists a few of them (the lowest).
	IDs          []uint64 `json:"sample_ids"`
	LeaderCount  minMean  `json:"leader_count"`
	RegionCount  minMean  `json:"region_count"`
	UsedRatio    minMean  `json:"used_ratio"`
	SlowScoreMax uint64   `json:"slow_score_max,omitempty"`
}

type minMean struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

type kindCount struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// boundedData builds the cluster data of c (already redacted) within
// budget bytes: the ticket, configuration and schedulers always; then,
// while they fit, the affected stores (the ticket's subject and the stores
// its evidence names first, then the stores of its regions), the ticket's
// regions, the PD operators on them, a few neighbour stores for
// comparison, more affected regions, and Prometheus series; aggregates of
// the rest and a note of what was left out. Every PD string is bounded
// and stripped of control characters.
func boundedData(c *diagnose.Context, budget int) promptData {
	t := c.Ticket
	evidence := compactEvidence(t.Evidence)
	d := promptData{
		Time: c.Time,
		Ticket: promptTicket{
			ID: t.ID, Invariant: line(t.Invariant), Subject: line(t.Subject), Severity: line(string(t.Severity)),
			Status: line(string(t.Status)), Summary: safetext.Line(t.Summary, 512), Evidence: evidence,
			FirstEvidence: compactEvidence(t.FirstEvidence), FirstSeen: t.FirstSeen, LastSeen: t.LastSeen,
			Occurrences: t.Occurrences,
		},
		Stores: []pd.StoreInfo{}, Regions: []pd.Region{}, Operators: []pd.Operator{},
		SourceErrors:      diagnose.CleanSourceErrors(capMap(c.SourceErrors, maxNames)),
		ScheduleConfig:    c.Schedule,
		ReplicationConfig: c.Replication,
		Schedulers:        names(c.Schedulers),
		PausedSchedulers:  names(c.PausedSchedulers),
		EvictLeaderStores: nonNil(c.EvictLeaderStores[:min(len(c.EvictLeaderStores), maxNames)]),
	}
	d.ReplicationConfig.LocationLabels = safetext.Line(d.ReplicationConfig.LocationLabels, lineBytes)
	d.ReplicationConfig.IsolationLevel = safetext.Line(d.ReplicationConfig.IsolationLevel, lineBytes)
	if string(d.Ticket.FirstEvidence) == string(d.Ticket.Evidence) {
		d.Ticket.FirstEvidence = nil // the same facts once
	}

	aff := affectedOf(c)
	byID := make(map[uint64]int, len(c.Stores))
	for i := range c.Stores {
		byID[c.Stores[i].Store.ID] = i
	}
	regionIdx := make(map[uint64]int, len(c.Regions))
	for i := range c.Regions {
		if _, dup := regionIdx[c.Regions[i].ID]; !dup {
			regionIdx[c.Regions[i].ID] = i
		}
	}

	// Reserve room for the aggregates and the note, measured on the
	// worst case (every store and operator left out).
	fixed := size(d) + aggregateReserve
	left := budget - fixed
	if left < 0 {
		// The ticket itself is too large: drop its first evidence, then
		// keep only its summary of the evidence.
		d.Ticket.FirstEvidence = nil
		if left = budget - size(d) - aggregateReserve; left < 0 {
			d.Ticket.Evidence = mustJSON(map[string]string{"truncated": safetext.Line(string(evidence), budget/4)})
			left = max(0, budget-size(d)-aggregateReserve)
		}
	}
	take := func(v any, must bool) bool {
		n := size(v) + 1
		if n > left && !must {
			return false
		}
		left -= n
		return true
	}
	listedStore := map[uint64]bool{}
	addStore := func(id uint64, must bool) bool {
		i, ok := byID[id]
		if !ok || listedStore[id] || len(d.Stores) >= MaxContextStores {
			return ok && listedStore[id]
		}
		s := cleanStore(c.Stores[i])
		if !take(s, must) {
			return false
		}
		listedStore[id] = true
		d.Stores = append(d.Stores, s)
		return true
	}
	listedRegion := map[uint64]bool{}
	addRegion := func(id uint64, must bool) bool {
		i, ok := regionIdx[id]
		if !ok || listedRegion[id] || len(d.Regions) >= MaxContextRegions {
			return ok && listedRegion[id]
		}
		if !take(c.Regions[i], must) {
			return false
		}
		listedRegion[id] = true
		d.Regions = append(d.Regions, c.Regions[i])
		return true
	}

	// 1. The ticket's own stores and regions: always.
	for _, id := range aff.stores {
		addStore(id, true)
	}
	for _, id := range aff.regions {
		addRegion(id, true)
	}
	affStores := map[uint64]bool{}
	for _, id := range aff.stores {
		affStores[id] = true
	}
	listedOp := make([]bool, len(c.Operators))
	addOps := func(limit int, match func(pd.Operator) bool) {
		for i, op := range c.Operators {
			if len(d.Operators) >= limit {
				return
			}
			if !listedOp[i] && match(op) && take(cleanOp(op), false) {
				listedOp[i] = true
				d.Operators = append(d.Operators, cleanOp(op))
			}
		}
	}
	onListedRegion := func(op pd.Operator) bool { return listedRegion[op.RegionID] }
	// 2. PD's operators on the ticket's regions.
	addOps(MaxContextOperators/2, onListedRegion)
	// 3. The stores holding those regions' peers, then two neighbours
	// for comparison.
	for _, r := range d.Regions {
		for _, p := range r.Peers {
			addStore(p.StoreID, false)
		}
	}
	nb := neighbours(c.Stores, listedStore)
	for _, id := range nb[:min(len(nb), 2)] {
		addStore(id, false)
	}
	// 4. PD's operators moving the affected stores' peers or leaders.
	addOps(MaxContextOperators*3/4, func(op pd.Operator) bool { return touchesStore(op.Brief, affStores) })
	// 5. The other neighbours, more affected regions (samples) and the
	// operators on them.
	for _, id := range nb {
		addStore(id, false)
	}
	for i := range c.Regions {
		if len(d.Regions) >= MaxContextRegions || !addRegion(c.Regions[i].ID, false) {
			break
		}
	}
	addOps(MaxContextOperators, onListedRegion)
	// 6. PD's finished operators on the affected regions and stores.
	listedRec := make([]bool, len(c.OperatorRecords))
	for i, rec := range c.OperatorRecords {
		if len(d.OperatorRecords) >= MaxContextOperators {
			break
		}
		onStore := false
		for _, s := range rec.TargetStoreIDs {
			onStore = onStore || affStores[s]
		}
		if (listedRegion[rec.RegionID] || onStore || touchesStore(rec.Text, affStores)) && take(cleanRecord(rec), false) {
			listedRec[i] = true
			d.OperatorRecords = append(d.OperatorRecords, cleanRecord(rec))
		}
	}
	// 7. Prometheus series, in what is left.
	if c.Prometheus != "" && left > 200 {
		p := safetext.Text(c.Prometheus, min(maxPromptPrometheus, left-100))
		if take(p, false) {
			d.Prometheus = p
		}
	}

	// What was left out.
	var om omitted
	om.Stores = aggregateStores(c.Stores, listedStore)
	om.Regions = len(regionIdx) - len(d.Regions)
	for i, op := range c.Operators {
		if !listedOp[i] {
			om.Operators = addKind(om.Operators, line(op.Desc))
		}
	}
	for i, rec := range c.OperatorRecords {
		if !listedRec[i] {
			om.OperatorRecords = addKind(om.OperatorRecords, line(rec.Desc)+" "+line(rec.Outcome))
		}
	}
	om.Operators = topKinds(om.Operators)
	om.OperatorRecords = topKinds(om.OperatorRecords)
	nStores, nOps, nRecs := 0, 0, 0
	for _, a := range om.Stores {
		nStores += a.Count
	}
	for _, k := range om.Operators {
		nOps += k.Count
	}
	for _, k := range om.OperatorRecords {
		nRecs += k.Count
	}
	if nStores+om.Regions+nOps+nRecs > 0 {
		var parts []string
		if nStores > 0 {
			parts = append(parts, fmt.Sprintf("%d of %d stores (counted per state_name in omitted.stores with min/mean/max; the get_store tool returns one store)", nStores, len(c.Stores)))
		}
		if om.Regions > 0 {
			parts = append(parts, fmt.Sprintf("%d of %d regions at hand (the ticket's evidence holds the counts; the get_region tool returns one region by id)", om.Regions, len(regionIdx)))
		}
		if nOps > 0 {
			parts = append(parts, fmt.Sprintf("%d of %d PD operators, those not on the affected regions or stores (counted per kind in omitted.operators; the list_operators tool lists them all)", nOps, len(c.Operators)))
		}
		if nRecs > 0 {
			parts = append(parts, fmt.Sprintf("%d of %d finished PD operators (counted per kind and outcome in omitted.operator_records)", nRecs, len(c.OperatorRecords)))
		}
		om.Note = fmt.Sprintf("This data is bounded to %d tokens and lists what matters for the ticket: its stores and regions, the PD operators on them, and a few neighbour stores for comparison. Left out: %s. Use the read-only tools when they are offered and you need one of them.", MaxInputTokens, strings.Join(parts, "; "))
		if size(om) > aggregateReserve {
			om.OperatorRecords = om.OperatorRecords[:min(len(om.OperatorRecords), 3)]
			om.Operators = om.Operators[:min(len(om.Operators), 3)]
		}
		d.Omitted = &om
	}
	return d
}

// aggregateReserve is the room kept for the omitted section: a note of
// ~800 bytes, two store states and a few operator kinds; more is
// handled by UserPrompt's final fit.
const aggregateReserve = 2000

var reStoreInText = regexp.MustCompile(`store[s]? \[?(\d+)`)

// touchesStore reports whether a PD operator's text names one of stores
// ("... store [4] to [5]", "to store 4", "on store 4").
func touchesStore(text string, stores map[uint64]bool) bool {
	if len(stores) == 0 {
		return false
	}
	for _, m := range reStoreInText.FindAllStringSubmatch(text, 8) {
		if id, err := strconv.ParseUint(m[1], 10, 64); err == nil && stores[id] {
			return true
		}
	}
	for _, m := range reToStore.FindAllStringSubmatch(text, 8) {
		if id, err := strconv.ParseUint(m[1], 10, 64); err == nil && stores[id] {
			return true
		}
	}
	return false
}

var reToStore = regexp.MustCompile(`to \[(\d+)\]`)

// affected is what a ticket is about: its stores and regions, most
// important first.
type affected struct {
	stores, regions []uint64
}

// affectedOf reads the ticket's subject ("store:N", "region:N") and
// evidence (keys "store_id", "*_store_id", "*store_ids", maps "*_by_store"
// keyed by store id, "region_id", "*region_ids"), each list bounded.
func affectedOf(c *diagnose.Context) affected {
	var a affected
	seenS, seenR := map[uint64]bool{}, map[uint64]bool{}
	addS := func(id uint64) {
		if id != 0 && !seenS[id] && len(a.stores) < MaxContextStores/2 {
			seenS[id] = true
			a.stores = append(a.stores, id)
		}
	}
	addR := func(id uint64) {
		if id != 0 && !seenR[id] && len(a.regions) < MaxContextRegions/2 {
			seenR[id] = true
			a.regions = append(a.regions, id)
		}
	}
	if kind, rest, ok := strings.Cut(c.Ticket.Subject, ":"); ok {
		if id, err := strconv.ParseUint(rest, 10, 64); err == nil {
			switch kind {
			case "store":
				addS(id)
			case "region":
				addR(id)
			}
		}
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(c.Ticket.Evidence, &ev) == nil {
		keys := make([]string, 0, len(ev))
		for k := range ev {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch {
			case k == "store_id" || strings.HasSuffix(k, "_store_id"):
				var id uint64
				if json.Unmarshal(ev[k], &id) == nil {
					addS(id)
				}
			case k == "region_id":
				var id uint64
				if json.Unmarshal(ev[k], &id) == nil {
					addR(id)
				}
			case strings.HasSuffix(k, "region_ids"):
				var ids []uint64
				if json.Unmarshal(ev[k], &ids) == nil {
					for _, id := range ids {
						addR(id)
					}
				}
			}
		}
		// Lists and breakdowns of stores come after the named ones: the
		// most affected first.
		for _, k := range keys {
			switch {
			case strings.HasSuffix(k, "store_ids") && !strings.HasPrefix(k, "up_"):
				var ids []uint64
				if json.Unmarshal(ev[k], &ids) == nil {
					for _, id := range ids {
						addS(id)
					}
				}
			case strings.HasSuffix(k, "_by_store"):
				var m map[string]float64
				if json.Unmarshal(ev[k], &m) == nil {
					for _, kv := range byValue(m) {
						if id, err := strconv.ParseUint(kv, 10, 64); err == nil {
							addS(id)
						}
					}
				}
			}
		}
	}
	return a
}

// byValue returns m's keys, largest value first (ties by key).
func byValue(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// neighbours returns up to ContextNeighbours Up stores not yet listed: the
// ones with the most and the fewest leaders, then regions.
func neighbours(stores []pd.StoreInfo, listed map[uint64]bool) []uint64 {
	var up []*pd.StoreInfo
	for i := range stores {
		if s := &stores[i]; s.Store.StateName == pd.StateUp && !listed[s.Store.ID] {
			up = append(up, s)
		}
	}
	if len(up) == 0 {
		return nil
	}
	pick := func(f func(*pd.StoreInfo) int, most bool) uint64 {
		best := up[0]
		for _, s := range up[1:] {
			if v, b := f(s), f(best); (most && v > b) || (!most && v < b) {
				best = s
			}
		}
		return best.Store.ID
	}
	leaders := func(s *pd.StoreInfo) int { return s.Status.LeaderCount }
	regions := func(s *pd.StoreInfo) int { return s.Status.RegionCount }
	var out []uint64
	for _, id := range []uint64{pick(leaders, true), pick(leaders, false), pick(regions, true), pick(regions, false)} {
		if !slices.Contains(out, id) && len(out) < ContextNeighbours {
			out = append(out, id)
		}
	}
	return out
}

// aggregateStores counts the stores not listed, per state_name, with
// min/mean/max of their leader and region counts and used space ratio.
func aggregateStores(stores []pd.StoreInfo, listed map[uint64]bool) []storeAggregate {
	by := map[string]*storeAggregate{}
	var order []string
	for i := range stores {
		s := &stores[i]
		if listed[s.Store.ID] {
			continue
		}
		state := line(s.Store.StateName)
		a := by[state]
		if a == nil {
			if len(order) >= maxKinds {
				state = "other"
				if a = by[state]; a == nil {
					a = &storeAggregate{State: state}
					by[state] = a
					order = append(order, state)
				}
			} else {
				a = &storeAggregate{State: state}
				by[state] = a
				order = append(order, state)
			}
		}
		used := 0.0
		if s.Status.Capacity > 0 {
			used = 1 - float64(s.Status.Available)/float64(s.Status.Capacity)
		}
		a.Count++
		if len(a.IDs) < 5 {
			a.IDs = append(a.IDs, s.Store.ID)
		}
		accumulate(&a.LeaderCount, float64(s.Status.LeaderCount), a.Count)
		accumulate(&a.RegionCount, float64(s.Status.RegionCount), a.Count)
		accumulate(&a.UsedRatio, used, a.Count)
		a.SlowScoreMax = max(a.SlowScoreMax, s.Status.SlowScore)
	}
	out := make([]storeAggregate, 0, len(order))
	for _, k := range order {
		a := by[k]
		a.UsedRatio = minMean{Min: round3(a.UsedRatio.Min), Mean: round3(a.UsedRatio.Mean), Max: round3(a.UsedRatio.Max)}
		a.LeaderCount.Mean = round3(a.LeaderCount.Mean)
		a.RegionCount.Mean = round3(a.RegionCount.Mean)
		out = append(out, *a)
	}
	return out
}

// accumulate folds v, the n-th value, into m (running mean).
func accumulate(m *minMean, v float64, n int) {
	if n == 1 {
		*m = minMean{Min: v, Mean: v, Max: v}
		return
	}
	m.Min, m.Max = min(m.Min, v), max(m.Max, v)
	m.Mean += (v - m.Mean) / float64(n)
}

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

func addKind(ks []kindCount, kind string) []kindCount {
	for i := range ks {
		if ks[i].Kind == kind {
			ks[i].Count++
			return ks
		}
	}
	return append(ks, kindCount{Kind: kind, Count: 1})
}

// topKinds keeps the maxKinds most frequent kinds, the rest summed in
// "other".
func topKinds(ks []kindCount) []kindCount {
	slices.SortStableFunc(ks, func(a, b kindCount) int { return cmp.Compare(b.Count, a.Count) })
	if len(ks) <= maxKinds {
		return ks
	}
	other := kindCount{Kind: "other"}
	for _, k := range ks[maxKinds-1:] {
		other.Count += k.Count
	}
	return append(ks[:maxKinds-1:maxKinds-1], other)
}

// cleanStore bounds and cleans every string PD sent about a store.
func cleanStore(s pd.StoreInfo) pd.StoreInfo {
	m := &s.Store
	m.Address, m.PeerAddress, m.StatusAddress = line(m.Address), line(m.PeerAddress), line(m.StatusAddress)
	m.Version, m.GitHash, m.DeployPath, m.StateName = line(m.Version), line(m.GitHash), line(m.DeployPath), line(m.StateName)
	if len(m.Labels) > maxEvidenceItems {
		m.Labels = m.Labels[:maxEvidenceItems]
	}
	labels := make([]pd.Label, len(m.Labels))
	for i, l := range m.Labels {
		labels[i] = pd.Label{Key: line(l.Key), Value: line(l.Value)}
	}
	m.Labels = labels
	return s
}

func cleanOp(op pd.Operator) pd.Operator {
	op.Desc, op.Brief, op.Timeout = line(op.Desc), line(op.Brief), line(op.Timeout)
	return op
}

func cleanRecord(r pd.OperatorRecord) pd.OperatorRecord {
	r.Desc, r.Brief, r.Outcome, r.Text = line(r.Desc), line(r.Brief), line(r.Outcome), safetext.Line(r.Text, 512)
	if len(r.TargetStoreIDs) > 8 {
		r.TargetStoreIDs = r.TargetStoreIDs[:8]
	}
	return r
}

func line(s string) string { return safetext.Line(s, lineBytes) }

// names returns at most maxNames cleaned names, never nil.
func names(s []string) []string {
	out := make([]string, 0, min(len(s), maxNames))
	for _, n := range s[:min(len(s), maxNames)] {
		out = append(out, safetext.Line(n, 128))
	}
	return out
}

func capMap(m map[string]string, n int) map[string]string {
	if len(m) <= n {
		return m
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, n)
	for _, k := range keys[:n] {
		out[k] = m[k]
	}
	return out
}

// compactEvidence returns evidence with every list cut to
// maxEvidenceItems (a sibling "<key>_omitted" says how many were cut),
// every object with more keys than that cut to the largest values
// ("_omitted_keys"), and every string cleaned and bounded. Invalid JSON is
// nil.
func compactEvidence(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || !json.Valid(raw) {
		return nil
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil
	}
	return mustJSON(compactValue(v))
}

func compactValue(v any) any {
	switch x := v.(type) {
	case string:
		return safetext.Line(x, lineBytes)
	case []any:
		n := min(len(x), maxEvidenceItems)
		out := make([]any, n)
		for i := range out {
			out[i] = compactValue(x[i])
		}
		return out
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		if len(keys) > maxEvidenceItems {
			vals := map[string]float64{}
			for _, k := range keys {
				if n, ok := x[k].(json.Number); ok {
					vals[k], _ = n.Float64()
				}
			}
			keys = byValue(vals)
			if len(keys) < maxEvidenceItems { // non-numeric values: by key
				keys = keys[:0]
				for k := range x {
					keys = append(keys, k)
				}
				sort.Strings(keys)
			}
			out := make(map[string]any, maxEvidenceItems+1)
			for _, k := range keys[:maxEvidenceItems] {
				out[safetext.Line(k, 128)] = compactValue(x[k])
			}
			out["_omitted_keys"] = len(x) - maxEvidenceItems
			return out
		}
		out := make(map[string]any, len(x))
		for _, k := range keys {
			out[safetext.Line(k, 128)] = compactValue(x[k])
			if l, ok := x[k].([]any); ok && len(l) > maxEvidenceItems {
				out[safetext.Line(k, 128)+"_omitted"] = len(l) - maxEvidenceItems
			}
		}
		return out
	default:
		return v
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// size is v's compact JSON size in bytes (0 when it cannot be encoded).
func size(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}
