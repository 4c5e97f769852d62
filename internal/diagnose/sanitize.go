package diagnose

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds Sanitize applies to a Diagnosis before it is stored. Model and PD
// strings are untrusted: a diagnosis can never grow without bound.
const (
	MaxSummaryBytes   = 300
	MaxTextBytes      = 4000 // root cause, rationale, no-action reason
	MaxItemBytes      = 1000 // one evidence or risk line
	MaxItems          = 40   // evidence or risk lines
	MaxBackendBytes   = 200
	maxSourceErrBytes = 300
)

// Sanitize bounds every string of d and strips control characters
// (terminal escapes, NUL) except newlines and tabs in long text; the
// summary and list items become one line. Params are left to Validate
// (they are checked against the catalog). It returns d.
func Sanitize(d *Diagnosis) *Diagnosis {
	if d == nil {
		return nil
	}
	d.Summary = Clean(d.Summary, MaxSummaryBytes, false)
	d.RootCause = Clean(d.RootCause, MaxTextBytes, true)
	d.NoActionReason = Clean(d.NoActionReason, MaxTextBytes, true)
	d.Backend = Clean(d.Backend, MaxBackendBytes, false)
	d.FallbackFrom = Clean(d.FallbackFrom, MaxTextBytes, false)
	d.Evidence = cleanList(d.Evidence)
	d.Risks = cleanList(d.Risks)
	for _, pa := range []*ProposedAction{d.ProposedAction, d.RejectedAction} {
		if pa != nil {
			pa.ActionType = Clean(pa.ActionType, 64, false)
			pa.Rationale = Clean(pa.Rationale, MaxTextBytes, true)
		}
	}
	return d
}

func cleanList(items []string) []string {
	if items == nil {
		return nil
	}
	n := min(len(items), MaxItems)
	out := make([]string, 0, n+1)
	for _, s := range items[:n] {
		out = append(out, Clean(s, MaxItemBytes, false))
	}
	if len(items) > n {
		out = append(out, "... (more lines dropped)")
	}
	return out
}

// Clean returns s without control characters (newlines and tabs kept
// when multiline, else turned into spaces), invalid UTF-8 replaced, and
// cut to at most n bytes on a rune boundary with "..." appended when cut.
func Clean(s string, n int, multiline bool) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			if multiline {
				return r
			}
			return ' '
		case r == '\r':
			return -1
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r):
			return -1
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// CleanSourceErrors returns errs with every message cleaned and bounded
// (PD error bodies are untrusted text), nil when errs is empty.
func CleanSourceErrors(errs map[string]string) map[string]string {
	if len(errs) == 0 {
		return nil
	}
	out := make(map[string]string, len(errs))
	for k, v := range errs {
		out[Clean(k, 100, false)] = Clean(v, maxSourceErrBytes, false)
	}
	return out
}
