package pd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Observer is called once per HTTP attempt, after the body was read. path
// is the route template ("/pd/api/v1/region/id/{id}"), status is 0 when no
// response arrived (connection error), d is the wall time of the attempt
// and bytesRead the size of the response body read, in bytes. It must be
// safe for concurrent use and must not block.
type Observer func(method, path string, status int, d time.Duration, bytesRead int64)

// DefaultTimeout bounds one HTTP attempt when WithTimeout is not given.
const DefaultTimeout = 10 * time.Second

// DefaultMaxResponseBytes bounds a response body (64 MiB); a larger body is
// a DecodeError rather than an out-of-memory.
const DefaultMaxResponseBytes int64 = 64 << 20

// Client is a PD HTTP API client over one or more PD members. Requests go to
// the member that answered last and fail over, in the order given, to the
// others on connection errors; any member serves any request (followers
// proxy to the leader). A Client is safe for concurrent use.
type Client struct {
	endpoints []string // base URLs, scheme://host:port, no trailing slash
	hc        *http.Client
	timeout   time.Duration
	maxBody   int64
	observe   Observer
	log       *slog.Logger
	current   atomic.Int64 // index of the endpoint that answered last
}

type options struct {
	hc                        *http.Client
	tls                       *tls.Config
	caFile, certFile, keyFile string
	timeout                   time.Duration
	maxBody                   int64
	observer                  Observer
	logger                    *slog.Logger
}

// Option configures a Client.
type Option func(*options)

