package cmdutil

import "github.com/tikvops/operator/internal/cli/iostreams"

// StatusColor is the colour of a ticket or action status in tables:
// red for what needs a human or failed (open, failed), yellow for what
// waits (diagnosed, proposed, dry_run), blue for what is under way
// (approved, executing), green for done (resolved, completed), gray for
// what ended without effect (rejected, expired); "" for anything else.
func StatusColor(status string) string {
	switch status {
	case "open", "failed", "refused":
		return iostreams.Red
	case "diagnosed", "proposed", "dry_run":
		return iostreams.Yellow
	case "approved", "executing":
		return iostreams.Blue
	case "resolved", "completed":
		return iostreams.Green
	case "rejected", "expired":
		return iostreams.Gray
	}
	return ""
}

// SeverityColor is the colour of a ticket severity: red for critical and
// emergency, yellow for warning; "" for anything else.
func SeverityColor(sev string) string {
	switch sev {
	case "critical", "emergency":
		return iostreams.Red
	case "warning":
		return iostreams.Yellow
	}
	return ""
}

// ResultColor is the colour of an audit record's result (RecordResult):
// green for ok, valid and approved, red for failed and invalid, gray for
// rejected.
func ResultColor(result string) string {
	switch result {
	case "ok", "valid", "approved":
		return iostreams.Green
	case "failed", "invalid":
		return iostreams.Red
	case "rejected":
		return iostreams.Gray
	}
	return ""
}
