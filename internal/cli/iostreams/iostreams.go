// Package iostreams holds the standard streams a command reads and writes,
// so tests can replace them with buffers (as GitHub CLI's pkg/iostreams).
package iostreams

import (
	"github.com/tikvops/operator/internal/safetext"

	"bytes"
	"io"
	"os"
)

// IOStreams are a command's input, output and error output.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// System returns the process's standard streams.
//
// Out and ErrOut drop terminal escape sequences and control characters
// (safetext.Writer): no string from a model or from PD can clear the
// screen or forge a line, whatever command prints it.
func System() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: safetext.Writer{W: os.Stdout}, ErrOut: safetext.Writer{W: os.Stderr}}
}

// Test returns streams backed by buffers: what the command reads from in,
// and what it writes to out and errOut.
func Test() (ios *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}
