package llm

import (
	"fmt"

	"github.com/tikvops/operator/internal/diagnose"
)

// DefaultBudget is the per-ticket token budget (input+output) when none is
// configured.
const DefaultBudget = 50_000

// MinOutputTokens is the smallest max_tokens worth sending: below it a
// diagnosis cannot be written, so the budget counts as exhausted.
const MinOutputTokens = 256

// Budget tracks the tokens one diagnosis spends against a limit.
type Budget struct {
	// Limit is the most input+output tokens the diagnosis may spend.
	Limit int64
	// Used is what the requests made so far consumed, as the provider
	// reported it.
	Used diagnose.Usage
}

// NewBudget returns a budget of the configured limit, lowered to c.Budget
// when that is smaller and positive; configured <= 0 means DefaultBudget.
func NewBudget(configured int64, c *diagnose.Context) *Budget {
	limit := configured
	if limit <= 0 {
		limit = DefaultBudget
	}
	if c != nil && c.Budget > 0 && c.Budget < limit {
		limit = c.Budget
	}
	return &Budget{Limit: limit}
}

// Remaining returns the tokens left (never negative).
func (b *Budget) Remaining() int64 { return max(0, b.Limit-b.Used.Total()) }

// Add records a response's usage.
func (b *Budget) Add(u diagnose.Usage) { b.Used = b.Used.Add(u) }

// Plan decides the next request: its max_tokens (at most maxTokens and what
// the budget leaves after the estimated input), and whether it must be the
// last one (force submit_diagnosis) because another turn of the same size
// would not fit. It returns an error wrapping diagnose.ErrBudget when even
// MinOutputTokens does not fit.
func (b *Budget) Plan(estInput, maxTokens int64) (next int64, last bool, err error) {
	rem := b.Remaining()
	avail := rem - estInput
	if avail < MinOutputTokens {
		return 0, true, fmt.Errorf("%w: %d of %d tokens used, next request needs about %d input + %d output",
			diagnose.ErrBudget, b.Used.Total(), b.Limit, estInput, MinOutputTokens)
	}
	next = min(maxTokens, avail)
	// After this turn, the next one would need at least as much input
	// again plus its output.
	last = avail-next < estInput+next
	return next, last, nil
}

// EstimateInput estimates the input tokens of a request of curBytes bytes,
// given that a previous request of prevBytes bytes was counted as
// prevTokens (0 when there was none): about 4 bytes per token for what was
// added since.
func EstimateInput(prevTokens, prevBytes, curBytes int64) int64 {
	if prevTokens <= 0 || prevBytes <= 0 || curBytes < prevBytes {
		return curBytes / 4
	}
	return prevTokens + (curBytes-prevBytes)/4
}
