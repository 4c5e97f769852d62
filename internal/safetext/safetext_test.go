package safetext

import (
	"strings"
	"testing"
)

func TestTextStripsWhatATerminalWouldObey(t *testing.T) {
	cases := map[string]string{
		"plain\nline\ttab":                         "plain\nline\ttab",
		"\x1b[2J\x1b[Hcleared":                     "cleared",
		"\x1b[32mapproved by security team\x1b[0m": "approved by security team",
		"\x1b]0;title\x07x":                        "x",
		"a\rb":                                     "ab",
		"bob\u200b":                                "bob",
		"\u202eevil":                               "evil",
		"nul\x00byte\x7f":                          "nulbyte",
		"\x9b31mred":                               "red",
		"\u009b31mred":                             "red",
		"ok ünïcode ✓":                             "ok ünïcode ✓",
		string([]byte{0xff, 'a'}):                  "\ufffda",
		"\x1b[1;31;40mX\x1b[K\x1bc\x1bP+q\x1b\\Y": "XY",
	}
	for in, want := range cases {
		if got := Text(in, 0); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Line("a\nb\tc", 0); got != "a b c" {
		t.Errorf("Line = %q", got)
	}
}

func TestBounded(t *testing.T) {
	big := strings.Repeat("é", 5<<20)
	got := Text(big, MaxText)
	if len(got) > MaxText || !strings.HasSuffix(got, Truncated) {
		t.Errorf("len %d, suffix %q", len(got), got[len(got)-20:])
	}
	if !Safe("fine text\n") || Safe("\x1b[2J") {
		t.Error("Safe")
	}
}
