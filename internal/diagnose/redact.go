package diagnose

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"sort"
	"strings"

	"github.com/tikvops/operator/internal/pd"
)

// RedactOptions chooses what a Redactor hides besides region keys, which it
// always hides.
type RedactOptions struct {
	// RedactAddresses hides store addresses (address, peer_address,
	// status_address), deploy paths, PD member URLs and host:port strings in
	// free text.
	RedactAddresses bool
	// RedactLabels hides store label values, except those of the structural
	// labels "engine" and "engine_role" (tikv/tiflash), which diagnoses need.
	RedactLabels bool
	// Salt keys the pseudonyms; nil means a random salt per Redactor. Set it
	// only to make tests deterministic.
	Salt []byte
}

// Redactor replaces user data and, when configured, infrastructure details
// with stable pseudonyms ("<redacted:key:3fa9c1d2e4b5>"): the same value
// always maps to the same pseudonym within one Redactor, so a model can
// still tell that two regions share a boundary or two stores share an
// address, but not what the value was. Pseudonyms are an HMAC-SHA256 under
// a per-Redactor salt, so they cannot be reversed by hashing guesses.
//
// A Redactor is safe for concurrent use.
type Redactor struct {
	opts RedactOptions
	salt []byte
}

// NewRedactor returns a Redactor for opts.
func NewRedactor(opts RedactOptions) *Redactor {
	salt := opts.Salt
	if salt == nil {
		salt = make([]byte, 32)
		_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go >= 1.24)
	}
	return &Redactor{opts: opts, salt: salt}
}

// Options returns the options the Redactor was built with.
func (r *Redactor) Options() RedactOptions { return r.opts }

func (r *Redactor) pseudonym(kind, v string) string {
	m := hmac.New(sha256.New, r.salt)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return "<redacted:" + kind + ":" + hex.EncodeToString(m.Sum(nil))[:12] + ">"
}

// Key redacts a region key. The empty key (unbounded) stays empty: it
// carries no user data and tells where the key space starts or ends.
func (r *Redactor) Key(k string) string {
	if k == "" || isPseudonym(k) {
		return k
	}
	return r.pseudonym("key", k)
}

// Address redacts an address (host:port, URL, path) when RedactAddresses is
// set; otherwise it returns a unchanged.
func (r *Redactor) Address(a string) string {
	if !r.opts.RedactAddresses || a == "" || isPseudonym(a) {
		return a
	}
	return r.pseudonym("addr", a)
}

// structuralLabels are label keys whose values are kept even when labels
// are redacted: they say what kind of store it is, not where it runs.
var structuralLabels = map[string]bool{"engine": true, "engine_role": true}

// LabelValue redacts the value of label key when RedactLabels is set (and
// key is not structural); otherwise it scrubs the value as Text, so a
// "host" label holding an IP is still hidden with RedactAddresses.
func (r *Redactor) LabelValue(key, value string) string {
	if value == "" || isPseudonym(value) {
		return value
	}
	if !r.opts.RedactLabels || structuralLabels[key] {
		return r.Text(value)
	}
	return r.pseudonym("label", value)
}

func isPseudonym(s string) bool { return strings.HasPrefix(s, "<redacted:") }

// Store returns a redacted copy of s.
func (r *Redactor) Store(s pd.StoreInfo) pd.StoreInfo {
	s.Store.Address = r.Address(s.Store.Address)
	s.Store.PeerAddress = r.Address(s.Store.PeerAddress)
	s.Store.StatusAddress = r.Address(s.Store.StatusAddress)
	s.Store.DeployPath = r.Address(s.Store.DeployPath)
	if s.Store.Labels != nil {
		labels := make([]pd.Label, len(s.Store.Labels))
		for i, l := range s.Store.Labels {
			labels[i] = pd.Label{Key: l.Key, Value: r.LabelValue(l.Key, l.Value)}
		}
		s.Store.Labels = labels
	}
	if s.Status.SlowTrend != nil {
		st := *s.Status.SlowTrend
		s.Status.SlowTrend = &st
	}
	return s
}

