package console

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auth"
	"github.com/tikvops/operator/internal/executor"
	"github.com/tikvops/operator/internal/pd"
	"github.com/tikvops/operator/internal/store"
)

// hostilePD answers like PD, with a store label and address carrying a
// script and terminal escape codes.
type hostilePD struct{}

func (hostilePD) Stores(ctx context.Context, states ...string) ([]pd.StoreInfo, error) {
	s := pd.StoreInfo{}
	s.Store.ID, s.Store.StateName = 1, "Up"
	s.Store.Address = "127.0.0.1:20160<script>window.__pwned=1</script>\x1b[2J"
	s.Store.Labels = []pd.Label{{Key: "zone", Value: "<script>alert(1)</script>\x1b]0;owned\x07\x1b[31mred"}}
	s.Status.Capacity, s.Status.Available = 100<<30, 40<<30
	s.Status.LeaderCount, s.Status.RegionCount = 3, 5
	return []pd.StoreInfo{s}, nil
}
func (hostilePD) Operators(ctx context.Context) ([]pd.Operator, error) {
	return []pd.Operator{{Desc: "transfer-leader\x1b[2J", Brief: "<b>x</b>", RegionID: 7}}, nil
}
func (hostilePD) Schedulers(ctx context.Context) ([]string, error) {
	return []string{"balance-leader-scheduler"}, nil
}
func (hostilePD) PausedSchedulerTimes(ctx context.Context) ([]pd.PausedScheduler, error) {
	return nil, errors.New("pd unreachable\x1b[2J")
}

// recorder is a Decider that records calls.
type recorder struct{ calls []string }

func (r *recorder) DryRunAs(ctx context.Context, id int64, who auth.Identity) (action.DryRunResult, action.Record, error) {
	r.calls = append(r.calls, "dry-run:"+who.Name)
	return action.DryRunResult{Valid: true}, action.Record{ID: 1}, nil
}
func (r *recorder) ApproveAs(ctx context.Context, id int64, who auth.Identity, d executor.Decision) (action.Proposal, executor.ApprovalResult, error) {
	r.calls = append(r.calls, "approve:"+who.Name)
	return action.Proposal{}, executor.ApprovalResult{}, store.ErrNotFound
}
func (r *recorder) RejectAs(ctx context.Context, id int64, who auth.Identity, d executor.Decision, reason string) (action.Proposal, error) {
	r.calls = append(r.calls, "reject:"+who.Name+":"+reason)
	return action.Proposal{}, store.ErrNotFound
}

const (
	approverSecret = "opr_unit_approver_secret_0000000000000001"
	viewerSecret   = "opr_unit_viewer_secret_00000000000000002"
)

func newTestServer(t *testing.T, o Options) (*httptest.Server, *recorder) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "op.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	toks, err := auth.NewTokens([]auth.Token{
		{Name: "tara", Role: "approver", SHA256: auth.HashToken(approverSecret)},
		{Name: "vic", Role: "viewer", SHA256: auth.HashToken(viewerSecret)},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	o.Store, o.Decider, o.Tokens, o.PD = st, rec, toks, hostilePD{}
	if o.Prefix == "" {
		o.Prefix = "/ui"
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(s.Prefix()+"/", s.Handler())
	mux.Handle(s.Prefix(), s.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, rec
}

type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, c.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (c *client) login(secret string) string {
	c.t.Helper()
	resp, body := c.do("POST", "/ui/login", url.Values{"token": {secret}, "next": {"/ui/cluster"}}, map[string]string{"Origin": c.base})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/cluster" {
		c.t.Fatalf("log-in: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	ck := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(ck, want) {
			c.t.Errorf("session cookie %q lacks %s", ck, want)
		}
	}
	_, page := c.do("GET", "/ui/cluster", nil, nil)
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		c.t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return m[1]
}

