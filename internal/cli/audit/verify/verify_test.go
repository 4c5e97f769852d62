package verify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/cli/cmdutil"
	"github.com/tikvops/operator/internal/store"
)

func TestVerifyOKThenTampered(t *testing.T) {
	db, st := clitest.DB(t)
	s := clitest.Seed(t, st)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := st.AppendRecord(ctx, action.Record{ProposalID: s.Proposal.ID, DryRun: true, Success: true,
			Message: "dry run", Requests: json.RawMessage(`[]`), FinishedAt: clitest.T0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	f, out, _ := clitest.Factory(t, db)
	opts := &VerifyOptions{IO: f.IOStreams, Store: f.Store, Format: cmdutil.FormatTable}
	if err := verifyRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "audit trail OK: 3 records") {
		t.Errorf("output: %s", out)
	}

	// Someone with write access drops the append-only triggers and edits
	// record 2.
	raw, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{`DROP TRIGGER action_records_no_update`, `UPDATE action_records SET message = 'nothing happened' WHERE id = 2`} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	out.Reset()
	err = verifyRun(ctx, opts)
	if !errors.Is(err, cmdutil.ErrVerifyFailed) || !strings.Contains(err.Error(), "record 2: edited") {
		t.Fatalf("err = %v", err)
	}
	opts.Format = cmdutil.FormatJSON
	out.Reset()
	_ = verifyRun(ctx, opts)
	var rep store.VerifyReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.OK || rep.Broken == nil || rep.Broken.ID != 2 {
		t.Errorf("json report %+v, %v:\n%s", rep, err, out)
	}
}