// Region returns a copy of g with its start and end keys redacted.
func (r *Redactor) Region(g pd.Region) pd.Region {
	g.StartKey = r.Key(g.StartKey)
	g.EndKey = r.Key(g.EndKey)
	g.Peers = append([]pd.Peer(nil), g.Peers...)
	g.DownPeers = append([]pd.DownPeer(nil), g.DownPeers...)
	g.PendingPeers = append([]pd.Peer(nil), g.PendingPeers...)
	return g
}

// Context returns a redacted deep copy of c for a model: region keys
// replaced everywhere (regions, ticket evidence, hex keys in free text),
// addresses and labels when configured (including, in free text such as
// the ticket summary, operator descriptions and Prometheus series, every
// address the context names), the previous diagnosis of the ticket
// cleared, and Snapshot dropped. c is not modified.
func (r *Redactor) Context(c *Context) *Context {
	if c == nil {
		return nil
	}
	out := *c
	out.Snapshot = nil
	out.Ticket.DiagnosisMarkdown = ""
	out.Ticket.DiagnosisJSON = nil
	out.Ticket.LastDiagnosisErr = ""

	addrs := r.addressesOf(c)
	out.Ticket.Summary = r.text(c.Ticket.Summary, addrs)
	out.Ticket.Evidence = r.jsonWith(c.Ticket.Evidence, addrs)
	out.Ticket.FirstEvidence = r.jsonWith(c.Ticket.FirstEvidence, addrs)
	out.Prometheus = r.text(c.Prometheus, addrs)
	if c.SourceErrors != nil {
		out.SourceErrors = make(map[string]string, len(c.SourceErrors))
		for k, v := range c.SourceErrors {
			out.SourceErrors[k] = r.text(v, addrs)
		}
	}

	if c.Stores != nil {
		out.Stores = make([]pd.StoreInfo, len(c.Stores))
		for i, s := range c.Stores {
			out.Stores[i] = r.Store(s)
		}
	}
	if c.Regions != nil {
		out.Regions = make([]pd.Region, len(c.Regions))
		for i, g := range c.Regions {
			out.Regions[i] = r.Region(g)
		}
	}
	if c.Operators != nil {
		out.Operators = make([]pd.Operator, len(c.Operators))
		for i, o := range c.Operators {
			o.Desc = r.text(o.Desc, addrs)
			o.Brief = r.text(o.Brief, addrs)
			out.Operators[i] = o
		}
	}
	if c.OperatorRecords != nil {
		out.OperatorRecords = make([]pd.OperatorRecord, len(c.OperatorRecords))
		for i, o := range c.OperatorRecords {
			o.Desc = r.text(o.Desc, addrs)
			o.Brief = r.text(o.Brief, addrs)
			o.Text = r.text(o.Text, addrs)
			out.OperatorRecords[i] = o
		}
	}
	out.Schedulers = append([]string(nil), c.Schedulers...)
	out.PausedSchedulers = append([]string(nil), c.PausedSchedulers...)
	out.EvictLeaderStores = append([]uint64(nil), c.EvictLeaderStores...)
	out.Actions = append(out.Actions[:0:0], c.Actions...)
	return &out
}

