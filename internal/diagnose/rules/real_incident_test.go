package rules_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/gather"
	"github.com/tikvops/operator/internal/diagnose/rules"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
	"github.com/tikvops/operator/internal/tikv"
)

// TestRealImbalanceWhileAStoreIsDisconnected: on a real PD, one store
// stops while another store leads every region and PD's
// balance-leader-scheduler runs (its operators are not carried out: the
// loaded store ignores PD's commands, so the skew stays). The
// leader_imbalance diagnosis pages, naming the Disconnected store, and
// proposes no transfer (a new user saw transfer_leader proposed 2 s after
// stopping a store).
func TestRealImbalanceWhileAStoreIsDisconnected(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PD and waits for a store to be Disconnected")
	}
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 12, SkewLeaders: true, PauseBalanceLeader: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := pd.New([]string{c.PDURL}, pd.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ids := c.Sim.StoreIDs()
	loaded, dead := ids[0], ids[2]
	if err := c.Sim.SetIgnoreCommands(loaded, true); err != nil {
		t.Fatal(err)
	}
	if err := client.AddScheduler(ctx, map[string]any{"name": "balance-leader-scheduler"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sim.StopStore(dead); err != nil {
		t.Fatal(err)
	}
	cfg := invariant.DefaultConfig()
	var inv invariant.Invariant
	for _, i := range invariant.Default(cfg) {
		if i.Name() == invariant.NameLeaderImbalance {
			inv = i
		}
	}
	cat := tikv.NewCatalog(client)
	g := gather.New(client, gather.Options{Catalog: cat, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	diagnoseNow := func(snap *tikv.Snapshot, want string) {
		t.Helper()
		vs, err := inv.Eval(ctx, snap, time.Now())
		if err != nil || len(vs) != 1 {
			t.Fatalf("leader_imbalance violations %+v, err %v; want one (store %d leads every region)", vs, err, loaded)
		}
		tk := ticketOf(t, invariant.NameLeaderImbalance, vs[0])
		dc, err := g.Gather(ctx, tk)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(dc.Schedulers, ","), "balance-leader-scheduler") {
			t.Fatalf("balance-leader-scheduler not running in PD: %v", dc.Schedulers)
		}
		d, err := rules.New(rules.Options{}).Diagnose(ctx, dc)
		if err != nil {
			t.Fatal(err)
		}
		if err := diagnose.Validate(ctx, d, cat); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", d.Markdown())
		if d.ProposedAction != nil {
			t.Fatalf("proposed %s %s while store %d is failing and PD's balancer runs", d.ProposedAction.ActionType, d.ProposedAction.Params, dead)
		}
		if !strings.Contains(d.NoActionReason, want) {
			t.Errorf("no-action reason %q lacks %q", d.NoActionReason, want)
		}
	}
	// Right after the stop PD still shows the store Up, and lists its
	// peers as down (the second new-user trial's case).
	deadline := time.Now().Add(90 * time.Second)
	checkedUp := false
	for {
		snap, err := tikv.Collect(ctx, client)
		if err == nil {
			s, ok := snap.Store(dead)
			switch {
			case ok && s.Store.StateName == pd.StateDisconnected:
				if !checkedUp {
					t.Logf("store %d was Disconnected before PD listed its peers down: the Up case was not seen", dead)
				}
				diagnoseNow(snap, fmt.Sprintf("store %d is Disconnected", dead))
				return
			case ok && s.Store.StateName == pd.StateUp && !checkedUp && snap.CheckSummaries[tikv.CheckDownPeer] != nil && snap.CheckSummaries[tikv.CheckDownPeer].DownPeersByStore[dead] > 0:
				diagnoseNow(snap, fmt.Sprintf("store %d has", dead))
				checkedUp = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("store %d not Disconnected within 90 s (err %v)", dead, err)
		}
		time.Sleep(time.Second)
	}
}
