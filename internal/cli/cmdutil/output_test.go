package cmdutil

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/cli/iostreams"
)

func TestJSONKeepsComparisonSigns(t *testing.T) {
	stored, _ := json.Marshal(map[string]string{"rule": "diff > threshold && a < b", "path": `C:\u003e`})
	if !bytes.Contains(stored, []byte(`\u003e`)) {
		t.Fatalf("json.Marshal no longer escapes: %s", stored)
	}
	for name, got := range map[string]string{
		"IndentJSON":  IndentJSON(stored, ""),
		"CompactJSON": CompactJSON(stored),
	} {
		if !strings.Contains(got, `diff > threshold && a < b`) || strings.Contains(got, `\u003e threshold`) {
			t.Errorf("%s: %s", name, got)
		}
		// An escaped backslash followed by "u003e" is text, not an escape.
		if !strings.Contains(got, `C:\\u003e`) {
			t.Errorf("%s changed an escaped backslash: %s", name, got)
		}
		var v map[string]string
		if err := json.Unmarshal([]byte(got), &v); err != nil || v["path"] != `C:\u003e` {
			t.Errorf("%s: not the same JSON: %v %q", name, err, v["path"])
		}
	}
	var b bytes.Buffer
	if err := PrintJSON(&b, map[string]any{"evidence": json.RawMessage(stored), "s": "a > b"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `\u003e threshold`) || strings.Contains(b.String(), `\u003e b`) {
		t.Errorf("PrintJSON escapes >:\n%s", b.String())
	}
}

func TestAgoFuture(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		-45 * time.Second: "45s ago",
		-12 * time.Minute: "12m ago",
		5 * time.Minute:   "in 5m",
		30 * time.Second:  "in 30s",
		3 * time.Hour:     "in 3h",
	} {
		if got := Ago(now.Add(d), now); got != want {
			t.Errorf("Ago(now%+v) = %q, want %q", d, got, want)
		}
	}
	if s := Stamp(now.Add(5*time.Minute), now); !strings.HasSuffix(s, "(in 5m)") {
		t.Errorf("Stamp of a future time = %q", s)
	}
}

func TestTableFit(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	ios.Width = 40
	tw := NewTableIO(ios, false, "ID", "STATUS", "SUMMARY")
	tw.Row("1", "open", strings.Repeat("x", 80))
	tw.Row("22", "resolved", "short")
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	for _, l := range lines {
		if n := len([]rune(l)); n > 40 {
			t.Errorf("line of %d runes: %q", n, l)
		}
	}
	if !strings.HasSuffix(lines[1], "…") || !strings.HasPrefix(lines[2], "22  resolved") {
		t.Errorf("table:\n%s", out)
	}
	out.Reset()
	tw = NewTableIO(ios, true, "ID", "SUMMARY")
	tw.Row("1", strings.Repeat("x", 80))
	_ = tw.Flush()
	if strings.Contains(out.String(), "…") {
		t.Errorf("wide table cut:\n%s", out)
	}
}

func TestTableColourSanitises(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	var raw bytes.Buffer
	ios.ColorOut = &raw
	tw := NewTableIO(ios, false, "STATUS", "SUMMARY")
	tw.Color(0, StatusColor)
	tw.Row("failed", "evil \x1b[2J\u202etext")
	_ = tw.Flush()
	s := raw.String()
	if !strings.Contains(s, "\x1b[31mfailed\x1b[0m") {
		t.Errorf("no colour: %q", s)
	}
	if strings.Contains(s, "\x1b[2J") || strings.Contains(s, "\u202e") {
		t.Errorf("untrusted escape reached the raw stream: %q", s)
	}
}

func TestColorAllowed(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if !iostreams.ColorAllowed(env(map[string]string{"TERM": "xterm"})) {
		t.Error("colour refused on xterm")
	}
	if iostreams.ColorAllowed(env(map[string]string{"NO_COLOR": "1", "TERM": "xterm"})) {
		t.Error("colour with NO_COLOR")
	}
	if iostreams.ColorAllowed(env(map[string]string{"TERM": "dumb"})) {
		t.Error("colour on a dumb terminal")
	}
}

func TestBin(t *testing.T) {
	old := os.Args[0]
	defer func() { os.Args[0] = old }()
	os.Args[0] = "bin/operator"
	if Bin() != "bin/operator" {
		t.Errorf("Bin() = %q", Bin())
	}
	os.Args[0] = "operator"
	if Bin() != "operator" {
		t.Errorf("Bin() = %q", Bin())
	}
}
