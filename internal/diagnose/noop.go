package diagnose

import (
	"context"
	"errors"
)

// NoopReason is the NoActionReason of every Noop diagnosis.
const NoopReason = "no action: a human must look (the noop diagnosis backend makes no diagnosis)"

// Noop is a Backend that diagnoses nothing: every ticket gets a low
// confidence diagnosis without a proposal, asking a human to look. It is
// meant for tests and for configurations that want tickets without any
// automated diagnosis.
type Noop struct{}

// Name returns "noop".
func (Noop) Name() string { return "noop" }

// Diagnose returns a diagnosis restating the ticket, with NoActionReason
// NoopReason. It fails only for a nil c.
func (n Noop) Diagnose(ctx context.Context, c *Context) (*Diagnosis, error) {
	if c == nil {
		return nil, errors.New("diagnose: noop: nil context")
	}
	t := c.Ticket
	summary := t.Summary
	if summary == "" {
		summary = t.Key
	}
	return &Diagnosis{
		Summary:        summary,
		RootCause:      "Not diagnosed: the noop backend does not analyse tickets.",
		Evidence:       []string{"invariant " + t.Invariant + " violated on " + t.Subject},
		Confidence:     ConfidenceLow,
		Risks:          []string{},
		NoActionReason: NoopReason,
		Backend:        n.Name(),
	}, nil
}
