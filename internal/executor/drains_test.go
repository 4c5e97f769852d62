package executor

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikv"
)

// Issue 10: two drain_store approvals on a 4-store cluster with
// max-replicas 3 used to both go out, 23 ms apart, and PD refused the
// second. Capacity-reducing actions now run one at a time and the second
// re-checks PD after the first's effect: exactly one DELETE reaches PD.
func TestTwoApprovedDrainsOneRequest(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Stores: 4, Regions: 4, StoreHeartbeat: time.Second,
		DisableSchedulers: []string{"balance-region", "balance-leader", "hot-region", "evict-slow-store"}})
	px, err := newPDProxy(c.PDURL)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	pdc, err := pd.New([]string{px.URL()})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, filepath.Join(t.TempDir(), "operator.db"), true)
	cat := tikv.NewCatalog(pdc, tikv.WithPollInterval(50*time.Millisecond), tikv.WithVerifyTimeout(30*time.Second))
	e := New(Options{Store: st, Catalog: cat, PollInterval: 20 * time.Millisecond, Logger: testLogger(t), Name: "drains"})
	ctx := ctxT(t, 2*time.Minute)
	ids := c.Sim.StoreIDs()
	var ps []action.Proposal
	for _, sid := range ids[2:4] {
		p := propose(t, st, "drain_store", map[string]uint64{"store_id": sid}, time.Time{})
		for _, who := range []string{"alice", "bob"} { // high risk: two people
			if _, _, err := e.ApproveAs(ctx, p.ID, approver(who), Decision{}); err != nil {
				t.Fatalf("approve drain of store %d by %s: %v", sid, who, err)
			}
		}
		ps = append(ps, p)
	}
	mark := px.mark()
	stop := run(t, e)
	var got []action.Proposal
	for _, p := range ps {
		got = append(got, waitStatus(t, st, p.ID, action.Completed, action.Failed, action.Refused, action.Expired))
	}
	stop()
	var deletes []string
	for _, r := range px.since(mark) {
		if r.Method == "DELETE" && strings.HasPrefix(r.Path, "/pd/api/v1/store/") {
			deletes = append(deletes, r.Path)
		}
	}
	if len(deletes) != 1 {
		t.Errorf("DELETE requests that reached PD: %v, want exactly one", deletes)
	}
	completed, refused := 0, 0
	for _, p := range got {
		switch {
		case p.Status == action.Completed:
			completed++
		case p.Status == action.Failed && strings.Contains(p.Result, "nothing sent to PD"):
			refused++
		}
	}
	if completed != 1 || refused != 1 {
		t.Errorf("outcomes: %s", fmt.Sprint(got[0].Status, " ", got[0].Result, " | ", got[1].Status, " ", got[1].Result))
	}
	_ = context.Background
}
