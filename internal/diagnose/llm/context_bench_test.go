package llm_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/diagnose/llm"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
	"github.com/tikvops/operator/internal/tikv"
)

// syntheticContext is the Context of a store_down ticket on a cluster of
// stores stores, whose dead store (the subject, the middle store) holds a
// peer of each of the affected regions; PD runs one replace-down-peer
// operator per affected region and has finished as many. Regions are
// what a caller could hand a model at worst: every affected region.
func syntheticContext(stores, affected int) *diagnose.Context {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	dead := uint64(stores/2 + 1)
	c := &diagnose.Context{Time: now,
		Schedule:         pd.ScheduleConfig{MaxStoreDownTime: pd.Duration(30 * time.Minute), LeaderScheduleLimit: 4, RegionScheduleLimit: 2048, ReplicaScheduleLimit: 64},
		Replication:      pd.ReplicationConfig{MaxReplicas: 3, LocationLabels: "zone,host"},
		Schedulers:       []string{"balance-leader-scheduler", "balance-region-scheduler", "balance-hot-region-scheduler", "evict-slow-store-scheduler"},
		PausedSchedulers: []string{}, EvictLeaderStores: []uint64{},
		Actions: tikv.NewCatalog(nil).Specs(),
	}
	for i := 1; i <= stores; i++ {
		state := pd.StateUp
		if uint64(i) == dead {
			state = pd.StateDown
		}
		c.Stores = append(c.Stores, pd.StoreInfo{
			Store: pd.StoreMeta{ID: uint64(i), Address: fmt.Sprintf("tikv-%d.tikv-peer.prod.svc:20160", i),
				StatusAddress: fmt.Sprintf("tikv-%d.tikv-peer.prod.svc:20180", i), Version: "8.5.0",
				GitHash: "c4d7f9b2a1e0d3c5b6a7f8e9d0c1b2a3f4e5d6c7", DeployPath: "/tikv/bin", StartTimestamp: now.Unix() - 86400,
				LastHeartbeat: now.UnixNano(), StateName: state,
				Labels: []pd.Label{{Key: "zone", Value: "zone-" + strconv.Itoa(i%3)}, {Key: "host", Value: "host-" + strconv.Itoa(i)}}},
			Status: pd.StoreStatus{Capacity: 1 << 40, Available: 600 << 30, UsedSize: 400 << 30,
				LeaderCount: 20000 + i, LeaderWeight: 1, LeaderScore: 20000 + float64(i), LeaderSize: 1900000,
				RegionCount: 60000 + i, RegionWeight: 1, RegionScore: 190000, RegionSize: 5700000,
				StartTS: now.Add(-24 * time.Hour), LastHeartbeatTS: now, Uptime: pd.Duration(24 * time.Hour)},
		})
	}
	var sample []uint64
	for i := 0; i < affected; i++ {
		id := uint64(1000 + i)
		other1 := uint64((int(dead)+i)%stores + 1)
		other2 := uint64((int(dead)+i+1)%stores + 1)
		if other1 == dead {
			other1 = uint64(int(dead)%stores + 1)
		}
		if other2 == dead || other2 == other1 {
			other2 = uint64((int(other1))%stores + 1)
		}
		r := pd.Region{ID: id, StartKey: fmt.Sprintf("7480000000000000FF%08X", i), EndKey: fmt.Sprintf("7480000000000000FF%08X", i+1),
			Epoch:  pd.Epoch{ConfVer: 5, Version: 40},
			Peers:  []pd.Peer{{ID: id*10 + 1, StoreID: dead}, {ID: id*10 + 2, StoreID: other1}, {ID: id*10 + 3, StoreID: other2}},
			Leader: pd.Peer{ID: id*10 + 2, StoreID: other1}, DownPeers: []pd.DownPeer{{Peer: pd.Peer{ID: id*10 + 1, StoreID: dead}, DownSeconds: 1900}},
			ApproximateSize: 96, ApproximateKeys: 960000}
		c.Regions = append(c.Regions, r)
		c.Operators = append(c.Operators, pd.Operator{RegionID: id, Desc: "replace-rule-down-peer", Brief: fmt.Sprintf("mv peer: store [%d] to [%d]", dead, other2+1),
			Kind: 130, Timeout: "10m0s", Status: 1})
		c.OperatorRecords = append(c.OperatorRecords, pd.OperatorRecord{RegionID: id + uint64(affected), Desc: "replace-rule-down-peer", Outcome: pd.RecordSuccess,
			Text: fmt.Sprintf("replace-rule-down-peer {mv peer: store [%d] to [%d]} (kind:region,replica, region:%d(40, 5))", dead, other2+1, id+uint64(affected))})
		if len(sample) < 10 {
			sample = append(sample, id)
		}
	}
	ev, _ := json.Marshal(map[string]any{"store_id": dead, "state_name": pd.StateDown, "region_count": affected,
		"down_seconds": 1900, "sample_region_ids": sample})
	c.Ticket = ticket.Ticket{ID: 42, Key: "store_down/store:" + strconv.FormatUint(dead, 10), Invariant: "store_down",
		Subject: "store:" + strconv.FormatUint(dead, 10), Severity: ticket.Emergency, Status: ticket.Open,
		Summary: "store " + strconv.FormatUint(dead, 10) + " is Down", Evidence: ev, FirstEvidence: ev,
		FirstSeen: now.Add(-time.Minute), LastSeen: now, Occurrences: 7}
	return c
}