func TestUntrustedPDStringsAreInert(t *testing.T) {
	srv, _ := newTestServer(t, Options{})
	c := newClient(t, srv.URL)
	c.login(viewerSecret)
	resp, page := c.do("GET", "/ui/cluster", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("cluster page: %d", resp.StatusCode)
	}
	for _, bad := range []string{"<script>", "\x1b", "\x07", "<b>x</b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("the cluster page carries %q", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "window.__pwned=1&lt;/script&gt;", "pd unreachable", "<svg class=\"bar\""} {
		if !strings.Contains(page, want) {
			t.Errorf("the cluster page lacks %q", want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestMarkdownIsRenderedSafely(t *testing.T) {
	out := string(renderMarkdown("# Root cause\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n- **bold** `code`\n\n[x](javascript:alert(3))\n\x1b[2J"))
	for _, bad := range []string{"<script", "<img", "javascript:", "\x1b", "onerror"} {
		if strings.Contains(out, bad) {
			t.Errorf("rendered markdown carries %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{"<h1>Root cause</h1>", "<strong>bold</strong>", "<code>code</code>", "<li>"} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestDecisionsNeedSessionCSRFOriginAndRole(t *testing.T) {
	srv, rec := newTestServer(t, Options{})
	// No session: the log-in page for a GET, 403 for a POST.
	anon := newClient(t, srv.URL)
	if resp, _ := anon.do("GET", "/ui/", nil, nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login") {
		t.Fatalf("anonymous GET: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The log-in returns to the page asked for, prefix included (a new
	// user landed on /ui/ instead of /ui/?cluster=west).
	if resp, _ := anon.do("GET", "/ui/?cluster=west", nil, nil); resp.Header.Get("Location") != "/ui/login?next="+url.QueryEscape("/ui/?cluster=west") {
		t.Fatalf("anonymous GET with a query: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := anon.do("POST", "/ui/actions/1/approve", url.Values{}, map[string]string{"Origin": srv.URL}); resp.StatusCode != 403 {
		t.Fatalf("anonymous POST: %d", resp.StatusCode)
	}
	if resp, _ := anon.do("POST", "/ui/login", url.Values{"token": {"nope"}}, map[string]string{"Origin": srv.URL}); resp.StatusCode != 401 {
		t.Fatalf("unknown token: %d", resp.StatusCode)
	}
	if resp, _ := anon.do("GET", "/ui", nil, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("the bare prefix: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	viewer := newClient(t, srv.URL)
	vcsrf := viewer.login(viewerSecret)
	if resp, _ := viewer.do("POST", "/ui/actions/1/approve", url.Values{"csrf": {vcsrf}}, map[string]string{"Origin": srv.URL}); resp.StatusCode != 403 {
		t.Fatalf("viewer approve: %d", resp.StatusCode)
	}

	tara := newClient(t, srv.URL)
	csrf := tara.login(approverSecret)
	cases := []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no CSRF token", url.Values{}, map[string]string{"Origin": srv.URL}},
		{"the viewer's CSRF token", url.Values{"csrf": {vcsrf}}, map[string]string{"Origin": srv.URL}},
		{"another origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}},
		{"no Origin nor Referer", url.Values{"csrf": {csrf}}, nil},
	}
	for _, tc := range cases {
		if resp, _ := tara.do("POST", "/ui/actions/1/approve", tc.form, tc.hdr); resp.StatusCode != 403 {
			t.Errorf("%s: %d, want 403", tc.name, resp.StatusCode)
		}
	}
	if len(rec.calls) != 0 {
		t.Fatalf("refused requests reached the executor: %v", rec.calls)
	}
	// A reject needs a reason, checked by the server.
	if resp, _ := tara.do("POST", "/ui/actions/1/reject", url.Values{"csrf": {csrf}, "reason": {"  "}}, map[string]string{"Origin": srv.URL}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("empty reason: %d", resp.StatusCode)
	}
	if len(rec.calls) != 0 {
		t.Fatalf("a reject without a reason reached the executor: %v", rec.calls)
	}
	resp, _ := tara.do("POST", "/ui/actions/1/dry-run", url.Values{"csrf": {csrf}}, map[string]string{"Referer": srv.URL + "/ui/actions/1"})
	if resp.StatusCode != http.StatusSeeOther || len(rec.calls) != 1 || rec.calls[0] != "dry-run:tara" {
		t.Fatalf("dry run as tara: %d %v", resp.StatusCode, rec.calls)
	}
	// Log out ends the session server-side.
	tara.do("POST", "/ui/logout", url.Values{"csrf": {csrf}}, map[string]string{"Origin": srv.URL})
	if resp, _ := tara.do("GET", "/ui/audit", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after log-out: %d", resp.StatusCode)
	}
}

func TestProxyIdentityGetsABoundSession(t *testing.T) {
	identify := func(r *http.Request) (auth.Identity, error) {
		if u := r.Header.Get("X-Forwarded-User"); u != "" {
			role := auth.Viewer
			if u == "pat" {
				role = auth.Approver
			}
			return auth.Identity{Name: u, Role: role, Via: "proxy"}, nil
		}
		return auth.Identity{}, errors.New("no credentials")
	}
	srv, rec := newTestServer(t, Options{Identify: identify})
	c := newClient(t, srv.URL)
	resp, page := c.do("GET", "/ui/cluster", nil, map[string]string{"X-Forwarded-User": "pat"})
	if resp.StatusCode != 200 || !strings.Contains(page, "pat") {
		t.Fatalf("proxy GET: %d", resp.StatusCode)
	}
	csrf := csrfRe.FindStringSubmatch(page)[1]
	// The same browser, now with another proxy user: the session is not
	// reused for them.
	if resp, _ := c.do("POST", "/ui/actions/1/dry-run", url.Values{"csrf": {csrf}}, map[string]string{"Origin": srv.URL, "X-Forwarded-User": "vic"}); resp.StatusCode != 403 {
		t.Fatalf("another proxy user with pat's session: %d", resp.StatusCode)
	}
	if len(rec.calls) != 0 {
		t.Fatalf("calls: %v", rec.calls)
	}
}
