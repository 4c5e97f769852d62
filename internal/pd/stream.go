package pd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// StreamCheckRegions reads one of PD's region checks (GET
// /pd/api/v1/regions/check/{name}; name is one of RegionChecks) and calls
// fn for each region as it is decoded, without holding the list: memory is
// one region at a time, whatever the list's size, and the client's
// response-size bound (WithMaxResponseBytes) does not apply, so a store
// with 100k regions going down cannot make the read fail. The *Region
// passed to fn is reused for the next region: fn must copy what it keeps.
// It returns the number of regions decoded. An error from fn stops the
// read and is returned; a body that is not a RegionsInfo is a
// *DecodeError; non-2xx answers are classified as for every read
// (ErrNotAvailable for a route the PD version lacks). It tries the
// endpoints in failover order on connection errors, as every read does.
func (c *Client) StreamCheckRegions(ctx context.Context, name string, fn func(*Region) error) (int, error) {
	if !contains(RegionChecks, name) {
		return 0, fmt.Errorf("pd: unknown region check %q (want one of %v)", name, RegionChecks)
	}
	return c.streamRegions(ctx, routeRegionsCheck, apiPrefix+"/regions/check/"+name, fn)
}

// StreamStoreRegions reads the regions with a peer on store id (GET
// /pd/api/v1/regions/store/{id}, PD v3.0+) like StreamCheckRegions: one
// region at a time, fn must copy what it keeps. A store of a 100k-region
// cluster lists ~35 MB of region JSON; a diagnosis keeps 20 of them, so
// it streams instead of decoding the list whole (issue 17).
func (c *Client) StreamStoreRegions(ctx context.Context, id uint64, fn func(*Region) error) (int, error) {
	return c.streamRegions(ctx, routeRegionsByStore, apiPrefix+"/regions/store/"+strconv.FormatUint(id, 10), fn)
}

// streamRegions streams a RegionsInfo body from path, trying the
// endpoints in failover order on connection errors.
func (c *Client) streamRegions(ctx context.Context, route, path string, fn func(*Region) error) (int, error) {
	var n int
	err := c.failover(ctx, func(idx int) (bool, error) {
		var (
			retry bool
			err   error
		)
		n, retry, err = c.streamAttempt(ctx, idx, route, path, fn)
		return retry, err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (c *Client) streamAttempt(ctx context.Context, idx int, route, path string, fn func(*Region) error) (int, bool, error) {
	g, retry, err := c.openGET(ctx, idx, route, path, map[string]string{"Accept": "application/json"})
	if err != nil {
		return 0, retry, err
	}
	defer g.Done()
	res, t0 := g.Res, g.T0
	defer res.Body.Close()
	cr := &countingReader{r: res.Body}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		data, _ := io.ReadAll(io.LimitReader(cr, 64<<10))
		c.notify(http.MethodGet, route, res.StatusCode, time.Since(t0), cr.n)
		apiErr := &APIError{Method: http.MethodGet, Path: path, Status: res.StatusCode, Message: apiMessage(data)}
		return 0, res.StatusCode == http.StatusServiceUnavailable, classify(route, apiErr)
	}
	n, err := decodeRegionStream(cr, fn)
	c.notify(http.MethodGet, route, res.StatusCode, time.Since(t0), cr.n)
	if err != nil {
		var fnErr *callbackError
		if errors.As(err, &fnErr) {
			return n, false, fnErr.err
		}
		if ctx.Err() != nil {
			return n, false, fmt.Errorf("pd: GET %s: %w", path, ctx.Err())
		}
		return n, false, &DecodeError{Method: http.MethodGet, Path: path, Err: err}
	}
	return n, false, nil
}

type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

// decodeRegionStream decodes {"count": N, "regions": [...]} (keys in any
// order, unknown keys skipped) region by region.
func decodeRegionStream(r io.Reader, fn func(*Region) error) (int, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return 0, err
	}
	n := 0
	var reg Region
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return n, err
		}
		key, _ := tok.(string)
		if key != "regions" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return n, err
			}
			continue
		}
		tok, err = dec.Token()
		if err != nil {
			return n, err
		}
		if tok == nil { // "regions": null
			continue
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return n, fmt.Errorf("regions: want an array, got %v", tok)
		}
		for dec.More() {
			// Reuse the slices' backing arrays, zeroed: encoding/json
			// decodes into an existing element without clearing fields the
			// JSON omits (omitempty role_name, is_learner).
			clear(reg.Peers[:cap(reg.Peers)])
			clear(reg.DownPeers[:cap(reg.DownPeers)])
			clear(reg.PendingPeers[:cap(reg.PendingPeers)])
			reg = Region{Peers: reg.Peers[:0], DownPeers: reg.DownPeers[:0], PendingPeers: reg.PendingPeers[:0]}
			if err := dec.Decode(&reg); err != nil {
				return n, err
			}
			n++
			if err := fn(&reg); err != nil {
				return n, &callbackError{err}
			}
		}
		if err := expectDelim(dec, ']'); err != nil {
			return n, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return n, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return n, errors.New("trailing data after JSON value")
	}
	return n, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// Clone returns a deep copy of r (its slices are not shared).
func (r *Region) Clone() Region {
	out := *r
	out.Peers = append([]Peer(nil), r.Peers...)
	if len(r.DownPeers) > 0 {
		out.DownPeers = append([]DownPeer(nil), r.DownPeers...)
	} else {
		out.DownPeers = nil
	}
	if len(r.PendingPeers) > 0 {
		out.PendingPeers = append([]Peer(nil), r.PendingPeers...)
	} else {
		out.PendingPeers = nil
	}
	return out
}
