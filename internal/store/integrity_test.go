package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auditkey"
	"github.com/tikvops/operator/internal/ticket"
)

// keyed opens a store in a temp dir with an audit key and checkpoint, as
// the daemon does, bound to cluster "7001".
func keyed(t *testing.T, be backend) (*Store, string, VerifyOptions) {
	t.Helper()
	dir := t.TempDir()
	path := be.target(t)
	s := openAt(t, path)
	key, err := auditkey.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.SetAuditKey(key, auditkey.NewCheckpoint(dir, key), nil)
	if err := s.BindCluster(context.Background(), "7001", "test", t0); err != nil {
		t.Fatal(err)
	}
	pub, err := auditkey.LoadPublic(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, path, VerifyOptions{PublicKey: pub, KeyDir: dir}
}

func mustVerify(t *testing.T, s *Store, o VerifyOptions) VerifyReport {
	t.Helper()
	rep, err := s.VerifyWith(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestBindClusterRefusesAnother(t *testing.T) { forEachBackend(t, testBindClusterRefusesAnother) }

func testBindClusterRefusesAnother(t *testing.T, be backend) {
	s, path, _ := keyed(t, be)
	ctx := context.Background()
	id := proposed(t, s, "store:1")
	if p, _ := s.Proposal(ctx, id); p.ClusterID != "7001" {
		t.Errorf("proposal cluster = %q, want 7001", p.ClusterID)
	}
	if tk, _ := s.Tickets(ctx, TicketFilter{}); len(tk) != 1 || tk[0].ClusterID != "7001" {
		t.Errorf("ticket cluster = %+v", tk)
	}
	if err := s.BindCluster(ctx, "7001", "", t0); err != nil {
		t.Errorf("same cluster again: %v", err)
	}
	s2 := openAt(t, path)
	err := s2.BindCluster(ctx, "9999", "", t0)
	if !errors.Is(err, ErrWrongCluster) || !strings.Contains(err.Error(), "7001") || !strings.Contains(err.Error(), "9999") {
		t.Errorf("other cluster: %v", err)
	}
	if s2.ClusterID() != "" {
		t.Errorf("refused binding still set cluster %q", s2.ClusterID())
	}
}

func TestApprovalBindingAndTwoPeople(t *testing.T) {
	forEachBackend(t, testApprovalBindingAndTwoPeople)
}

func testApprovalBindingAndTwoPeople(t *testing.T, be backend) {
	s, _, vo := keyed(t, be)
	ctx := context.Background()
	id := proposed(t, s, "store:1")
	p, n, err := s.ApproveBound(ctx, id, Approval{By: "alice", Role: "approver", Required: 2}, t0)
	if err != nil || n != 1 || p.Status != action.Proposed {
		t.Fatalf("first of two approvals: %+v n=%d err=%v", p.Status, n, err)
	}
	if _, _, err := s.ApproveBound(ctx, id, Approval{By: "ALICE", Required: 2}, t0); !errors.Is(err, ErrPolicy) {
		t.Errorf("same person twice: %v", err)
	}
	p, n, err = s.ApproveBound(ctx, id, Approval{By: "bob", Role: "admin", Required: 2}, t0.Add(time.Minute))
	if err != nil || n != 2 || p.Status != action.Approved || p.ApprovedBy != "alice,bob" {
		t.Fatalf("second approval: %+v n=%d err=%v", p, n, err)
	}
	if p.ApprovalExpiresAt == nil || !p.ApprovalExpiresAt.Equal(t0.Add(DefaultApprovalTTL)) {
		t.Errorf("approval expiry = %v, want the earliest approval's", p.ApprovalExpiresAt)
	}
	apps, _ := s.Approvals(ctx, id)
	if len(apps) != 2 {
		t.Fatalf("approval records = %d", len(apps))
	}
	want := action.ActionDigest("remove_store", []byte(`{ "store_id" : 4 }`))
	for _, a := range apps {
		if a.ActionDigest != want || a.ClusterID != "7001" || a.ExpiresAt == nil || a.Signature == "" || a.HashVersion != action.HashV2 {
			t.Errorf("approval record not bound: %+v", a)
		}
	}
	if apps[1].ActorRole != "admin" {
		t.Errorf("role = %q", apps[1].ActorRole)
	}
	if rep := mustVerify(t, s, vo); !rep.OK || rep.Signed != 2 || rep.CheckpointID != 2 {
		t.Errorf("verify = %+v", rep)
	}
}

func TestEvidenceDigestMustBeLatestDryRun(t *testing.T) {
	forEachBackend(t, testEvidenceDigestMustBeLatestDryRun)
}

func testEvidenceDigestMustBeLatestDryRun(t *testing.T, be backend) {
	s, _, _ := keyed(t, be)
	ctx := context.Background()
	id := proposed(t, s, "store:1")
	r1, _ := s.RecordDryRun(ctx, id, action.Record{Success: true, ExecutedBy: "alice"}, t0)
	r2, _ := s.RecordDryRun(ctx, id, action.Record{Success: true, ExecutedBy: "alice"}, t0.Add(time.Second))
	if _, _, err := s.ApproveBound(ctx, id, Approval{By: "alice", EvidenceDigest: r1.Hash}, t0); !errors.Is(err, ErrPolicy) {
		t.Errorf("stale evidence accepted: %v", err)
	}
	if _, _, err := s.ApproveBound(ctx, id, Approval{By: "alice", EvidenceDigest: r2.Hash}, t0); err != nil {
		t.Errorf("latest evidence refused: %v", err)
	}
	apps, _ := s.Approvals(ctx, id)
	if len(apps) != 1 || apps[0].EvidenceDigest != r2.Hash {
		t.Errorf("evidence digest = %+v", apps)
	}
}

// Resolving a ticket expires its approved proposal in the same
// transaction, with an expiry record: an approval waiting (behind the
// hourly cap, or for a daemon that is down) never runs after the problem
// is gone.
func TestResolveExpiresApprovedInOneTransaction(t *testing.T) {
	forEachBackend(t, testResolveExpiresApprovedInOneTransaction)
}

func testResolveExpiresApprovedInOneTransaction(t *testing.T, be backend) {
	s, _, vo := keyed(t, be)
	ctx := context.Background()
	id := proposed(t, s, "store:1")
	p, _ := s.Approve(ctx, id, "alice", t0)
	if err := s.ResolveTicket(ctx, p.TicketID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	p, _ = s.Proposal(ctx, id)
	if p.Status != action.Expired {
		t.Fatalf("approved proposal of a resolved ticket = %s, want expired", p.Status)
	}
	recs, _ := s.Records(ctx, RecordFilter{ProposalID: id})
	if len(recs) != 2 || recs[0].Event != action.EventExpiry {
		t.Errorf("records = %+v", recs)
	}
	got, err := s.ClaimNext(ctx, "x", t0.Add(2*time.Minute), ClaimOptions{})
	if err != nil || got != nil {
		t.Errorf("claim after resolve = %v, %v", got, err)
	}
	if rep := mustVerify(t, s, vo); !rep.OK {
		t.Errorf("verify = %+v", rep.Broken)
	}
}

func TestClaimEligibleRefusesAndExpires(t *testing.T) {
	forEachBackend(t, testClaimEligibleRefusesAndExpires)
}

func testClaimEligibleRefusesAndExpires(t *testing.T, be backend) {
	s, _, vo := keyed(t, be)
	ctx := context.Background()
	a := proposed(t, s, "store:1")
	b := proposed(t, s, "store:2")
	c := proposed(t, s, "store:3")
	for _, id := range []int64{a, b, c} {
		if _, err := s.Approve(ctx, id, "alice", t0); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int64]int{}
	o := ClaimOptions{Eligible: func(p action.Proposal, apps []action.Record, ts ticket.Status) error {
		seen[p.ID] = len(apps)
		switch p.ID {
		case a:
			return errors.Join(ErrClaimRefused, errors.New("no valid approval"))
		case b:
			return errors.Join(ErrClaimExpired, errors.New("approval past its TTL"))
		}
		return nil
	}}
	got, ended, err := s.ClaimNextChecked(ctx, "x", t0, o)
	if err != nil || got == nil || got.ID != c || len(ended) != 2 {
		t.Fatalf("claim = %+v ended=%d err=%v", got, len(ended), err)
	}
	if seen[a] != 1 || seen[c] != 1 {
		t.Errorf("approvals passed to Eligible = %v", seen)
	}
	pa, _ := s.Proposal(ctx, a)
	pb, _ := s.Proposal(ctx, b)
	if pa.Status != action.Refused || pb.Status != action.Expired || !strings.Contains(pa.Result, "no valid approval") {
		t.Errorf("a=%s %q b=%s", pa.Status, pa.Result, pb.Status)
	}
	recs, _ := s.Records(ctx, RecordFilter{ProposalID: a})
	if recs[0].Event != action.EventRefusal || !strings.Contains(recs[0].Message, "nothing sent to PD") {
		t.Errorf("refusal record = %+v", recs[0])
	}
	if rep := mustVerify(t, s, vo); !rep.OK {
		t.Errorf("verify = %+v", rep.Broken)
	}
}

// The attacks of issue 10 on the audit trail, each detected.
func TestVerifyDetectsIssue10Tampering(t *testing.T) {
	forEachBackend(t, testVerifyDetectsIssue10Tampering)
}

func testVerifyDetectsIssue10Tampering(t *testing.T, be backend) {
	setup := func(t *testing.T) (*Store, string, VerifyOptions) {
		s, path, vo := keyed(t, be)
		ctx := context.Background()
		for _, sub := range []string{"store:1", "store:2"} {
			id := proposed(t, s, sub)
			s.RecordDryRun(ctx, id, action.Record{Success: true, ExecutedBy: "alice"}, t0)
			s.Approve(ctx, id, "alice", t0)
		}
		if rep := mustVerify(t, s, vo); !rep.OK || rep.Records != 4 {
			t.Fatalf("clean chain = %+v", rep)
		}
		return s, path, vo
	}
	cases := []struct {
		name string
		sql  []string
		want BreakKind
	}{
		{"wipe", []string{`DROP TRIGGER action_records_no_delete`, `DELETE FROM action_records`, `DELETE FROM sqlite_sequence WHERE name = 'action_records'`}, BreakTrimmed},
		{"trimmed tail and reset sequence", []string{`DROP TRIGGER action_records_no_delete`, `DELETE FROM action_records WHERE id > 2`, `UPDATE sqlite_sequence SET seq = 2 WHERE name = 'action_records'`}, BreakTrimmed},
		{"relabel approval as dry run", []string{`DROP TRIGGER action_records_no_update`, `UPDATE action_records SET event = 'dry_run', dry_run = 1 WHERE id = 2`}, BreakEdited},
		{"edit message", []string{`DROP TRIGGER action_records_no_update`, `UPDATE action_records SET message = 'approved by security team' WHERE id = 2`}, BreakEdited},
		{"downgrade to v1", []string{`DROP TRIGGER action_records_no_update`, `UPDATE action_records SET hash_version = 1 WHERE id = 4`}, BreakEdited},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, path, vo := setup(t)
			db := be.rawDB(t, path)
			for _, q := range c.sql {
				if _, err := db.Exec(be.sqlFor(q)); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			rep := mustVerify(t, s, vo)
			if rep.OK || rep.Broken == nil || rep.Broken.Kind != c.want {
				t.Errorf("verify after %s = %+v broken=%+v, want %s", c.name, rep, rep.Broken, c.want)
			}
		})
	}

	// A record forged with a correct hash but without the daemon's key:
	// the store of an attacker signs with its own key (or none).
	t.Run("forged approval", func(t *testing.T) {
		s, path, vo := setup(t)
		forger := openAt(t, path) // no key: writes unsigned v2 records
		id := proposed(t, forger, "store:9")
		if _, err := forger.Approve(context.Background(), id, "mallory", t0); err != nil {
			t.Fatal(err)
		}
		rep := mustVerify(t, s, vo)
		if rep.OK || rep.Broken.Kind != BreakForged {
			t.Errorf("forged approval: %+v %+v", rep, rep.Broken)
		}
	})
}

// A status forged with SQL, or params edited after approval, are reported.
func TestVerifyReportsForgedProposalRows(t *testing.T) {
	forEachBackend(t, testVerifyReportsForgedProposalRows)
}

func testVerifyReportsForgedProposalRows(t *testing.T, be backend) {
	for name, q := range map[string]string{
		"status forged":  `UPDATE action_proposals SET status = 'approved' WHERE id = 1`,
		"params swapped": `UPDATE action_proposals SET params = '{"store_id":5}' WHERE id = 2`,
	} {
		t.Run(name, func(t *testing.T) {
			s, path, vo := keyed(t, be)
			ctx := context.Background()
			a := proposed(t, s, "store:1")
			b := proposed(t, s, "store:2")
			if _, err := s.Reject(ctx, a, "bob", "no", t0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Approve(ctx, b, "alice", t0); err != nil {
				t.Fatal(err)
			}
			if rep := mustVerify(t, s, vo); !rep.OK {
				t.Fatalf("clean = %+v", rep.Broken)
			}
			if _, err := be.rawDB(t, path).Exec(q); err != nil {
				t.Fatal(err)
			}
			rep := mustVerify(t, s, vo)
			if rep.OK || rep.Broken.Kind != BreakUnapproved {
				t.Errorf("verify = %+v %+v", rep, rep.Broken)
			}
		})
	}
}

func TestRejectedSinceAsked(t *testing.T) { forEachBackend(t, testRejectedSinceAsked) }

func testRejectedSinceAsked(t *testing.T, be backend) {
	s, _, _ := keyed(t, be)
	ctx := context.Background()
	id := proposed(t, s, "store:1")
	p, _ := s.Proposal(ctx, id)
	if _, err := s.Reject(ctx, id, "bob", "not tonight", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestRediagnosis(ctx, p.TicketID, RejectionReasonPrefix+"action 1", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := s.RejectedSinceAsked(ctx, p.TicketID)
	if err != nil || len(got) != 1 || got[0].ID != id {
		t.Fatalf("after the rejection's own re-diagnosis: %+v %v", got, err)
	}
	// A person asks for a fresh look: the rejection no longer holds back.
	if _, err := s.SaveDiagnosis(ctx, p.TicketID, DiagnosisInput{Markdown: "again", Backend: "rules"}, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestRediagnosis(ctx, p.TicketID, "maintenance is over", t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.RejectedSinceAsked(ctx, p.TicketID); len(got) != 0 {
		t.Errorf("after a person's re-diagnosis request: %+v", got)
	}
}

func TestLatestProposals(t *testing.T) { forEachBackend(t, testLatestProposals) }

func testLatestProposals(t *testing.T, be backend) {
	s, _, _ := keyed(t, be)
	ctx := context.Background()
	a := proposed(t, s, "store:1")
	pa, _ := s.Proposal(ctx, a)
	// A second proposal on the same ticket (re-diagnosis) is the latest.
	if err := s.RequestRediagnosis(ctx, pa.TicketID, "again", t0); err != nil {
		t.Fatal(err)
	}
	b, err := s.SaveDiagnosis(ctx, pa.TicketID, DiagnosisInput{Markdown: "m", Backend: "rules", Proposal: &action.Proposal{
		ActionType: "remove_store", Params: []byte(`{"store_id":5}`), ExpiresAt: t0.Add(time.Hour)}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	tk, _, _ := s.Observe(ctx, obs("store_down", "store:9", `{}`), t0) // no proposal
	got, err := s.LatestProposals(ctx, []int64{pa.TicketID, tk.ID, 999})
	if err != nil || len(got) != 1 || got[pa.TicketID].ID != b {
		t.Errorf("LatestProposals = %+v, %v (want proposal %d for ticket %d only)", got, err, b, pa.TicketID)
	}
}
