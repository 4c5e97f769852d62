// Package iostreams holds the standard streams a command reads and writes,
// so tests can replace them with buffers (as GitHub CLI's pkg/iostreams),
// and what the commands need to know about the terminal: its width, and
// whether to colour.
package iostreams

import (
	"bytes"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/tikvops/operator/internal/safetext"
)

// IOStreams are a command's input, output and error output.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// ColorOut is Out without the escape-sequence filter, for the
	// operator's own colouring only: text written to it must already be
	// sanitised (safetext.Line), and only the colour codes of Colorize may
	// be added around it. nil when colour is off.
	ColorOut io.Writer
	// Width is the terminal width of Out in columns; 0 when Out is not a
	// terminal (no fitting: pipes get every column in full).
	Width int
	// IsTTY tells whether Out is a terminal.
	IsTTY bool
	// Terminal is Out without the filter when Out is a terminal, for the
	// operator's own control sequences (--watch clears the screen); nil
	// otherwise.
	Terminal io.Writer
}

// System returns the process's standard streams.
//
// Out and ErrOut drop terminal escape sequences and control characters
// (safetext.Writer): no string from a model or from PD can clear the
// screen or forge a line, whatever command prints it. Colour is on when
// stdout is a terminal, $NO_COLOR is unset or empty (https://no-color.org)
// and $TERM is not "dumb"; the width comes from the terminal (TIOCGWINSZ),
// else $COLUMNS.
func System() *IOStreams {
	ios := &IOStreams{In: os.Stdin, Out: safetext.Writer{W: os.Stdout}, ErrOut: safetext.Writer{W: os.Stderr}}
	fd := int(os.Stdout.Fd())
	ios.IsTTY = isTerminal(fd)
	if ios.IsTTY {
		ios.Width = terminalWidth(fd, os.Getenv)
		ios.Terminal = os.Stdout
		if ColorAllowed(os.Getenv) {
			ios.ColorOut = os.Stdout
		}
	}
	return ios
}

// ColorAllowed reports whether the environment allows colour: $NO_COLOR
// unset or empty, and $TERM not "dumb".
func ColorAllowed(getenv func(string) string) bool {
	return getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// ColorEnabled reports whether the command may colour its output.
func (s *IOStreams) ColorEnabled() bool { return s.ColorOut != nil }

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// terminalWidth is the width of the terminal on fd, else $COLUMNS, else 80.
func terminalWidth(fd int, getenv func(string) string) int {
	if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		return int(ws.Col)
	}
	if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
}

// ANSI SGR colours used for statuses and severities.
const (
	Red    = "31"
	Green  = "32"
	Yellow = "33"
	Blue   = "34"
	Gray   = "90"
)

// Colorize wraps s (already sanitised) in the SGR colour code when colour
// is enabled, else returns s unchanged.
func (s *IOStreams) Colorize(code, text string) string {
	if !s.ColorEnabled() || code == "" || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// Test returns streams backed by buffers: what the command reads from in,
// and what it writes to out and errOut. They are not a terminal: no
// colour, no width limit (tests set Width, IsTTY or ColorOut to test
// those).
func Test() (ios *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}
