package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/ticket"
)

// BenchmarkSweepHistory measures the monitor's resolve step (Sweep over
// every invariant) with 20 open tickets, on a fresh database and on one
// holding 100,000 resolved tickets (issue 17: the cycle must stay within
// 1.2x of a fresh database's).
//
//	go test -run '^$' -bench BenchmarkSweepHistory ./internal/store/
//
// The case "resolved=100000/pruned" holds the same 100,000 tickets,
// resolved 200 days ago, and runs the retention policy (Prune at 90 days)
// before measuring; each iteration is the monitor's store work of one
// cycle: Observe the 20 firing violations, OpenTicketKeys, Sweep.
func BenchmarkSweepHistory(b *testing.B) {
	for _, cs := range []struct {
		old   int
		prune bool
	}{{0, false}, {100000, false}, {100000, true}} {
		old := cs.old
		name := fmt.Sprintf("resolved=%d", old)
		if cs.prune {
			name += "/pruned"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			st, err := Open(ctx, filepath.Join(b.TempDir(), "t.db"), Options{Create: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			if old > 0 {
				tx, err := st.db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				ts := fmtTime(now.Add(-24 * time.Hour))
				if cs.prune {
					ts = fmtTime(now.Add(-200 * 24 * time.Hour))
				}
				for i := range old {
					if _, err := tx.ExecContext(ctx, `INSERT INTO tickets (key, invariant, subject, severity, summary, evidence, status, first_seen, last_seen, updated_at, resolved_at)
VALUES (?, 'store_down', ?, 'warning', 's', '{}', 'resolved', ?, ?, ?, ?)`,
						fmt.Sprintf("store_down/store:%d", i), fmt.Sprintf("store:%d", i), ts, ts, ts, ts); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			for i := range 20 {
				obs := ticket.Observation{Invariant: "store_down", Subject: fmt.Sprintf("store:open%d", i), Severity: ticket.Warning, Summary: "s", Evidence: []byte(`{}`)}
				if _, _, err := st.Observe(ctx, obs, now); err != nil {
					b.Fatal(err)
				}
			}
			violated := map[string]bool{}
			for i := range 20 {
				violated[fmt.Sprintf("store_down/store:open%d", i)] = true
			}
			if cs.prune {
				start := time.Now()
				rep, err := st.Prune(ctx, now.Add(-90*24*time.Hour))
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("prune: %+v in %s", rep, time.Since(start).Round(time.Millisecond))
			}
			obsOf := func(i int) ticket.Observation {
				return ticket.Observation{Invariant: "store_down", Subject: fmt.Sprintf("store:open%d", i), Severity: ticket.Warning, Summary: "s", Evidence: []byte(`{}`)}
			}
			b.ResetTimer()
			for b.Loop() {
				for i := range 20 {
					if _, _, err := st.Observe(ctx, obsOf(i), now); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := st.OpenTicketKeys(ctx); err != nil {
					b.Fatal(err)
				}
				if _, err := st.Sweep(ctx, []string{"store_down", "store_disconnected"}, violated, now, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
