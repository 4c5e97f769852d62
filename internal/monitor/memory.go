package monitor

// The monitor's memory (issue 11 §1) and incident linking (§3): active
// alerts and invariant histories persisted after every cycle and restored
// before the first one; open tickets read from the store each cycle;
// escalations that keep the incident open; symptom tickets linked to the
// ticket of the store that causes them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/store"
	"github.com/tikvops/operator/internal/ticket"
)

// restore loads the persisted alerts and histories once, before the first
// cycle. A failure is logged and the monitor starts without memory (it
// retries at the next cycle).
func (m *Monitor) restore(ctx context.Context) {
	if m.loaded || m.opts.State == nil {
		m.loaded = true
		return
	}
	st, err := m.opts.State.LoadMonitorState(ctx)
	if err != nil {
		m.log.Warn("monitor state not restored; retrying next cycle", "err", err)
		return
	}
	m.loaded = true
	known := map[string]bool{invariant.NamePDUnreachable: true}
	for _, inv := range m.opts.Invariants {
		known[inv.Name()] = true
	}
	for _, a := range st.Alerts {
		if !known[a.Invariant] {
			continue // invariant disabled since
		}
		m.active[a.Key] = &alert{invariant: a.Invariant, activeAt: a.ActiveAt, firing: a.Firing,
			obs: ticket.Observation{Invariant: a.Invariant, Subject: strings.TrimPrefix(a.Key, a.Invariant+"/")}}
	}
	for _, s := range m.states {
		doc, ok := st.Histories[s.StateName()]
		if !ok {
			continue
		}
		if err := s.UnmarshalState(doc); err != nil {
			m.log.Warn("invariant history not restored", "state", s.StateName(), "err", err)
		}
	}
	m.log.Info("monitor state restored", "alerts", len(st.Alerts), "histories", len(st.Histories))
}

// persist saves the active alerts and the histories, skipping what did not
// change since the last save: the alerts are written only when they differ
// from the saved ones, and a history that implements invariant.Digester
// (History's region tracks, up to 10,000 regions) is marshalled only when
// its digest moved. An unchanged cycle writes nothing (issue 17: saving
// unchanged region tracks was ~80 % of a stopped-store cycle's
// allocations).
func (m *Monitor) persist(ctx context.Context, now time.Time) error {
	if m.opts.State == nil || !m.loaded {
		return nil
	}
	st := store.MonitorState{Histories: map[string]json.RawMessage{}}
	for _, k := range m.sortedKeys() {
		a := m.active[k]
		st.Alerts = append(st.Alerts, store.MonitorAlert{Key: k, Invariant: a.invariant, ActiveAt: a.activeAt, Firing: a.firing})
	}
	digests := map[string]uint64{}
	for _, s := range m.states {
		if d, ok := s.(invariant.Digester); ok {
			dg := d.StateDigest()
			digests[s.StateName()] = dg
			if old, saved := m.saved.digests[s.StateName()]; saved && old == dg {
				continue
			}
		}
		doc, err := s.MarshalState()
		if err != nil {
			return fmt.Errorf("save %s: %w", s.StateName(), err)
		}
		if old, saved := m.saved.docs[s.StateName()]; saved && old == docHash(doc) {
			continue
		}
		st.Histories[s.StateName()] = doc
	}
	if len(st.Histories) == 0 && m.saved.alerts != nil && slices.Equal(st.Alerts, m.saved.alerts) {
		return nil
	}
	if err := m.opts.State.SaveMonitorState(ctx, st, now); err != nil {
		return fmt.Errorf("save monitor state: %w", err)
	}
	if m.saved.docs == nil {
		m.saved.docs, m.saved.digests = map[string]uint64{}, map[string]uint64{}
	}
	m.saved.alerts = st.Alerts
	if m.saved.alerts == nil {
		m.saved.alerts = []store.MonitorAlert{}
	}
	for name, doc := range st.Histories {
		m.saved.docs[name] = docHash(doc)
	}
	for name, dg := range digests {
		m.saved.digests[name] = dg
	}
	return nil
}

// savedState is what persist last wrote (to skip unchanged writes).
type savedState struct {
	alerts  []store.MonitorAlert // nil before the first save
	docs    map[string]uint64    // history name -> docHash of the saved document
	digests map[string]uint64    // Digester histories: digest when saved
}

