package rules_test

import (
	"testing"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/invariant"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

// A store stops: its leaders are re-elected on the survivors, unevenly
// (23/7/0 in a new user's demo), and PD's balance-leader-scheduler runs.
// The rules proposed transfer_leader 2 s after the stop, racing PD while
// the cluster recovers; they page and point at the store's incident.
func TestImbalanceWhileAStoreFails(t *testing.T) {
	for _, stateName := range []string{pd.StateDisconnected, pd.StateDown} {
		t.Run(stateName, func(t *testing.T) {
			ev := map[string]any{"leader_counts": map[string]int{"1": 23, "2": 7}, "max_store_id": 1, "min_store_id": 2,
				"max_count": 23, "min_count": 7, "diff": 16, "threshold": 9, "ratio": 0.6, "min_diff": 2, "balance_schedule": "running"}
			c := cx(invariant.NameLeaderImbalance, "cluster", ev,
				[]pd.StoreInfo{st(1, 23, 30), st(2, 7, 30), st(3, 0, 30, state(stateName))},
				rg(10, 1, 1, 2, 3), rg(11, 1, 1, 2, 3))
			d := run(t, c)
			noAction(t, d, "store 3 is "+stateName, "PD's balance scheduler")
			if d.Confidence != diagnose.ConfidenceHigh {
				t.Errorf("confidence %s", d.Confidence)
			}
		})
	}
	// Right after the stop PD still shows the store Up (for up to 20 s)
	// but lists its peers as down: the same incident.
	t.Run("still Up, peers down", func(t *testing.T) {
		ev := map[string]any{"leader_counts": map[string]int{"1": 23, "2": 7, "3": 0}}
		c := cx(invariant.NameLeaderImbalance, "cluster", ev,
			[]pd.StoreInfo{st(1, 23, 30), st(2, 7, 30), st(3, 0, 30)},
			down(rg(10, 1, 1, 2, 3), 3), rg(11, 1, 1, 2, 3))
		d := run(t, c)
		noAction(t, d, "store 3 has 1 down peers", "PD's balance scheduler")
	})
	t.Run("paused balancer: resuming it is still the answer", func(t *testing.T) {
		ev := map[string]any{"leader_counts": map[string]int{"1": 23, "2": 7}}
		c := cx(invariant.NameLeaderImbalance, "cluster", ev,
			[]pd.StoreInfo{st(1, 23, 30), st(2, 7, 30), st(3, 0, 30, state(pd.StateDisconnected))},
			rg(10, 1, 1, 2, 3))
		c.PausedSchedulers = []string{"balance-leader-scheduler"}
		c.Actions = []action.Spec{{Name: tikv.ActionTransferLeader}, {Name: "resume_scheduler"}}
		d := run(t, c)
		if d.ProposedAction == nil || d.ProposedAction.ActionType != "resume_scheduler" {
			t.Errorf("proposal %+v, want resume_scheduler", d.ProposedAction)
		}
	})
}
