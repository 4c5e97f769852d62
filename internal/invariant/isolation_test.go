package invariant

import (
	"context"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/tikv"
)

func labeledStore(id uint64, state string, labels ...string) pd.StoreInfo {
	var st pd.StoreInfo
	st.Store.ID = id
	st.Store.StateName = state
	for i := 0; i+1 < len(labels); i += 2 {
		st.Store.Labels = append(st.Store.Labels, pd.Label{Key: labels[i], Value: labels[i+1]})
	}
	return st
}

// TestReplicationIsolationRisk: 3 replicas over two zones lose quorum with
// one zone (and cannot satisfy isolation-level zone); three zones hold;
// an Offline store's zone does not count; no location-labels, no check.
func TestReplicationIsolationRisk(t *testing.T) {
	inv := &ReplicationIsolationRisk{base{name: NameReplicationIsolationRisk}}
	repl := pd.ReplicationConfig{MaxReplicas: 3, LocationLabels: "zone,host", IsolationLevel: "zone"}
	two := []pd.StoreInfo{
		labeledStore(1, pd.StateUp, "zone", "z1", "host", "h1"), labeledStore(2, pd.StateUp, "zone", "z1", "host", "h2"),
		labeledStore(3, pd.StateUp, "zone", "z2", "host", "h3"), labeledStore(4, pd.StateUp, "zone", "z2", "host", "h4"),
	}
	three := append(append([]pd.StoreInfo(nil), two...), labeledStore(5, pd.StateUp, "zone", "z3", "host", "h5"))
	drainingThird := append(append([]pd.StoreInfo(nil), two...), labeledStore(5, pd.StateOffline, "zone", "z3", "host", "h5"))
	for _, tc := range []struct {
		name   string
		stores []pd.StoreInfo
		repl   pd.ReplicationConfig
		want   int
	}{
		{"two zones", two, repl, 1},
		{"three zones", three, repl, 0},
		{"third zone draining", drainingThird, repl, 1},
		{"no location labels", two, pd.ReplicationConfig{MaxReplicas: 3}, 0},
		{"two zones, host level only", two, pd.ReplicationConfig{MaxReplicas: 3, LocationLabels: "host"}, 0},
	} {
		s := &tikv.Snapshot{Stores: tc.stores, Replication: tc.repl}
		v, err := inv.Eval(context.Background(), s, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(v) != tc.want {
			t.Errorf("%s: %d violations %+v, want %d", tc.name, len(v), v, tc.want)
		}
	}
	s := &tikv.Snapshot{Stores: two, Errors: map[string]error{tikv.SourceReplication: context.DeadlineExceeded}}
	if _, err := inv.Eval(context.Background(), s, time.Now()); err == nil {
		t.Error("no error without the replication config")
	}
}
