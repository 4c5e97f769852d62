package pd

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on. Each is wrapped (with %w) together with
// the *APIError or transport error that produced it, so both errors.Is and
// errors.As work on what the client returns.
var (
	// ErrUnreachable means no PD endpoint answered: connection refused,
	// DNS failure, TLS handshake failure or timeout on every endpoint.
	ErrUnreachable = errors.New("pd unreachable")
	// ErrNotSent accompanies ErrUnreachable when the request surely never
	// reached PD (every endpoint refused the connection or did not
	// resolve), so a mutation was not applied.
	ErrNotSent = errors.New("request not sent")
	// ErrRegionNotFound means PD does not know the region. GET
	// /pd/api/v1/region/id/{id} answers 200 with "id": 0 for an unknown id
	// (PD v8.1 server/api/region.go:59-78), which the client maps here.
	ErrRegionNotFound = errors.New("region not found")
	// ErrStoreNotFound means PD does not know the store (404 from
	// /pd/api/v1/store/{id}).
	ErrStoreNotFound = errors.New("store not found")
	// ErrStoreRemoved means the store is already Tombstone (410 from
	// DELETE or POST /pd/api/v1/store/{id}...).
	ErrStoreRemoved = errors.New("store already removed (Tombstone)")
	// ErrOperatorNotFound means the region has no running or recently
	// finished operator: GET or DELETE /pd/api/v1/operators/{region_id}
	// answers 500 "operator not found" (records are kept 10 minutes).
	ErrOperatorNotFound = errors.New("operator not found")
	// ErrProgressNotFound means PD tracks no removal/preparing progress for
	// the store (404 from /pd/api/v1/stores/progress?id=N).
	ErrProgressNotFound = errors.New("store progress not found")
	// ErrNotBootstrapped means PD runs but no TiKV store bootstrapped the
	// cluster yet (500 "TiKV cluster not bootstrapped"), or PD is still
	// starting ("server not started").
	ErrNotBootstrapped = errors.New("pd cluster not bootstrapped")
	// ErrDecode means PD's answer was not the JSON the endpoint documents
	// (malformed or truncated). The wrapping *DecodeError names the
	// endpoint.
	ErrDecode = errors.New("pd: malformed response")
	// ErrNotPD means the endpoint answers HTTP but is not PD: GET
	// /pd/api/v1/stores, which every PD version serves (v2.0 to v8.5),
	// answered 404 or a body that is not its JSON (an HTML page, another
	// service's API).
	ErrNotPD = errors.New("this is not PD")
	// ErrNotAvailable means the PD version has no such endpoint: its
	// router answered 404 "404 page not found" (gorilla/mux's default) for
	// a GET route other than /stores, e.g. regions/check/oversized-region
	// on PD 3.0, operators/records before PD 4.0. It is not a failed read:
	// the fact does not exist on that version.
	ErrNotAvailable = errors.New("endpoint not available on this PD version")
)

// APIError is a non-2xx answer from PD. PD renders most errors as a JSON
// string ("store 5 not found"); Message holds that string unquoted, or the
// raw body (trimmed, at most 512 bytes) when it is not a JSON string.
type APIError struct {
	Method string
	// Path is the request path with its query, e.g. "/pd/api/v1/store/5".
	Path    string
	Status  int
	Message string
}

// Error renders "pd: METHOD PATH: STATUS MESSAGE".
func (e *APIError) Error() string {
	return fmt.Sprintf("pd: %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// DecodeError is a 2xx answer whose body could not be decoded. It unwraps
// to ErrDecode and to the underlying json error.
type DecodeError struct {
	Method string
	Path   string
	Err    error
}

// Error renders "pd: METHOD PATH: malformed response: cause".
func (e *DecodeError) Error() string {
	return fmt.Sprintf("pd: %s %s: malformed response: %v", e.Method, e.Path, e.Err)
}

// Unwrap returns ErrDecode and the json error.
func (e *DecodeError) Unwrap() []error { return []error{ErrDecode, e.Err} }

// apiMessage extracts PD's error message from a body: a JSON string is
// unquoted, anything else is trimmed and cut to 512 bytes.
func apiMessage(body []byte) string {
	var s string
	if err := json.Unmarshal(body, &s); err == nil {
		return s
	}
	m := strings.TrimSpace(string(body))
	if len(m) > 512 {
		m = m[:512] + "..."
	}
	return m
}

// classify wraps an APIError with the sentinel it denotes, if any, given
// the route template (which tells what the id in the path names).
func classify(route string, e *APIError) error {
	msg := strings.ToLower(e.Message)
	switch {
	case strings.Contains(msg, "not bootstrapped") || strings.Contains(msg, "server not started"):
		return fmt.Errorf("%w: %w", ErrNotBootstrapped, e)
	case strings.HasPrefix(route, routeOperators) && strings.Contains(msg, "operator not found"):
		return fmt.Errorf("%w: %w", ErrOperatorNotFound, e)
	case route == routeStoresProgress && e.Status == 404:
		return fmt.Errorf("%w: %w", ErrProgressNotFound, e)
	case strings.HasPrefix(route, routeStore+"/") && e.Status == 404:
		return fmt.Errorf("%w: %w", ErrStoreNotFound, e)
	case strings.HasPrefix(route, routeStore+"/") && e.Status == 410:
		return fmt.Errorf("%w: %w", ErrStoreRemoved, e)
	case route == routeStores && e.Status == 404:
		return fmt.Errorf("%w: %w", ErrNotPD, e)
	case strings.HasPrefix(route, routeRegionsByStore) && e.Status == 404:
		return fmt.Errorf("%w: %w", ErrStoreNotFound, e)
	case e.Status == 404 && e.Method == "GET" && strings.Contains(msg, "404 page not found"):
		return fmt.Errorf("%w: %w", ErrNotAvailable, e)
	}
	return e
}