// docHash is FNV-1a over a saved document.
func docHash(doc []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range doc {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// refreshTicketed replaces the open-ticket set with the store's. A key
// whose ticket was resolved elsewhere (by the executor) while its alert
// still fires goes back to pending at now: the next violation waits its
// `for` again.
func (m *Monitor) refreshTicketed(ctx context.Context, now time.Time) {
	if m.opts.State == nil {
		return
	}
	open, err := m.opts.State.OpenTicketKeys(ctx)
	if err != nil {
		m.log.Warn("reading open tickets failed; keeping the last known set", "err", err)
		return
	}
	for k := range m.ticketed {
		if _, still := open[k]; still {
			continue
		}
		if a, ok := m.active[k]; ok && a.firing {
			a.firing, a.activeAt = false, now
		}
	}
	m.ticketed = open
}

// escalationRoots returns, for every earlier-stage key with an open
// ticket whose later stage is active on the same subject, the later
// stage's key (the first one found).
func (m *Monitor) escalationRoots() map[string]string {
	out := map[string]string{}
	for _, fam := range invariant.Escalations {
		for i := 1; i < len(fam); i++ {
			for k, a := range m.active {
				if a.invariant != fam[i] {
					continue
				}
				subject := strings.TrimPrefix(k, fam[i]+"/")
				for j := 0; j < i; j++ {
					ek := fam[j] + "/" + subject
					if _, open := m.ticketed[ek]; open {
						if _, done := out[ek]; !done {
							out[ek] = k
						}
					}
				}
			}
		}
	}
	return out
}

// incidents links this cycle's tickets into incidents and escalates, when
// the Sink supports it: a later escalation stage is linked to the open
// ticket of the earliest stage on its subject, which gets the higher
// severity (and a new diagnosis when it had one); a symptom ticket
// (invariant.SymptomInvariants) is linked to the open ticket of the store
// its evidence points at; when region_down_peer_unrepaired opens, the
// diagnosed region_down_peer ticket and its root are re-diagnosed (PD is
// not repairing).
func (m *Monitor) incidents(ctx context.Context, tickets, opened []ticket.Ticket, now time.Time) error {
	is, ok := m.opts.Sink.(IncidentSink)
	if !ok {
		return nil
	}
	var errs []error
	byKey := map[string]ticket.Ticket{}
	for _, t := range tickets {
		byKey[t.Key] = t
	}
	// Escalations.
	for _, fam := range invariant.Escalations {
		for i := 1; i < len(fam); i++ {
			for _, t := range tickets {
				if t.Invariant != fam[i] {
					continue
				}
				for j := 0; j < i; j++ {
					rootID, open := m.ticketed[fam[j]+"/"+t.Subject]
					if !open || rootID == t.ID {
						continue
					}
					if t.RootID == nil {
						if err := is.LinkTicket(ctx, t.ID, rootID, now); err != nil {
							errs = append(errs, err)
						}
					}
					raised, err := is.EscalateTicket(ctx, rootID, t.Severity, t.Summary, now)
					if err != nil {
						errs = append(errs, err)
					} else if raised {
						m.log.Info("incident escalated", "ticket", rootID, "by", t.Key, "severity", t.Severity)
					}
					break
				}
			}
		}
	}
	// Symptoms -> the failing store's ticket.
	storeTickets := map[uint64]int64{}
	for _, name := range slices.Backward(invariant.StoreRootInvariants) {
		for k, id := range m.ticketed {
			if rest, ok := strings.CutPrefix(k, name+"/store:"); ok {
				if sid, err := strconv.ParseUint(rest, 10, 64); err == nil {
					if cur, seen := storeTickets[sid]; !seen || id < cur {
						storeTickets[sid] = id
					}
				}
			}
		}
	}
	for _, t := range tickets {
		if t.RootID != nil || !slices.Contains(invariant.SymptomInvariants, t.Invariant) || len(storeTickets) == 0 {
			continue
		}
		rootID := symptomRoot(t, storeTickets)
		if rootID == 0 || rootID == t.ID {
			continue
		}
		if err := is.LinkTicket(ctx, t.ID, rootID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	// PD stopped repairing: what was diagnosed as "PD will repair" is
	// diagnosed again.
	for _, t := range opened {
		if t.Invariant != invariant.NameRegionDownPeerUnrepaired {
			continue
		}
		ids := []int64{}
		if id, ok := m.ticketed[invariant.NameRegionDownPeer+"/"+invariant.SubjectCluster]; ok {
			ids = append(ids, id)
			if dp, err := is.Ticket(ctx, id); err == nil && dp.RootID != nil {
				ids = append(ids, *dp.RootID)
			}
		}
		for _, id := range ids {
			err := is.RequestRediagnosis(ctx, id, "PD is not repairing the down peers: "+t.Summary, now)
			var te *ticket.ErrTransition
			if err != nil && !errors.As(err, &te) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("incidents: %w", errors.Join(errs...))
	}
	return nil
}

// symptomRoot picks the store ticket a symptom ticket belongs to: the one
// of the evidence's top_store_id, else the single store named in
// unrepaired_peers_by_store or peers_by_store, else the only failing
// store's. 0 when none fits.
func symptomRoot(t ticket.Ticket, storeTickets map[uint64]int64) int64 {
	var ev struct {
		Top        uint64         `json:"top_store_id"`
		Unrepaired map[string]int `json:"unrepaired_peers_by_store"`
		ByStore    map[string]int `json:"peers_by_store"`
	}
	_ = json.Unmarshal(t.Evidence, &ev)
	if id, ok := storeTickets[ev.Top]; ok && ev.Top != 0 {
		return id
	}
	for _, m := range []map[string]int{ev.Unrepaired, ev.ByStore} {
		var best uint64
		for k, n := range m {
			sid, err := strconv.ParseUint(k, 10, 64)
			if err != nil {
				continue
			}
			if _, ok := storeTickets[sid]; ok && (best == 0 || n > m[strconv.FormatUint(best, 10)]) {
				best = sid
			}
		}
		if best != 0 {
			return storeTickets[best]
		}
	}
	if len(storeTickets) == 1 {
		for _, id := range storeTickets {
			return id
		}
	}
	return 0
}
