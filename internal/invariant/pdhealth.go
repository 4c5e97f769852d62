package invariant

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
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

// Runbooks of this family: the rules backend's diagnoses, and the
// family table entries tying them to their invariants and allowed actions.

// pdHealthFamilies are this file's families: each invariant's runbook and the only
// action types its diagnoses may propose (families.go).
var pdHealthFamilies = map[string]family{
	NamePDUnhealthy:   {pdUnhealthy, nil},
	NamePDNoLeader:    {pdNoLeader, nil},
	NamePDUnreachable: {pdUnreachable, nil},
}

// pdState renders what the context knows of PD's members.
func (f *facts) pdState(d *diagnose.Diagnosis) {
	d.Evidence = append(d.Evidence, fmt.Sprintf("when the ticket fired (%s, seen %d times): %s", f.c.Ticket.Severity, f.c.Ticket.Occurrences, f.c.Ticket.Summary))
	snap := f.c.Snapshot
	if snap == nil {
		return
	}
	if len(snap.Members.Members) > 0 {
		names := make([]string, 0, len(snap.Members.Members))
		for _, m := range snap.Members.Members {
			names = append(names, m.Name)
		}
		sort.Strings(names)
		leader := "none"
		if snap.Members.Leader != nil {
			leader = snap.Members.Leader.Name
		}
		d.Evidence = append(d.Evidence, fmt.Sprintf("PD members (GET /pd/api/v1/members): %s; leader %s", strings.Join(names, ", "), leader))
	}
	if len(snap.Health) > 0 {
		var bad, good []string
		for _, h := range snap.Health {
			if h.Health {
				good = append(good, h.Name)
			} else {
				bad = append(bad, h.Name)
			}
		}
		sort.Strings(bad)
		sort.Strings(good)
		d.Evidence = append(d.Evidence, fmt.Sprintf("PD health (GET /pd/api/v1/health): healthy %s; unhealthy %s", orNone(good), orNone(bad)))
	}
	for _, src := range []string{"stores", tikv.SourceHealth, tikv.SourceMembers} {
		if e := f.sourceError(src); e != "" {
			d.Evidence = append(d.Evidence, fmt.Sprintf("could not read %s: %s", src, e))
		}
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// pdUnhealthy (pd_unhealthy): page.
func pdUnhealthy(f *facts) *diagnose.Diagnosis {
	d := &diagnose.Diagnosis{Summary: f.c.Ticket.Summary}
	if d.Summary == "" {
		d.Summary = "PD members are unhealthy"
	}
	f.pdState(d)
	d.RootCause = "A PD member's embedded etcd reports unhealthy: the process is down, its disk is too slow for etcd's fsync (PD_etcd_write_disk_latency), or it cannot reach the other members. PD keeps serving while a majority of members is healthy."
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{"Losing one more member may cost PD its quorum: no leader, no TSO, every TiKV write stalls.", "Restart unhealthy members one at a time, never several together."}
	d.NoActionReason = page("check the unhealthy PD members: process, disk latency (etcd fsync), network between members (pd-ctl member, the PD log); the catalog has no PD member action")
	return d
}

// pdNoLeader (pd_no_leader): page.
func pdNoLeader(f *facts) *diagnose.Diagnosis {
	d := &diagnose.Diagnosis{Summary: f.c.Ticket.Summary}
	if d.Summary == "" {
		d.Summary = "PD has no leader"
	}
	f.pdState(d)
	d.RootCause = "PD has no leader: an election is under way, or a majority of PD members is down or partitioned so none can win. Without a leader PD serves no TSO and no region routing: TiKV cannot be scheduled and clients' transactions stall."
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{"Every client transaction waits for a timestamp until a leader is elected."}
	d.NoActionReason = page("check that a majority of PD members runs and can reach each other (pd-ctl member, the PD logs: election, etcd raft, clock jumps); an election normally finishes within seconds")
	return d
}

// pdUnreachable (pd_unreachable): page. The gatherer read PD to build this
// context, so PD usually answers again by the time this runs.
func pdUnreachable(f *facts) *diagnose.Diagnosis {
	d := &diagnose.Diagnosis{Summary: f.c.Ticket.Summary}
	if d.Summary == "" {
		d.Summary = "PD was unreachable from the operator"
	}
	f.pdState(d)
	reachable := f.sourceError("stores") == "" && len(f.c.Stores) > 0
	if reachable {
		d.Evidence = append(d.Evidence, fmt.Sprintf("PD answered GET /pd/api/v1/stores at %s while gathering this diagnosis (%d stores)", f.c.Time.UTC().Format("2006-01-02T15:04:05Z"), len(f.c.Stores)))
		d.RootCause = "The operator could not read PD's HTTP API for a while; PD answers again now. Likely a PD restart or leader change, or a network problem between the operator and PD."
	} else {
		d.RootCause = "The operator cannot read PD's HTTP API: every PD endpoint refuses, times out or fails. PD may be down, have no leader, or be unreachable from the operator's host (network, TLS, DNS)."
	}
	d.Confidence = diagnose.ConfidenceMedium
	d.Risks = []string{"While PD is unreachable the operator cannot see the cluster: other problems go unnoticed."}
	d.NoActionReason = page("check the PD processes and the path from the operator to PD's client URLs (ports, TLS certificates, DNS)")
	return d
}
