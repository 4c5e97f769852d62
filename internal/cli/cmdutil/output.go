package cmdutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tikvops/operator/internal/cli/iostreams"
	"github.com/tikvops/operator/internal/safetext"
)

// PrintJSON writes v as indented JSON followed by a newline. "<", ">" and
// "&" are written as such, not as \u003c, \u003e, \u0026: the output is
// read by people and jq, never embedded in HTML.
func PrintJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	// json.RawMessage fields are copied as stored (with the escapes
	// json.Marshal wrote when they were stored): unescape those too.
	_, err := w.Write(unescapeHTML(b.Bytes()))
	return err
}

// unescapeHTML turns the \u003c, \u003e and \u0026 escapes of encoded JSON
// back into "<", ">" and "&" (valid JSON either way); other escapes, and
// an escaped backslash followed by "u003e", are kept as they are.
func unescapeHTML(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u00`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if i+5 < len(b) && b[i+1] == 'u' && b[i+2] == '0' && b[i+3] == '0' {
			switch strings.ToLower(string(b[i+4 : i+6])) {
			case "3c":
				out = append(out, '<')
				i += 5
				continue
			case "3e":
				out = append(out, '>')
				i += 5
				continue
			case "26":
				out = append(out, '&')
				i += 5
				continue
			}
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

// Table renders aligned columns, like pd-ctl's and kubectl's tables.
// Cells are single-line: newlines, tabs and control characters become
// spaces. A table made by NewTableIO fits the terminal's width (the widest
// columns are cut, ending with "…") unless wide, and colours the columns
// given to Color when the terminal allows colour.
type Table struct {
	w        io.Writer
	ios      *iostreams.IOStreams
	maxWidth int
	header   []string
	rows     [][]string
	colors   map[int]func(cell string) string
}

// NewTable returns a table writing to w with the given header; it neither
// fits a width nor colours.
func NewTable(w io.Writer, header ...string) *Table {
	return &Table{w: w, header: cells(header)}
}

// NewTableIO returns a table writing to ios.Out with the given header,
// cut to ios.Width columns (0: no limit) unless wide, and coloured when
// ios.ColorEnabled.
func NewTableIO(ios *iostreams.IOStreams, wide bool, header ...string) *Table {
	t := &Table{w: ios.Out, ios: ios, header: cells(header)}
	if !wide {
		t.maxWidth = ios.Width
	}
	return t
}

// Color makes column col (0-based) coloured by code(cell), an SGR code
// from iostreams (iostreams.Red) or "" for none. It has an effect only on
// tables made by NewTableIO with colour enabled.
func (t *Table) Color(col int, code func(cell string) string) {
	if t.colors == nil {
		t.colors = map[int]func(string) string{}
	}
	t.colors[col] = code
}

func cells(in []string) []string {
	out := make([]string, len(in))
	for i, c := range in {
		out[i] = Cell(c)
	}
	return out
}

// Row adds one row.
func (t *Table) Row(cells ...string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = Cell(c)
	}
	t.rows = append(t.rows, row)
}

// minColumn is the narrowest a column is cut to when fitting a width.
const minColumn = 6

// Widths returns the column widths (in runes) the table is rendered with:
// each column's widest cell, then, while the total with two-space gaps
// exceeds the width limit, the widest column cut by one (never below
// minColumn or its header). Exposed for tests.
func (t *Table) Widths() []int {
	all := t.all()
	n := 0
	for _, r := range all {
		n = max(n, len(r))
	}
	w := make([]int, n)
	for _, r := range all {
		for i, c := range r {
			w[i] = max(w[i], utf8.RuneCountInString(c))
		}
	}
	if t.maxWidth <= 0 || n == 0 {
		return w
	}
	floor := make([]int, n)
	for i := range w {
		h := 0
		if i < len(t.header) {
			h = utf8.RuneCountInString(t.header[i])
		}
		floor[i] = min(w[i], max(minColumn, h))
	}
	total := 2 * (n - 1)
	for _, x := range w {
		total += x
	}
	for total > t.maxWidth {
		widest := -1
		for i := range w {
			if w[i] > floor[i] && (widest < 0 || w[i] > w[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break // cannot fit: keep the floors
		}
		w[widest]--
		total--
	}
	return w
}

func (t *Table) all() [][]string {
	if len(t.header) == 0 {
		return t.rows
	}
	return append([][]string{t.header}, t.rows...)
}

// Flush writes the table out.
func (t *Table) Flush() error {
	widths := t.Widths()
	color := t.ios != nil && t.ios.ColorEnabled()
	out := t.w
	if color {
		out = t.ios.ColorOut
	}
	var b strings.Builder
	for ri, r := range t.all() {
		for i, c := range r {
			c = Truncate(c, widths[i])
			pad := widths[i] - utf8.RuneCountInString(c)
			if color {
				// The raw stream has no filter: sanitise here, then add
				// only our own colour codes.
				c = safetext.Line(c, len(c)+len(safetext.Truncated)+1)
				if f := t.colors[i]; f != nil && (ri > 0 || len(t.header) == 0) {
					c = t.ios.Colorize(f(c), c)
				}
			}
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", pad+2))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// Cell makes s fit in one table cell: newlines, tabs and control
// characters become spaces.
func Cell(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// Truncate shortens s to at most n runes, ending with "…" when cut.
func Truncate(s string, n int) string {
	r := []rune(s)
	if n <= 0 || len(r) <= n {
		return s
	}
	if n == 1 {
		return "…"
	}
	return string(r[:n-1]) + "…"
}

// Ago renders the time from t to now compactly for tables: "45s ago",
// "12m ago", "3h ago", "2d ago"; a time in the future (a retry, an
// expiry) is "in 45s", "in 5m"; "-" for the zero time.
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + compact(-d)
	}
	return compact(d) + " ago"
}

func compact(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// Stamp renders t for detail views: local time to the second with its
// offset, plus how long ago or how far ahead; "-" for the zero time.
func Stamp(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 -0700") + " (" + Ago(t, now) + ")"
}

// CompactJSON renders raw JSON on one line, keys and numbers as stored
// ("{}" for empty input); input that is not JSON is returned as is.
func CompactJSON(raw []byte) string {
	if len(raw) == 0 {
		return "{}"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return string(unescapeHTML(b.Bytes()))
}

// IndentJSON renders raw JSON indented, every line starting with prefix,
// for detail views; input that is not JSON is returned as is.
func IndentJSON(raw []byte, prefix string) string {
	if len(raw) == 0 {
		return prefix + "{}"
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, prefix, "  "); err != nil {
		return prefix + string(raw)
	}
	return prefix + string(unescapeHTML(b.Bytes()))
}

// Bin is how the user ran the operator, for the "Next:" hints: the path
// they typed (bin/operator) when it was a relative or absolute path, else
// "operator" (found on $PATH).
func Bin() string {
	if len(os.Args) == 0 || os.Args[0] == "" {
		return "operator"
	}
	a := os.Args[0]
	if !strings.ContainsRune(a, filepath.Separator) || strings.HasSuffix(a, ".test") {
		return "operator"
	}
	return a
}
