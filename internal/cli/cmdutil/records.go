package cmdutil

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tikvops/operator/internal/action"
)

// RecordTable prints audit records as a table (`tickets show`,
// `actions show`, `audit list`).
func RecordTable(w io.Writer, recs []action.Record, now time.Time) error {
	tw := NewTable(w, "RECORD", "ACTION", "TICKET", "KIND", "RESULT", "FINISHED", "APPROVED BY", "EXECUTED BY", "MESSAGE")
	for _, r := range recs {
		kind := "execution"
		if r.DryRun {
			kind = "dry-run"
		}
		result := RecordResult(r)
		tw.Row(strconv.FormatInt(r.ID, 10), fmt.Sprintf("#%d %s", r.ProposalID, r.ActionType), "#"+strconv.FormatInt(r.TicketID, 10),
			kind, result, Ago(r.FinishedAt, now), dash(r.ApprovedBy), dash(r.ExecutedBy), Truncate(r.Message, 80))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RecordResult is a record's verdict for humans: "ok" or "failed" for an
// execution, "valid" or "invalid" for a dry run (a dry-run record's
// Success is the dry run's verdict).
func RecordResult(r action.Record) string {
	if r.DryRun {
		if r.Success {
			return "valid"
		}
		return "invalid"
	}
	if r.Success {
		return "ok"
	}
	return "failed"
}
