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
		kind, result := "execution", "failed"
		if r.DryRun {
			kind = "dry-run"
		}
		if r.Success {
			result = "ok"
			if r.DryRun {
				result = "valid"
			}
		} else if r.DryRun {
			result = "invalid"
		}
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
