package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/ticket"
)

// BenchmarkObserve measures the monitor's steady state: a persisting
// violation observed again (UPDATE ... RETURNING of the open ticket, one
// durable transaction), on a real file with synchronous=FULL.
func BenchmarkObserve(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	o := ticket.Observation{
		Invariant: "store_down", Subject: "store:4", Severity: ticket.Critical,
		Summary:  "store 4 is Down for 31m",
		Evidence: json.RawMessage(`{"store_id":4,"state_name":"Down","down_for_s":1860,"max_store_down_time_s":1800}`),
	}
	if _, _, err := s.Observe(ctx, o, t0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, err := s.Observe(ctx, o, t0.Add(time.Duration(i)*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObserveNew measures opening a new ticket per call (a key not
// seen before: failed UPDATE, then INSERT ... RETURNING).
func BenchmarkObserveNew(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		o := ticket.Observation{Invariant: "region_down_peer", Subject: fmt.Sprintf("region:%d", i),
			Severity: ticket.Warning, Evidence: json.RawMessage(`{"down_peers":1}`)}
		if _, _, err := s.Observe(ctx, o, t0); err != nil {
			b.Fatal(err)
		}
	}
}
