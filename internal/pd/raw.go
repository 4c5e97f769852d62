package pd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// RawResponse is one PD answer kept verbatim, for recording incidents
// (`operator record`): the HTTP status, PD's clock (Date header; zero when
// absent or malformed), the Content-Type and the body.
type RawResponse struct {
	Status      int
	Date        time.Time
	ContentType string
	Body        []byte
}

// GetRaw sends GET path ("/pd/api/v1/stores", with its query) to PD and
// returns the answer whatever its status, body verbatim (bounded like
// every response, WithMaxResponseBytes). It fails over between endpoints
// on connection errors like every read; the error wraps ErrUnreachable
// when no PD answered. path must start with "/".
func (c *Client) GetRaw(ctx context.Context, path string) (*RawResponse, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("pd: GET %q: path must start with /", path)
	}
	var out *RawResponse
	err := c.failover(ctx, func(idx int) (bool, error) {
		r, err := c.getRaw(ctx, idx, path)
		out = r
		return true, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) getRaw(ctx context.Context, idx int, path string) (*RawResponse, error) {
	g, _, err := c.openGET(ctx, idx, routeRaw, path, map[string]string{"Accept": "application/json"})
	if err != nil {
		return nil, err
	}
	defer g.Done()
	res, t0 := g.Res, g.T0
	defer res.Body.Close()
	cr := &countingReader{r: io.LimitReader(res.Body, c.maxBody+1)}
	data, err := io.ReadAll(cr)
	c.notify(http.MethodGet, routeRaw, res.StatusCode, time.Since(t0), cr.n)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s%s: reading body: %w", ErrUnreachable, c.endpoints[idx], path, err)
	}
	if int64(len(data)) > c.maxBody {
		return nil, &DecodeError{Method: http.MethodGet, Path: path, Err: fmt.Errorf("body larger than %d bytes", c.maxBody)}
	}
	out := &RawResponse{Status: res.StatusCode, ContentType: res.Header.Get("Content-Type"), Body: data}
	if d, err := http.ParseTime(res.Header.Get("Date")); err == nil {
		out.Date = d.UTC()
	}
	return out, nil
}

// routeRaw is the route GetRaw reports to the Observer: one label for
// every raw read, so that metrics keep a bounded cardinality.
const routeRaw = apiPrefix + "/{raw}"
