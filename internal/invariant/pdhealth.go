package invariant

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// PDUnhealthy (pd_unhealthy) is violated when any PD member GET /health
// lists reports health false (its etcd is unhealthy). Critical; subject
// "cluster"; evidence lists the unhealthy members. Constructed by Default.
type PDUnhealthy struct{ base }

// Eval implements Invariant.
func (inv *PDUnhealthy) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, tikv.SourceHealth); err != nil {
		return nil, err
	}
	var bad []map[string]any
	var names []string
	for _, m := range s.Health {
		if m.Health {
			continue
		}
		names = append(names, m.Name)
		bad = append(bad, map[string]any{"name": m.Name, "member_id": m.MemberID, "client_urls": m.ClientURLs})
	}
	if len(bad) == 0 {
		return nil, nil
	}
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Critical,
		Summary:  fmt.Sprintf("%d of %d PD members unhealthy: %s", len(bad), len(s.Health), strings.Join(names, ", ")),
		Evidence: map[string]any{
			"unhealthy_members": bad,
			"members":           len(s.Health),
			"source":            "GET /pd/api/v1/health",
		},
	}}, nil
}

// PDNoLeader (pd_no_leader) is violated when GET /members lists members but
// no leader: PD cannot schedule, allocate ids or serve TSO. A snapshot
// without members (never collected) is not a violation. Critical; subject
// "cluster". Constructed by Default.
type PDNoLeader struct{ base }

// Eval implements Invariant.
func (inv *PDNoLeader) Eval(_ context.Context, s *tikv.Snapshot, _ time.Time) ([]Violation, error) {
	if err := needSources(inv.name, s, tikv.SourceMembers); err != nil {
		return nil, err
	}
	if s.Members.Leader != nil || len(s.Members.Members) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(s.Members.Members))
	for _, m := range s.Members.Members {
		names = append(names, m.Name)
	}
	ev := map[string]any{"members": names, "source": "GET /pd/api/v1/members"}
	if s.Members.EtcdLeader != nil {
		ev["etcd_leader"] = s.Members.EtcdLeader.Name
	}
	return []Violation{{
		Subject:  SubjectCluster,
		Severity: ticket.Critical,
		Summary:  fmt.Sprintf("PD has no leader (%d members: %s)", len(names), strings.Join(names, ", ")),
		Evidence: ev,
	}}, nil
}
