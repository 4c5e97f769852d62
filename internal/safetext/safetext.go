// Package safetext makes untrusted text inert: strings that come from a
// model or from PD (rationales, diagnoses, store labels and addresses,
// error bodies) are stripped of terminal escape sequences and control,
// bidirectional-override and zero-width characters, and bounded in size,
// before they are stored or shown. A rationale can then never clear a
// terminal, move the cursor, or print a fake "approved" line.
package safetext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits used across the operator (bytes).
const (
	// MaxLine bounds a one-line value (a name, a label, an address).
	MaxLine = 256
	// MaxText bounds a paragraph (a rationale, a risk, a reason).
	MaxText = 8 << 10
	// MaxDoc bounds a document (a diagnosis in markdown).
	MaxDoc = 64 << 10
)

// Truncated ends a value that was cut at its bound.
const Truncated = "…[truncated]"

// Line returns s on one line: Text with newlines and tabs turned into
// spaces, bounded to max bytes (MaxLine when max <= 0).
func Line(s string, max int) string {
	if max <= 0 {
		max = MaxLine
	}
	return clean(s, max, false)
}

// Text returns s with escape sequences and every control character but
// newline and tab removed (so are bidi overrides, zero-width and other
// format characters), invalid UTF-8 replaced, bounded to max bytes
// (MaxText when max <= 0) with Truncated appended when cut.
func Text(s string, max int) string {
	if max <= 0 {
		max = MaxText
	}
	return clean(s, max, true)
}

// Safe reports whether s is unchanged by Text with no bound: it has no
// escape sequence, control, bidi or zero-width character.
func Safe(s string) bool { return clean(s, len(s)+len(Truncated)+1, true) == s }

func clean(s string, max int, multiline bool) string {
	if isPlain(s, multiline) {
		return bound(s, max)
	}
	var b strings.Builder
	b.Grow(min(len(s), max+len(Truncated)))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			if c := s[i]; c >= 0x80 && c <= 0x9f {
				r = rune(c) // a raw C1 control byte: handled as one below
			} else {
				b.WriteRune(unicode.ReplacementChar)
				i++
				continue
			}
		}
		if r == 0x1b { // ESC: drop the whole sequence (CSI, OSC, or one char)
			i += escLen(s[i:])
			continue
		}
		if r == 0x9b { // C1 CSI
			i += size
			for i < len(s) && !(s[i] >= 0x40 && s[i] <= 0x7e) {
				i++
			}
			if i < len(s) {
				i++
			}
			continue
		}
		i += size
		switch {
		case r == '\n' || r == '\t':
			if multiline {
				b.WriteRune(r)
			} else {
				b.WriteByte(' ')
			}
		case r == '\r':
			// dropped: a carriage return can overwrite a line on a terminal
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == 0x2028, r == 0x2029:
			// C0/C1 controls, bidi overrides, zero-width and other format characters
		default:
			b.WriteRune(r)
		}
	}
	return bound(b.String(), max)
}

func isPlain(s string, multiline bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return false // check non-ASCII the slow way
		}
		if c < 0x20 || c == 0x7f {
			if multiline && (c == '\n' || c == '\t') {
				continue
			}
			return false
		}
	}
	return true
}

// escLen returns the length of the escape sequence at the start of s
// (which starts with ESC).
func escLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[': // CSI: parameters and intermediates, then a final byte 0x40-0x7e
		i := 2
		for i < len(s) && !(s[i] >= 0x40 && s[i] <= 0x7e) {
			i++
		}
		return min(i+1, len(s))
	case ']', 'P', '_', '^': // OSC, DCS, APC, PM: until BEL or ESC \
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	}
	return 2
}

// bound cuts s to at most max bytes on a rune boundary.
func bound(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(Truncated)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + Truncated
}

// Writer filters everything written through it with Text (no bound): the
// CLI wraps its output streams in one, so no string from a model or from
// PD can reach the terminal as an escape sequence, whatever command
// prints it.
type Writer struct {
	W interface{ Write([]byte) (int, error) }
}

// Write writes the cleaned p and reports len(p) on success.
func (w Writer) Write(p []byte) (int, error) {
	s := string(p)
	if !isPlain(s, true) {
		s = clean(s, len(s)+len(Truncated)+1, true)
	}
	if _, err := w.W.Write([]byte(s)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Masked replaces a secret in text.
const Masked = "****"

// minSecret is the shortest value Mask replaces: shorter ones would mask
// ordinary words.
const minSecret = 6

// Mask returns s with every occurrence of each secret (API keys, tokens,
// URL passwords; values shorter than 6 bytes are ignored) replaced by
// "****": a provider whose error body echoes the key sent, or a URL with
// a password, does not leak them into logs or the database.
func Mask(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= minSecret && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Masked)
		}
	}
	return s
}
