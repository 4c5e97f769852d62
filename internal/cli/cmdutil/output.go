package cmdutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// PrintJSON writes v as indented JSON followed by a newline.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	return nil
}

// Table renders aligned columns with text/tabwriter, like pd-ctl's and
// kubectl's tables. Cells are single-line: newlines and tabs become spaces.
type Table struct {
	tw *tabwriter.Writer
}

// NewTable returns a table writing to w with the given header.
func NewTable(w io.Writer, header ...string) *Table {
	t := &Table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.Row(header...)
	}
	return t
}

// Row adds one row.
func (t *Table) Row(cells ...string) {
	for i, c := range cells {
		cells[i] = Cell(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// Flush writes the table out.
func (t *Table) Flush() error { return t.tw.Flush() }

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
// "12m ago", "3h ago", "2d ago"; "-" for the zero time.
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

// Stamp renders t for detail views: local time to the second with its
// offset, plus how long ago; "-" for the zero time.
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
	return b.String()
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
	return prefix + b.String()
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