// WithHTTPClient makes the client send through hc (its Timeout, if any, is
// kept as well as the client's own per-attempt timeout). It cannot be
// combined with WithTLSConfig or WithTLSFiles: configure hc's transport.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithTLSConfig makes the client speak HTTPS with cfg. Endpoints given
// without a scheme then default to https.
func WithTLSConfig(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithTLSFiles loads PEM files for mutual TLS, the way TiUP-deployed
// clusters with security enabled need it: caFile verifies PD's certificate,
// certFile/keyFile are the client certificate (both or neither). New fails
// if a file cannot be read or parsed.
func WithTLSFiles(caFile, certFile, keyFile string) Option {
	return func(o *options) { o.caFile, o.certFile, o.keyFile = caFile, certFile, keyFile }
}

// WithTimeout bounds each HTTP attempt (default DefaultTimeout). Zero or
// negative means no per-attempt bound beyond the caller's context.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithObserver registers a hook called after every HTTP attempt, for
// request latency and bytes-read metrics.
func WithObserver(obs Observer) Option { return func(o *options) { o.observer = obs } }

// WithLogger sets the logger for failover and retry events (default: a
// logger that discards).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMaxResponseBytes bounds a response body (default
// DefaultMaxResponseBytes).
func WithMaxResponseBytes(n int64) Option { return func(o *options) { o.maxBody = n } }

// New returns a client for the PD members at endpoints ("127.0.0.1:2379",
// "http://pd-0:2379", "https://pd-0:2379"; a trailing "/pd/api/v1" is
// accepted). It performs no I/O; an empty or malformed endpoint, or an
// unreadable TLS file, is an error.
func New(endpoints []string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout, maxBody: DefaultMaxResponseBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if len(endpoints) == 0 {
		return nil, errors.New("pd: no endpoint given")
	}
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	if o.hc != nil && tlsCfg != nil {
		return nil, errors.New("pd: WithHTTPClient cannot be combined with TLS options; set the TLS config on its transport")
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	c := &Client{timeout: o.timeout, maxBody: o.maxBody, observe: o.observer, log: o.logger}
	for _, e := range endpoints {
		base, err := normalizeEndpoint(e, scheme)
		if err != nil {
			return nil, err
		}
		c.endpoints = append(c.endpoints, base)
	}
	switch {
	case o.hc != nil:
		c.hc = o.hc
	default:
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsCfg
		tr.MaxIdleConnsPerHost = 16
		c.hc = &http.Client{Transport: tr}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	return c, nil
}

// TLSConfigFromFiles loads the same PEM files as WithTLSFiles into a TLS
// config, for other clients of PD's client URL (internal/ha: PD's embedded
// etcd). It returns nil when no file is given.
func TLSConfigFromFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	o := options{caFile: caFile, certFile: certFile, keyFile: keyFile}
	return o.tlsConfig()
}

func (o *options) tlsConfig() (*tls.Config, error) {
	if o.caFile == "" && o.certFile == "" && o.keyFile == "" {
		return o.tls, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.tls != nil {
		cfg = o.tls.Clone()
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("pd: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("pd: CA file %s holds no PEM certificate", o.caFile)
		}
		cfg.RootCAs = pool
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("pd: TLS cert and key files must be given together")
	}
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("pd: load TLS key pair: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func normalizeEndpoint(e, scheme string) (string, error) {
	s := strings.TrimSpace(e)
	if s == "" {
		return "", errors.New("pd: empty endpoint")
	}
	if !strings.Contains(s, "://") {
		s = scheme + "://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("pd: endpoint %q: %w", e, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("pd: endpoint %q: scheme must be http or https", e)
	}
	if u.Host == "" {
		return "", fmt.Errorf("pd: endpoint %q has no host", e)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), apiPrefix)
	if p != "" && p != "/" {
		return "", fmt.Errorf("pd: endpoint %q: unexpected path %q", e, u.Path)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Endpoints returns the normalized base URLs the client uses, in failover
// order.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// response is what do returns besides the decoded body.
type response struct {
	header http.Header
	body   []byte
}

// do sends one request, failing over between endpoints, and decodes a 2xx
// JSON body into out (when out is not nil). route is the path template
// given to the Observer; path is the concrete path with query.
func (c *Client) do(ctx context.Context, method, route, path string, in, out any) (*response, error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("pd: %s %s: encode body: %w", method, path, err)
		}
		body = b
	}
	start := int(c.current.Load())
	var lastErr error
	for i := range c.endpoints {
		idx := (start + i) % len(c.endpoints)
		resp, retry, err := c.attempt(ctx, idx, method, route, path, body)
		if err == nil {
			c.current.Store(int64(idx))
			if out != nil {
				if err := decodeJSON(resp.body, out); err != nil {
					de := &DecodeError{Method: method, Path: path, Err: err}
					if route == routeStores {
						// Every PD answers /stores with JSON.
						return resp, fmt.Errorf("%w: %w", ErrNotPD, de)
					}
					return resp, de
				}
			}
			return resp, nil
		}
		lastErr = err
		if !retry || ctx.Err() != nil {
			break
		}
		if i+1 < len(c.endpoints) {
			c.log.Warn("pd endpoint failed, trying next", "endpoint", c.endpoints[idx], "method", method, "path", path, "err", err)
		}
	}
	if ctx.Err() != nil && !errors.Is(lastErr, ctx.Err()) {
		return nil, fmt.Errorf("pd: %s %s: %w", method, path, ctx.Err())
	}
	return nil, lastErr
}

// attempt sends the request to one endpoint. retry tells whether another
// endpoint may be tried: on connection errors (for mutations only when the
// request surely never left: dial errors) and on 503 (no PD leader).
func (c *Client) attempt(ctx context.Context, idx int, method, route, path string, body []byte) (*response, bool, error) {
	actx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, c.endpoints[idx]+path, rd)
	if err != nil {
		return nil, false, fmt.Errorf("pd: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	t0 := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		c.notify(method, route, 0, time.Since(t0), 0)
		if ctx.Err() != nil { // the caller gave up; not PD's fault
			return nil, false, fmt.Errorf("pd: %s %s: %w", method, path, ctx.Err())
		}
		if isDialError(err) {
			return nil, true, fmt.Errorf("%w: %w: %s %s%s: %w", ErrUnreachable, ErrNotSent, method, c.endpoints[idx], path, err)
		}
		return nil, method == http.MethodGet, fmt.Errorf("%w: %s %s%s: %w", ErrUnreachable, method, c.endpoints[idx], path, err)
	}
	defer res.Body.Close()
	cr := &countingReader{r: io.LimitReader(res.Body, c.maxBody+1)}
	data, rerr := io.ReadAll(cr)
	c.notify(method, route, res.StatusCode, time.Since(t0), cr.n)
	if rerr != nil {
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("pd: %s %s: %w", method, path, ctx.Err())
		}
		// The response started; a mutation may have been applied.
		return nil, method == http.MethodGet, fmt.Errorf("%w: %s %s%s: reading body: %w", ErrUnreachable, method, c.endpoints[idx], path, rerr)
	}
	if int64(len(data)) > c.maxBody {
		return nil, false, &DecodeError{Method: method, Path: path, Err: fmt.Errorf("body larger than %d bytes", c.maxBody)}
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		apiErr := &APIError{Method: method, Path: path, Status: res.StatusCode, Message: apiMessage(data)}
		return nil, res.StatusCode == http.StatusServiceUnavailable, classify(route, apiErr)
	}
	return &response{header: res.Header, body: data}, false, nil
}

func (c *Client) notify(method, route string, status int, d time.Duration, n int64) {
	if c.observe != nil {
		c.observe(method, route, status, d, n)
	}
}

// isDialError reports whether err happened before any byte of the request
// was sent (connection refused, DNS failure, dial timeout).
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

type countingReader struct {
	r io.Reader
	n int64
}

// Read counts the bytes read through it.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// decodeJSON decodes exactly one JSON value; trailing garbage is an error.
func decodeJSON(data []byte, out any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty body")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

func (c *Client) get(ctx context.Context, route, path string, out any) error {
	_, err := c.do(ctx, http.MethodGet, route, path, nil, out)
	return err
}
