package llm

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy bounds retries of one model request on rate limits (HTTP
// 429), server errors (5xx) and network errors.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt; 0 means
	// DefaultRetryPolicy's, negative means none.
	MaxRetries int
	// BaseDelay is the first backoff; it doubles per retry, with jitter
	// (between half and all of it). 0 means DefaultRetryPolicy's.
	BaseDelay time.Duration
	// MaxDelay caps every wait, including a server's Retry-After. 0 means
	// DefaultRetryPolicy's.
	MaxDelay time.Duration
}

// DefaultRetryPolicy: 3 retries, 1 s doubling, at most 30 s per wait.
var DefaultRetryPolicy = RetryPolicy{MaxRetries: 3, BaseDelay: time.Second, MaxDelay: 30 * time.Second}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries == 0 {
		p.MaxRetries = DefaultRetryPolicy.MaxRetries
	}
	if p.MaxRetries < 0 {
		p.MaxRetries = 0
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultRetryPolicy.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultRetryPolicy.MaxDelay
	}
	return p
}

// Delay returns the wait before retry number retry (0-based): the server's
// retryAfter when > 0, else BaseDelay doubled per retry with jitter, capped
// at MaxDelay.
func (p RetryPolicy) Delay(retry int, retryAfter time.Duration) time.Duration {
	p = p.withDefaults()
	if retryAfter > 0 {
		return min(retryAfter, p.MaxDelay)
	}
	d := p.BaseDelay
	for i := 0; i < retry && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// Verdict is how Retry should treat a failed attempt.
type Verdict struct {
	// Retry: the failure is transient (429, 5xx, network).
	Retry bool
	// After is the server's Retry-After, or 0.
	After time.Duration
}

// Retry calls call until it succeeds, classify says the error is not
// transient, the retries run out, or ctx ends. It returns call's last result
// and error, and the number of attempts made. It sleeps between attempts
// (RetryPolicy.Delay) and logs each retry on log (nil: slog.Default()).
func Retry[T any](ctx context.Context, p RetryPolicy, log *slog.Logger, call func(context.Context) (T, error), classify func(error) Verdict) (T, int, error) {
	p = p.withDefaults()
	if log == nil {
		log = slog.Default()
	}
	for attempt := 0; ; attempt++ {
		res, err := call(ctx)
		if err == nil {
			return res, attempt + 1, nil
		}
		if ctx.Err() != nil {
			return res, attempt + 1, err
		}
		v := classify(err)
		if !v.Retry || attempt >= p.MaxRetries {
			return res, attempt + 1, err
		}
		wait := p.Delay(attempt, v.After)
		log.Warn("model request failed, retrying", "attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, attempt + 1, err
		case <-t.C:
		}
	}
}

// RetryAfter reads a server's requested wait from retry-after-ms
// (milliseconds, Anthropic and OpenAI) or Retry-After (seconds or an HTTP
// date); 0 when absent or unparsable.
func RetryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

// Classify is the retry verdict for a failed model request: status is the
// HTTP status of an API error (0 for a transport error), header its
// response headers. 408, 409, 429 and 5xx (including Anthropic's 529
// overloaded) are transient; other statuses are not; transport errors are,
// except a cancelled context.
func Classify(status int, header http.Header, err error) Verdict {
	if status == 0 {
		if errors.Is(err, context.Canceled) {
			return Verdict{}
		}
		return Verdict{Retry: true}
	}
	if status == http.StatusRequestTimeout || status == http.StatusConflict ||
		status == http.StatusTooManyRequests || status >= 500 {
		return Verdict{Retry: true, After: RetryAfter(header)}
	}
	return Verdict{}
}
