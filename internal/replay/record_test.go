package replay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/config"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/testcluster"
)

// TestRecordReplayRealPD records a real pd-server with simulated stores
// (every leader on one store, balance-leader-scheduler off), replays the
// tape, and checks that the operator found every answer it read on the tape
// (nothing unserved) and saw the leader skew.
func TestRecordReplayRealPD(t *testing.T) {
	tc := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 5, SkewLeaders: true, PauseBalanceLeader: true})
	c, err := pd.New([]string{tc.PDURL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tp, err := Record(ctx, c, RecordOptions{ID: "recorded", Every: time.Second, For: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(tp.Steps) != 3 {
		t.Fatalf("%d steps, want 3 (0s, 1s, 2s)", len(tp.Steps))
	}
	if tp.PDVersion == "" || tp.Start.IsZero() {
		t.Errorf("pd_version %q, start %v", tp.PDVersion, tp.Start)
	}
	first := tp.Steps[0].PD
	for _, k := range append(RecordedPaths(), "regions/store/1", recordsKey) {
		if _, ok := first[k]; !ok && !strings.HasPrefix(k, "regions/store/") {
			t.Errorf("first step lacks %s", k)
		}
	}
	stores := 0
	for k := range first {
		if strings.HasPrefix(k, "regions/store/") {
			stores++
		}
	}
	if stores != 3 {
		t.Errorf("%d store region lists recorded, want 3", stores)
	}

	// A recorded tape loads only once its expectation is filled in.
	data, err := MarshalTape(tp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data); err == nil {
		t.Error("a tape without expectation loaded")
	}
	tp.Expect = Expect{Detect: []Detection{{AnyOf: []string{"leader_imbalance", "store_no_leaders"}}}}
	data, err = MarshalTape(tp)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Parse(data)
	if err != nil {
		t.Fatalf("filled tape does not load: %v", err)
	}

	cfg := config.Default()
	cfg.Invariants.DefaultFor = 0
	cfg.Invariants.For = nil
	cfg.Invariants.LeaderImbalanceMinDiff = 2
	cfg.Invariants.NoLeadersMinUptime = time.Second
	res, err := Run(ctx, loaded, Options{Config: &cfg, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unserved) > 0 {
		t.Errorf("the operator read endpoints the recorder does not record: %v (add them to RecordedPaths)", res.Unserved)
	}
	if !res.Detected {
		t.Errorf("leader skew not detected on the recorded tape; fired %v, errors %v", res.Fired, res.Errors)
	}
	if len(res.Diagnoses) == 0 {
		t.Errorf("nothing diagnosed; errors %v", res.Errors)
	}
}
