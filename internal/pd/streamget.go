package pd

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// gzipReaders pools StreamGet's gzip readers: each holds ~40 KB of
// decompressor state that would otherwise be allocated per call.
var gzipReaders sync.Pool

// StreamGet sends GET path ("/metrics", with its query) to PD asking for a
// gzip-compressed answer (Accept-Encoding: gzip; PD's /metrics, served by
// its embedded etcd's promhttp handler, compresses ~400 KB to ~28 KB; PD's
// JSON API does not compress) and calls fn with the status and the body,
// decompressed, as it arrives: nothing is held beyond fn's own buffers.
// When fn returns early, the rest of the body is read and discarded
// without being decompressed (bounded by WithMaxResponseBytes), so that
// the connection is reused. The Observer sees the bytes read from the
// connection (compressed when PD compressed) under the route of GetRaw.
// An error from fn is returned as is; transport errors wrap
// ErrUnreachable and fail over to the next endpoint like every read.
// path must start with "/".
func (c *Client) StreamGet(ctx context.Context, path string, fn func(status int, body io.Reader) error) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("pd: GET %q: path must start with /", path)
	}
	return c.failover(ctx, func(idx int) (bool, error) { return c.streamGet(ctx, idx, path, fn) })
}

func (c *Client) streamGet(ctx context.Context, idx int, path string, fn func(int, io.Reader) error) (bool, error) {
	// Accept-Encoding set explicitly, so that the transport hands over the
	// compressed body (and the observer counts what crossed the
	// connection).
	g, retry, err := c.openGET(ctx, idx, routeRaw, path, map[string]string{"Accept-Encoding": "gzip"})
	if err != nil {
		return retry, err
	}
	defer g.Done()
	res, t0 := g.Res, g.T0
	defer res.Body.Close()
	cr := &countingReader{r: io.LimitReader(res.Body, c.maxBody+1)}
	var body io.Reader = cr
	if strings.EqualFold(res.Header.Get("Content-Encoding"), "gzip") {
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		if zr == nil {
			zr, err = gzip.NewReader(cr)
		} else {
			err = zr.Reset(cr)
		}
		if err != nil {
			c.notify(http.MethodGet, routeRaw, res.StatusCode, time.Since(t0), cr.n)
			return false, &DecodeError{Method: http.MethodGet, Path: path, Err: fmt.Errorf("gzip: %w", err)}
		}
		defer gzipReaders.Put(zr)
		body = zr
	}
	ferr := fn(res.StatusCode, body)
	// Drain what fn left, still compressed, so the connection is reused.
	_, derr := io.Copy(io.Discard, cr)
	c.notify(http.MethodGet, routeRaw, res.StatusCode, time.Since(t0), cr.n)
	if ferr != nil {
		return false, ferr
	}
	if cr.n > c.maxBody {
		return false, &DecodeError{Method: http.MethodGet, Path: path, Err: fmt.Errorf("body larger than %d bytes", c.maxBody)}
	}
	if derr != nil && !errors.Is(derr, io.EOF) {
		return false, fmt.Errorf("%w: GET %s%s: reading body: %w", ErrUnreachable, c.endpoints[idx], path, derr)
	}
	return false, nil
}