// prompt is the first user message the model backends send for c.
func prompt(tb testing.TB, c *diagnose.Context) string {
	tb.Helper()
	rc := diagnose.NewRedactor(diagnose.RedactOptions{RedactAddresses: true, RedactLabels: true, Salt: []byte("bench")}).Context(c)
	p, err := llm.UserPrompt(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

var contextCases = []struct{ stores, regions int }{
	{3, 1}, {3, 100}, {3, 10000},
	{50, 1}, {50, 100}, {50, 10000},
	{500, 1}, {500, 100}, {500, 10000},
}

// BenchmarkDiagnosisContext measures the model's first user message (the
// action catalog and the cluster data) for 3, 50 and 500 stores with 1,
// 100 and 10,000 affected regions: bytes and tokens (bytes / 4).
//
//	go test -run '^$' -bench BenchmarkDiagnosisContext ./internal/diagnose/llm/
func BenchmarkDiagnosisContext(b *testing.B) {
	for _, cs := range contextCases {
		b.Run(fmt.Sprintf("stores=%d/regions=%d", cs.stores, cs.regions), func(b *testing.B) {
			c := syntheticContext(cs.stores, cs.regions)
			var n int
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				n = len(prompt(b, c))
			}
			b.ReportMetric(float64(n), "bytes")
			b.ReportMetric(float64(n)/4, "tokens")
		})
	}
}

// TestDiagnosisContextSizes prints the sizes (no timing) and holds every
// case to the cap: the ticket's store and the regions its evidence names
// are always in the data, with a note of what was left out.
func TestDiagnosisContextSizes(t *testing.T) {
	for _, cs := range contextCases {
		c := syntheticContext(cs.stores, cs.regions)
		p := prompt(t, c)
		t.Logf("stores=%d regions=%d: %d bytes, %d tokens", cs.stores, cs.regions, len(p), len(p)/4)
		if len(p) > llm.MaxInputBytes {
			t.Errorf("stores=%d regions=%d: %d bytes, over the cap of %d", cs.stores, cs.regions, len(p), llm.MaxInputBytes)
		}
		data := p[strings.Index(p, "<cluster_data>")+len("<cluster_data>") : strings.Index(p, "</cluster_data>")]
		var doc struct {
			Stores  []pd.StoreInfo `json:"stores"`
			Regions []pd.Region    `json:"regions"`
			Omitted *struct {
				Note   string `json:"note"`
				Stores []struct {
					State string `json:"state_name"`
					Count int    `json:"count"`
				} `json:"stores"`
				Operators []struct {
					Kind  string `json:"kind"`
					Count int    `json:"count"`
				} `json:"operators"`
			} `json:"omitted"`
		}
		if err := json.Unmarshal([]byte(data), &doc); err != nil {
			t.Fatalf("data is not one JSON document: %v", err)
		}
		var ev struct {
			StoreID uint64   `json:"store_id"`
			Sample  []uint64 `json:"sample_region_ids"`
		}
		_ = json.Unmarshal(c.Ticket.Evidence, &ev)
		if len(doc.Stores) == 0 || doc.Stores[0].Store.ID != ev.StoreID || doc.Stores[0].Store.StateName != pd.StateDown {
			t.Errorf("stores=%d regions=%d: the ticket's store %d is not listed first", cs.stores, cs.regions, ev.StoreID)
		}
		listed := map[uint64]bool{}
		for _, r := range doc.Regions {
			listed[r.ID] = true
		}
		for _, id := range ev.Sample {
			if !listed[id] {
				t.Errorf("stores=%d regions=%d: region %d named by the evidence is not listed", cs.stores, cs.regions, id)
			}
		}
		listedStores, aggregated := len(doc.Stores), 0
		if doc.Omitted != nil {
			for _, a := range doc.Omitted.Stores {
				aggregated += a.Count
			}
		}
		if listedStores+aggregated != cs.stores {
			t.Errorf("stores=%d regions=%d: %d listed + %d aggregated stores", cs.stores, cs.regions, listedStores, aggregated)
		}
		if cs.regions > len(doc.Regions) && (doc.Omitted == nil || !strings.Contains(doc.Omitted.Note, "get_region")) {
			t.Errorf("stores=%d regions=%d: no note says which tool returns the regions left out", cs.stores, cs.regions)
		}
		if strings.Contains(p, "tikv-1.tikv-peer") || strings.Contains(p, "7480000000000000FF") {
			t.Errorf("an address or a region key reached the prompt")
		}
	}
}

// TestDiagnosisContextStripsPDText: PD strings (labels, operator text)
// reach the model bounded and without control characters.
func TestDiagnosisContextStripsPDText(t *testing.T) {
	c := syntheticContext(5, 3)
	c.Stores[2].Store.Labels = append(c.Stores[2].Store.Labels, pd.Label{Key: "note", Value: "\x1b[2J" + strings.Repeat("A", 100000)})
	c.Operators[0].Desc = "evil\x1b]0;title\x07" + strings.Repeat("B", 100000)
	rc := diagnose.NewRedactor(diagnose.RedactOptions{Salt: []byte("x")}).Context(c)
	p, err := llm.UserPrompt(rc)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > llm.MaxInputBytes {
		t.Errorf("prompt is %d bytes, over the cap", len(p))
	}
	if strings.Contains(p, "\\u001b") || strings.Contains(p, "\x1b") || strings.Contains(p, strings.Repeat("A", 1000)) || strings.Contains(p, strings.Repeat("B", 1000)) {
		t.Errorf("PD text reached the prompt unbounded or with control characters")
	}
}
