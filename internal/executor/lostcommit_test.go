package executor

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/store"
)

// A COMMIT that landed but whose answer was lost (PostgreSQL restarted
// under it) makes record() retry and meet the status it already wrote: the
// executor recognises its own execution record and appends no "late
// outcome" duplicate. Found by the PostgreSQL restart-under-load test.
func TestOwnOutcomeStored(t *testing.T) {
	st := tempStore(t)
	ctx := ctxT(t, time.Minute)
	p := propose(t, st, "good", map[string]int{"region_id": 4, "to_store_id": 1}, time.Time{})
	if _, err := st.Approve(ctx, p.ID, "alice", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimID(ctx, p.ID, "daemon", time.Now()); err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC().Truncate(time.Millisecond)
	rec := action.Record{StartedAt: started, ExecutedBy: "daemon", Requests: json.RawMessage(`[]`), Message: "done", Success: true}
	if _, err := st.Finish(ctx, p.ID, action.Completed, "done", rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	e := New(Options{Store: st, Catalog: action.NewCatalog(), Logger: testLogger(t)})
	if !e.ownOutcomeStored(ctx, p.ID, rec) {
		t.Error("the committed execution record is not recognised as this execution's")
	}
	other := rec
	other.StartedAt = started.Add(time.Second)
	if e.ownOutcomeStored(ctx, p.ID, other) {
		t.Error("another execution's outcome is taken for this one's")
	}
	other = rec
	other.ExecutedBy = "replica-2"
	if e.ownOutcomeStored(ctx, p.ID, other) {
		t.Error("another executor's outcome is taken for this one's")
	}
	// record() itself: a retry that meets the committed status appends
	// nothing.
	before, _ := st.Records(ctx, store.RecordFilter{ProposalID: p.ID})
	e.recordFrom(ctx, p, action.Completed, "done", rec, nil, 2)
	after, _ := st.Records(ctx, store.RecordFilter{ProposalID: p.ID})
	if len(after) != len(before) {
		t.Errorf("records %d -> %d: a duplicate outcome was appended", len(before), len(after))
	}
}
