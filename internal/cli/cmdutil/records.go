package cmdutil

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/cli/iostreams"
)

// RecordTable prints audit records as a table (`tickets show`,
// `actions show`, `audit list`).
func RecordTable(w io.Writer, recs []action.Record, now time.Time) error {
	return recordTable(NewTable(w, recordHeader...), recs, now, false)
}

// RecordTableIO prints audit records as a table fitted to ios' terminal
// width unless wide, with results coloured when colour is enabled
// (`audit list`).
func RecordTableIO(ios *iostreams.IOStreams, wide bool, recs []action.Record, now time.Time) error {
	tw := NewTableIO(ios, wide, recordHeader...)
	tw.Color(4, ResultColor)
	return recordTable(tw, recs, now, wide)
}

// RecordTableClusters is RecordTableIO with a CLUSTER column (the
// record's cluster name from scope), for a database holding several
// clusters.
func RecordTableClusters(ios *iostreams.IOStreams, wide bool, recs []action.Record, now time.Time, scope ClusterScope) error {
	tw := NewTableIO(ios, wide, append([]string{recordHeader[0], "CLUSTER"}, recordHeader[1:]...)...)
	tw.Color(5, ResultColor)
	return recordRows(tw, recs, now, wide, func(r action.Record) string { return scope.Name(r.ClusterID) })
}

var recordHeader = []string{"RECORD", "ACTION", "TICKET", "KIND", "RESULT", "FINISHED", "APPROVED BY", "EXECUTED BY", "MESSAGE"}

func recordTable(tw *Table, recs []action.Record, now time.Time, wide bool) error {
	return recordRows(tw, recs, now, wide, nil)
}

// recordRows prints recs into tw, with cluster's cell second when cluster
// is not nil.
func recordRows(tw *Table, recs []action.Record, now time.Time, wide bool, cluster func(action.Record) string) error {
	msgMax := 80
	if wide {
		msgMax = 0
	}
	for _, r := range recs {
		result := RecordResult(r)
		cells := []string{strconv.FormatInt(r.ID, 10), fmt.Sprintf("#%d %s", r.ProposalID, r.ActionType), "#" + strconv.FormatInt(r.TicketID, 10),
			RecordKind(r), result, Ago(r.FinishedAt, now), dash(r.ApprovedBy), dash(r.ExecutedBy), Truncate(r.Message, msgMax)}
		if cluster != nil {
			cells = append([]string{cells[0], cluster(r)}, cells[1:]...)
		}
		tw.Row(cells...)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RecordKind is what a record attests, for humans: "execution",
// "dry-run", "approval" or "rejection" (records written before events
// existed are told apart by DryRun).
func RecordKind(r action.Record) string {
	switch {
	case r.DryRun || r.Event == action.EventDryRun:
		return "dry-run"
	case r.Event == action.EventApproval, r.Event == action.EventRejection, r.Event == action.EventRevert:
		return r.Event
	}
	return "execution"
}

// RecordResult is a record's verdict for humans: "ok" or "failed" for an
// execution, "valid" or "invalid" for a dry run (a dry-run record's
// Success is the dry run's verdict), "approved" or "rejected" for an
// approval or a rejection record.
func RecordResult(r action.Record) string {
	switch r.Event {
	case action.EventApproval:
		return "approved"
	case action.EventRejection:
		return "rejected"
	}
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