// addressesOf collects the address strings c names, longest first, so that
// free text mentioning them can be scrubbed.
func (r *Redactor) addressesOf(c *Context) []string {
	if !r.opts.RedactAddresses {
		return nil
	}
	seen := map[string]bool{}
	add := func(a string) {
		if a != "" && !isPseudonym(a) {
			seen[a] = true
		}
	}
	for _, s := range c.Stores {
		add(s.Store.Address)
		add(s.Store.PeerAddress)
		add(s.Store.StatusAddress)
		add(s.Store.DeployPath)
	}
	for _, raw := range []json.RawMessage{c.Ticket.Evidence, c.Ticket.FirstEvidence} {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			walkJSON(v, func(key string, s string) {
				if addressFields[key] {
					add(s)
				}
			})
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// hostPort matches, in free text, IPv4 addresses with an optional port,
// and host:port pairs whose host has a dot or is localhost
// ("tikv-0.tikv-peer.db.svc:20160"). Single-label hosts are caught only
// when the context names them (addressesOf); "store:42" is not an address.
var hostPort = regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b|\b(?:[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)+|localhost):\d{1,5}\b`)

// hexKey matches hex strings of 16 or more digits in free text: how PD
// renders region keys in operator descriptions and logs
// ("7480000000000000FF2D5F72...").
var hexKey = regexp.MustCompile(`\b[0-9A-Fa-f]{16,}\b`)

// Text scrubs free text: hex strings of 16 or more digits (region keys as
// PD prints them) always become key pseudonyms; with RedactAddresses, IPv4
// addresses and host:port pairs become address pseudonyms. Keys in other
// encodings cannot be recognised in free text.
func (r *Redactor) Text(s string) string { return r.text(s, nil) }

func (r *Redactor) text(s string, addrs []string) string {
	if s == "" {
		return s
	}
	s = hexKey.ReplaceAllStringFunc(s, r.Key)
	if !r.opts.RedactAddresses {
		return s
	}
	for _, a := range addrs {
		if strings.Contains(s, a) {
			s = strings.ReplaceAll(s, a, r.Address(a))
		}
	}
	return hostPort.ReplaceAllStringFunc(s, r.Address)
}

// Field names whose string values are redacted wherever they appear in
// evidence or tool results (PD's JSON field names).
var (
	keyFields     = map[string]bool{"start_key": true, "end_key": true, "startkey": true, "endkey": true, "start-key": true, "end-key": true}
	addressFields = map[string]bool{"address": true, "peer_address": true, "status_address": true, "deploy_path": true}
	urlFields     = map[string]bool{"client_urls": true, "peer_urls": true}
)

// JSON returns a redacted copy of a JSON document (ticket evidence, an
// investigation tool result). At any depth: string values of fields named
// start_key or end_key are replaced; every other string is scrubbed as Text
// (hex keys, and addresses when configured); with RedactAddresses, the
// values of address, peer_address, status_address, deploy_path,
// client_urls and peer_urls are replaced; with RedactLabels, the values of
// {"key","value"} objects inside "labels" arrays. Numbers keep their exact
// text. A document that is not valid JSON is replaced by a JSON string
// saying so, since it cannot be checked. Empty input stays empty.
func (r *Redactor) JSON(raw json.RawMessage) json.RawMessage { return r.jsonWith(raw, nil) }

func (r *Redactor) jsonWith(raw json.RawMessage, addrs []string) json.RawMessage {
	if len(raw) == 0 {
		return raw
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return json.RawMessage(`"<redacted: not valid JSON>"`)
	}
	v = r.redactValue("", v, addrs)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<redacted:...>" readable
	if err := enc.Encode(v); err != nil {
		return json.RawMessage(`"<redacted: not valid JSON>"`)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func (r *Redactor) redactValue(field string, v any, addrs []string) any {
	lf := strings.ToLower(field)
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = r.redactValue(k, x, addrs)
		}
		return t
	case []any:
		for i, x := range t {
			if lf == "labels" {
				if m, ok := x.(map[string]any); ok {
					if k, ok := m["key"].(string); ok {
						if val, ok := m["value"].(string); ok {
							m["value"] = r.LabelValue(k, val)
						}
					}
				}
			}
			t[i] = r.redactValue(field, x, addrs)
		}
		return t
	case string:
		switch {
		case keyFields[lf]:
			return r.Key(t)
		case addressFields[lf] || urlFields[lf]:
			return r.Address(t)
		}
		return r.text(t, addrs)
	}
	return v
}

// walkJSON calls fn for every string value with the name of the field that
// holds it (for array elements, the array's field).
func walkJSON(v any, fn func(field, s string)) {
	var walk func(field string, v any)
	walk = func(field string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				walk(strings.ToLower(k), x)
			}
		case []any:
			for _, x := range t {
				walk(field, x)
			}
		case string:
			fn(field, t)
		}
	}
	walk("", v)
}
