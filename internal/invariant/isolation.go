package invariant

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// NameReplicationIsolationRisk is the name of ReplicationIsolationRisk.
const NameReplicationIsolationRisk = "replication_isolation_risk"

// ReplicationIsolationRisk (replication_isolation_risk, issue 11) compares
// the TiKV stores' labels with the replication config's location-labels
// and isolation-level (GET /pd/api/v1/config/replicate; isolation-level is
// PD >= 4.0) and is violated before a failure when one failure domain can
// hold a Raft quorum of a region's replicas: at the first location label
// (the widest domain, e.g. zone) with D distinct values among the stores
// that hold replicas (not Tombstone, not Offline, not TiFlash), PD spreads
// max-replicas R over D domains, so one domain holds ceil(R/D) replicas;
// when that is at least the quorum R/2+1, losing that domain loses the
// quorum of those regions. Also violated when isolation-level names a
// label with fewer than R values (PD cannot satisfy it). Stores lacking a
// location label are listed in the evidence. Warning; subject "cluster".
// Placement rules, when enabled, may place replicas otherwise: the
// evidence says so (rules are not read).
type ReplicationIsolationRisk struct{ base }

// Eval implements Invariant.
func (inv *ReplicationIsolationRisk) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, sourceStores, tikv.SourceReplication); err != nil {
		return nil, err
	}
	r := int(s.Replication.MaxReplicas)
	var labels []string
	for _, l := range strings.Split(s.Replication.LocationLabels, ",") {
		if l = strings.TrimSpace(l); l != "" {
			labels = append(labels, l)
		}
	}
	if r < 2 || len(labels) == 0 {
		return nil, nil // nothing declared to isolate; max-replicas 1 has no quorum to lose
	}
	quorum := r/2 + 1
	domains := map[string]map[string][]uint64{} // label -> value -> store ids
	var unlabeled []uint64
	stores := 0
	for i := range s.Stores {
		st := &s.Stores[i]
		if st.IsTiFlash() || st.Store.StateName == pd.StateTombstone || st.Store.StateName == pd.StateOffline {
			continue
		}
		stores++
		missing := false
		for _, l := range labels {
			v := cleanText(st.Label(l), 100)
			if v == "" {
				missing = true
				continue
			}
			if domains[l] == nil {
				domains[l] = map[string][]uint64{}
			}
			domains[l][v] = append(domains[l][v], st.Store.ID)
		}
		if missing {
			unlabeled = append(unlabeled, st.Store.ID)
		}
	}
	if stores < r {
		return nil, nil // up_stores_below_max_replicas' ticket
	}
	var reasons []string
	ev := map[string]any{
		"max_replicas":    r,
		"quorum":          quorum,
		"location_labels": labels,
		"isolation_level": cleanText(s.Replication.IsolationLevel, 100),
	}
	top := labels[0]
	if d := len(domains[top]); d > 0 {
		perDomain := (r + d - 1) / d
		ev["top_label"] = top
		ev["top_label_domains"] = d
		ev["replicas_per_domain"] = perDomain
		ev["stores_by_domain"] = domainIDs(domains[top])
		if perDomain >= quorum {
			reasons = append(reasons, fmt.Sprintf("%d %s values for %d replicas: one %s holds %d replicas (quorum %d), so losing it loses the quorum of its regions", d, top, r, top, perDomain, quorum))
		}
	}
	if lvl := strings.TrimSpace(s.Replication.IsolationLevel); lvl != "" {
		if d := len(domains[lvl]); d < r {
			ev["isolation_level_domains"] = d
			reasons = append(reasons, fmt.Sprintf("isolation-level %q has %d values for %d replicas: PD cannot satisfy it", cleanText(lvl, 100), d, r))
		}
	}
	if len(reasons) == 0 {
		return nil, nil
	}
	if len(unlabeled) > 0 {
		ev["stores_missing_labels"] = unlabeled
	}
	if s.Replication.EnablePlacementRules == "true" {
		ev["placement_rules_enabled"] = true
	}
	ev["reasons"] = reasons
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Warning,
		Summary:  "replica isolation at risk: " + strings.Join(reasons, "; "),
		Evidence: ev,
	}}, nil
}

func domainIDs(m map[string][]uint64) map[string][]uint64 {
	out := make(map[string][]uint64, len(m))
	for k, v := range m {
		ids := append([]uint64(nil), v...)
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		out[k] = ids
	}
	return out
}

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// isolationFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var isolationFamilies = map[string]family{
	// A topology decision: page (issue 11, isolation-level).
	NameReplicationIsolationRisk: {replicationIsolationRisk, nil},
}

// replicationIsolationRisk pages: adding a failure domain or changing
// labels is a human's topology decision.
func replicationIsolationRisk(f *facts) *diagnose.Diagnosis {
	d := &diagnose.Diagnosis{
		Summary:    "one failure domain can hold a quorum of replicas",
		Confidence: diagnose.ConfidenceHigh,
		RootCause:  "The stores' location labels give fewer failure domains than max-replicas needs: PD places several replicas of a region in one domain (zone/host), so that domain's failure loses the region's Raft quorum (PD docs: schedule replicas by topology labels; isolation-level).",
		Risks:      []string{"A single zone or host failure makes the affected regions unavailable until it returns."},
	}
	var reasons []string
	if raw, ok := f.ev["reasons"]; ok {
		_ = json.Unmarshal(raw, &reasons)
	}
	for _, r := range reasons {
		d.Evidence = append(d.Evidence, clipText(r, 300))
	}
	d.NoActionReason = page("add stores in another failure domain (a third zone for 3 replicas) or change the topology labels / isolation-level deliberately; no PD action fixes the topology")
	return d
}
