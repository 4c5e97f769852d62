package pd

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// failover runs attempt against each endpoint in failover order, starting
// with the current one, until one succeeds, attempt says another endpoint
// would not help (retry false) or ctx ends; the endpoint that answered
// becomes the current one. It returns the last error.
func (c *Client) failover(ctx context.Context, attempt func(idx int) (retry bool, err error)) error {
	start := int(c.current.Load())
	var lastErr error
	for i := range c.endpoints {
		idx := (start + i) % len(c.endpoints)
		retry, err := attempt(idx)
		if err == nil {
			c.current.Store(int64(idx))
			return nil
		}
		lastErr = err
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return lastErr
}

// sentGET is an answered GET of openGET: the caller reads and closes
// Res.Body, then calls Done.
type sentGET struct {
	Res  *http.Response
	T0   time.Time
	Done context.CancelFunc
}

// openGET sends GET path to endpoint idx under the client's timeout, with
// the given headers. A transport error is reported to the Observer under
// route and returned wrapping ErrUnreachable (and ErrNotSent when the
// connection was never made), with retry true: another endpoint may
// answer; a context that ended is returned as is, retry false.
func (c *Client) openGET(ctx context.Context, idx int, route, path string, header map[string]string) (sentGET, bool, error) {
	actx, cancel := ctx, context.CancelFunc(func() {})
	if c.timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	req, err := http.NewRequestWithContext(actx, http.MethodGet, c.endpoints[idx]+path, nil)
	if err != nil {
		cancel()
		return sentGET{}, false, fmt.Errorf("pd: GET %s: %w", path, err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	t0 := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		cancel()
		c.notify(http.MethodGet, route, 0, time.Since(t0), 0)
		if ctx.Err() != nil {
			return sentGET{}, false, fmt.Errorf("pd: GET %s: %w", path, ctx.Err())
		}
		if isDialError(err) {
			return sentGET{}, true, fmt.Errorf("%w: %w: GET %s%s: %w", ErrUnreachable, ErrNotSent, c.endpoints[idx], path, err)
		}
		return sentGET{}, true, fmt.Errorf("%w: GET %s%s: %w", ErrUnreachable, c.endpoints[idx], path, err)
	}
	return sentGET{Res: res, T0: t0, Done: cancel}, false, nil
}
