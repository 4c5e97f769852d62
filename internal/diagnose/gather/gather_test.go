package gather_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/tikvops/operator/internal/diagnose/gather"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/ticket"
)

func TestParseSubject(t *testing.T) {
	tests := []struct {
		in   string
		kind string
		id   uint64
		ok   bool
	}{
		{"store:4", "store", 4, true},
		{"region:12", "region", 12, true},
		{"cluster", "", 0, false},
		{"store:", "", 0, false},
		{"store:0", "", 0, false},
		{"store:-1", "", 0, false},
		{"store:4x", "", 0, false},
		{"node:4", "", 0, false},
	}
	for _, tt := range tests {
		kind, id, ok := gather.ParseSubject(tt.in)
		if kind != tt.kind || id != tt.id || ok != tt.ok {
			t.Errorf("ParseSubject(%q) = %q, %d, %v", tt.in, kind, id, ok)
		}
	}
}

func TestRegionIDs(t *testing.T) {
	tests := []struct {
		subject  string
		evidence string
		want     []uint64
	}{
		{"region:7", `{"region_id":7,"peer_store_ids":[1,2]}`, []uint64{7}},
		{"store:1", `{"hottest_region_ids":[12,10,12],"hottest_region_bytes_per_sec":{"12":5}}`, []uint64{12, 10}},
		{"cluster", `{"sample_region_ids":[3,4],"offline_region_ids":[4,5]}`, []uint64{4, 5, 3}},
		{"cluster", `not json`, nil},
		{"region:9", `{"sample_region_ids":"oops"}`, []uint64{9}},
	}
	for _, tt := range tests {
		got := gather.RegionIDs(ticket.Ticket{Subject: tt.subject, Evidence: json.RawMessage(tt.evidence)})
		if !slices.Equal(got, tt.want) {
			t.Errorf("RegionIDs(%s, %s) = %v, want %v", tt.subject, tt.evidence, got, tt.want)
		}
	}
}

func TestExtremes(t *testing.T) {
	store := func(id uint64, state string, leaders int, labels ...pd.Label) pd.StoreInfo {
		return pd.StoreInfo{Store: pd.StoreMeta{ID: id, StateName: state, Labels: labels}, Status: pd.StoreStatus{LeaderCount: leaders}}
	}
	stores := []pd.StoreInfo{
		store(5, pd.StateUp, 3), store(2, pd.StateUp, 9), store(3, pd.StateUp, 3),
		store(4, pd.StateDown, 0), store(6, pd.StateUp, 0, pd.Label{Key: "engine", Value: "tiflash"}), store(7, pd.StateUp, 20),
	}
	leaders := func(s *pd.StoreInfo) int { return s.Status.LeaderCount }
	maxID, minID, ok := gather.Extremes(stores, []uint64{7}, leaders)
	if !ok || maxID != 2 || minID != 3 {
		t.Errorf("Extremes = %d, %d, %v; want 2, 3 (ties to the lower id; Down, TiFlash and excluded stores left out)", maxID, minID, ok)
	}
	if _, _, ok := gather.Extremes(stores[:1], nil, leaders); ok {
		t.Error("one store: ok")
	}
}
