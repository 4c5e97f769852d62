package diagnose

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// Markdown renders d for humans (`operator tickets show`): summary,
// confidence, root cause, evidence, risks, then either the proposed action
// with its params, rationale, urgency and dry run, or the reason no action
// is proposed. Text written by a model is printed verbatim except for
// control characters (terminal escape sequences), which are dropped.
func (d *Diagnosis) Markdown() string {
	if d == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Diagnosis: %s\n\n", oneLine(d.Summary))
	fmt.Fprintf(&b, "- Confidence: %s\n", clean(string(d.Confidence)))
	if d.Backend != "" {
		fmt.Fprintf(&b, "- Backend: %s\n", clean(d.Backend))
	}
	if d.FallbackFrom != "" {
		fmt.Fprintf(&b, "- Fallback: diagnosed by %s because %s\n", clean(d.Backend), oneLine(d.FallbackFrom))
	}
	if d.Usage.Total() > 0 {
		fmt.Fprintf(&b, "- Tokens: %d input, %d output\n", d.Usage.InputTokens, d.Usage.OutputTokens)
	}
	b.WriteString("\n### Root cause\n\n")
	b.WriteString(orNone(clean(d.RootCause)))
	b.WriteString("\n")

	writeList(&b, "Evidence", d.Evidence)
	writeList(&b, "Risks", d.Risks)

	switch {
	case d.ProposedAction != nil:
		b.WriteString("\n### Proposed action\n\n")
		writeAction(&b, d.ProposedAction)
		if d.DryRun != nil {
			writeDryRun(&b, d)
		}
		b.WriteString("\nThis action runs only after a human approves it.\n")
	default:
		b.WriteString("\n### No action\n\n")
		b.WriteString(orNone(clean(d.NoActionReason)))
		b.WriteString("\n")
		if d.RejectedAction != nil {
			b.WriteString("\nRejected proposal (kept for reference, never executed):\n\n")
			writeAction(&b, d.RejectedAction)
		}
	}
	return b.String()
}

func writeList(b *strings.Builder, title string, items []string) {
	fmt.Fprintf(b, "\n### %s\n\n", title)
	if len(items) == 0 {
		b.WriteString("(none)\n")
		return
	}
	for _, it := range items {
		fmt.Fprintf(b, "- %s\n", oneLine(it))
	}
}

func writeAction(b *strings.Builder, pa *ProposedAction) {
	fmt.Fprintf(b, "- Action: `%s`\n", oneLine(pa.ActionType))
	fmt.Fprintf(b, "- Urgency: %s\n", oneLine(string(pa.Urgency)))
	fmt.Fprintf(b, "- Params: `%s`\n", oneLine(compactJSON(pa.Params)))
	fmt.Fprintf(b, "- Rationale: %s\n", oneLine(pa.Rationale))
}

func writeDryRun(b *strings.Builder, d *Diagnosis) {
	dr := d.DryRun
	verdict := "valid"
	if !dr.Valid {
		verdict = "not valid"
	}
	fmt.Fprintf(b, "\nDry run: %s", verdict)
	if dr.Message != "" {
		fmt.Fprintf(b, " (%s)", oneLine(dr.Message))
	}
	b.WriteString("\n")
	for _, c := range dr.Preconditions {
		mark := "ok"
		if !c.Passed {
			mark = "FAILED"
		}
		fmt.Fprintf(b, "- [%s] %s: %s\n", mark, oneLine(c.Name), oneLine(c.Detail))
	}
	for _, w := range dr.Warnings {
		fmt.Fprintf(b, "- warning: %s\n", oneLine(w))
	}
	if len(dr.Requests) > 0 {
		b.WriteString("\nPD requests an execution would send:\n\n```\n")
		for _, r := range dr.Requests {
			b.WriteString(clean(r.String()))
			b.WriteString("\n")
		}
		b.WriteString("```\n")
	}
}

func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return string(raw)
	}
	return buf.String()
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(none)"
	}
	return s
}

// clean drops control characters except newlines and tabs, so that text a
// model wrote cannot carry terminal escape sequences.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// oneLine is clean plus newlines folded to spaces, for list items.
func oneLine(s string) string {
	return strings.Join(strings.Fields(clean(s)), " ")
}
