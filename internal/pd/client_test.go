package pd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

type observed struct {
	method, path string
	status       int
	bytes        int64
}

type recorder struct {
	mu   sync.Mutex
	seen []observed
}

func (r *recorder) observe(method, path string, status int, d time.Duration, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, observed{method, path, status, n})
}

func (r *recorder) all() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observed(nil), r.seen...)
}

func TestNewValidatesEndpoints(t *testing.T) {
	for _, bad := range [][]string{nil, {""}, {"ftp://x:1"}, {"http://"}, {"http://h:1/other"}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	c, err := New([]string{"127.0.0.1:2379", "http://pd-1:2379/pd/api/v1/", "https://pd-2:2379"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:2379", "http://pd-1:2379", "https://pd-2:2379"}
	if got := c.Endpoints(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("endpoints = %v, want %v", got, want)
	}
	if _, err := New([]string{"h:1"}, WithHTTPClient(http.DefaultClient), WithTLSConfig(&tls.Config{})); err == nil {
		t.Error("HTTP client and TLS config together accepted")
	}
	if _, err := New([]string{"h:1"}, WithTLSFiles("/nonexistent/ca.pem", "", "")); err == nil {
		t.Error("missing CA file accepted")
	}
	if _, err := New([]string{"h:1"}, WithTLSFiles("", "cert.pem", "")); err == nil {
		t.Error("cert without key accepted")
	}
}

func TestAPIErrorsAndSentinels(t *testing.T) {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("/pd/api/v1/store/5", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, "[PD:core:ErrStoreNotFound]store 5 not found")
	})
	mux.HandleFunc("/pd/api/v1/store/6", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 410, "[PD:core:ErrStoreRemoved]store 6 has been removed")
	})
	mux.HandleFunc("/pd/api/v1/region/id/77", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": 0, "start_key": "", "end_key": ""})
	})
	mux.HandleFunc("/pd/api/v1/operators/77", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 500, "[PD:operator:ErrOperatorNotFound]operator not found")
	})
	mux.HandleFunc("/pd/api/v1/operators/78", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, "status: SUCCESS, operator: transfer-leader {transfer leader: store 1 to 2} (kind:admin,leader, region:78(5, 3))")
	})
	mux.HandleFunc("/pd/api/v1/stores/progress", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, "no progress found for the given store ID")
	})
	mux.HandleFunc("/pd/api/v1/stores", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 500, "[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first")
	})
	mux.HandleFunc("/pd/api/v1/config", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, "plain text failure")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := New([]string{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = c.Store(ctx, 5)
	var apiErr *APIError
	if !errors.Is(err, ErrStoreNotFound) || !errors.As(err, &apiErr) {
		t.Fatalf("Store(5) = %v, want ErrStoreNotFound and *APIError", err)
	}
	if apiErr.Status != 404 || apiErr.Message != "[PD:core:ErrStoreNotFound]store 5 not found" || apiErr.Method != "GET" || apiErr.Path != "/pd/api/v1/store/5" {
		t.Errorf("APIError = %+v", apiErr)
	}
	if err := c.DeleteStore(ctx, 6); !errors.Is(err, ErrStoreRemoved) {
		t.Errorf("DeleteStore(6) = %v, want ErrStoreRemoved", err)
	}
	if _, err := c.Region(ctx, 77); !errors.Is(err, ErrRegionNotFound) {
		t.Errorf("Region(77) = %v, want ErrRegionNotFound", err)
	}
	if _, err := c.Region(ctx, 0); !errors.Is(err, ErrRegionNotFound) {
		t.Errorf("Region(0) = %v, want ErrRegionNotFound", err)
	}
	if _, err := c.RegionOperator(ctx, 77); !errors.Is(err, ErrOperatorNotFound) {
		t.Errorf("RegionOperator(77) = %v, want ErrOperatorNotFound", err)
	}
	op, err := c.RegionOperator(ctx, 78)
	if err != nil || op.Status != OperatorSuccess || !op.Status.Finished() || !strings.HasPrefix(op.Desc, "transfer-leader {") {
		t.Errorf("RegionOperator(78) = %+v, %v", op, err)
	}
	if _, err := c.StoreProgress(ctx, 1); !errors.Is(err, ErrProgressNotFound) {
		t.Errorf("StoreProgress = %v, want ErrProgressNotFound", err)
	}
	if _, err := c.Stores(ctx); !errors.Is(err, ErrNotBootstrapped) {
		t.Errorf("Stores = %v, want ErrNotBootstrapped", err)
	}
	err = c.SetConfig(ctx, map[string]any{"x": 1})
	if !errors.As(err, &apiErr) || apiErr.Message != "plain text failure" || apiErr.Status != 400 {
		t.Errorf("SetConfig = %v", err)
	}
}

func TestInputValidationSendsNothing(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	t.Cleanup(srv.Close)
	c, _ := New([]string{srv.URL})
	ctx := context.Background()
	if _, err := c.Stores(ctx, "Sleeping"); err == nil {
		t.Error("unknown state accepted")
	}
	if _, err := c.CheckRegions(ctx, "../../stores"); err == nil {
		t.Error("unknown check accepted")
	}
	if _, err := c.TopRegions(ctx, "size", 0); err == nil {
		t.Error("limit 0 accepted")
	}
	if _, err := c.TopRegions(ctx, "bogus", 5); err == nil {
		t.Error("unknown order accepted")
	}
	if err := c.SetStoreState(ctx, 1, "Tombstone"); err == nil {
		t.Error("Tombstone state accepted")
	}
	if err := c.CreateOperator(ctx, map[string]any{"region_id": 1}); err == nil {
		t.Error("operator without name accepted")
	}
	if err := c.AddScheduler(ctx, map[string]any{}); err == nil {
		t.Error("scheduler without name accepted")
	}
	if err := c.RemoveScheduler(ctx, " "); err == nil {
		t.Error("empty scheduler name accepted")
	}
	if err := c.SetConfig(ctx, nil); err == nil {
		t.Error("empty config accepted")
	}
	if err := c.DeleteStore(ctx, 0); err == nil {
		t.Error("store 0 accepted")
	}
	if hits != 0 {
		t.Errorf("%d requests sent for invalid input", hits)
	}
}

// TestRequestsSentExactly checks the method, path, query and body of every
// mutation, and that DeleteStore never carries force.
func TestRequestsSentExactly(t *testing.T) {
	type req struct{ method, uri, body string }
	var mu sync.Mutex
	var got []req
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, req{r.Method, r.URL.RequestURI(), string(b)})
		mu.Unlock()
		_, _ = io.WriteString(w, `"ok"`)
	}))
	t.Cleanup(srv.Close)
	c, _ := New([]string{srv.URL})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.DeleteStore(ctx, 4))
	must(c.SetStoreState(ctx, 4, "up"))
	must(c.CreateOperator(ctx, map[string]any{"name": "transfer-leader", "region_id": 2, "to_store_id": 3}))
	must(c.DeleteOperator(ctx, 2))
	must(c.SetConfig(ctx, map[string]any{"leader-schedule-limit": 8}))
	must(c.AddScheduler(ctx, map[string]any{"name": "evict-leader-scheduler", "store_id": 4}))
	must(c.RemoveScheduler(ctx, "evict-leader-scheduler-4"))
	want := []req{
		{"DELETE", "/pd/api/v1/store/4", ""},
		{"POST", "/pd/api/v1/store/4/state?state=Up", ""},
		{"POST", "/pd/api/v1/operators", `{"name":"transfer-leader","region_id":2,"to_store_id":3}`},
		{"DELETE", "/pd/api/v1/operators/2", ""},
		{"POST", "/pd/api/v1/config", `{"leader-schedule-limit":8}`},
		{"POST", "/pd/api/v1/schedulers", `{"name":"evict-leader-scheduler","store_id":4}`},
		{"DELETE", "/pd/api/v1/schedulers/evict-leader-scheduler-4", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("requests = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, got[i], want[i])
		}
		if strings.Contains(strings.ToLower(got[i].uri), "force") {
			t.Errorf("request %d carries force: %s", i, got[i].uri)
		}
	}
}

func TestFailoverAndObserver(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"count":0,"stores":[]}`)
	}))
	t.Cleanup(srv.Close)
	rec := &recorder{}
	dead := closedAddr(t)
	c, err := New([]string{dead, srv.URL}, WithObserver(rec.observe), WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Stores(ctx); err != nil {
		t.Fatalf("Stores with one dead endpoint: %v", err)
	}
	if _, err := c.Stores(ctx); err != nil {
		t.Fatal(err)
	}
	seen := rec.all()
	// dead (status 0), live, then live directly: the client sticks to the
	// endpoint that answered.
	if len(seen) != 3 || seen[0].status != 0 || seen[1].status != 200 || seen[2].status != 200 {
		t.Fatalf("observed %+v", seen)
	}
	if seen[1].path != "/pd/api/v1/stores" || seen[1].method != "GET" || seen[1].bytes != int64(len(`{"count":0,"stores":[]}`)) {
		t.Errorf("observation = %+v", seen[1])
	}

	// Route templates, not concrete ids, reach the observer.
	_, _ = c.Region(ctx, 12345)
	if last := rec.all()[len(rec.all())-1]; last.path != "/pd/api/v1/region/id/{id}" {
		t.Errorf("observer path = %q, want the route template", last.path)
	}
}

func TestUnreachable(t *testing.T) {
	c, err := New([]string{closedAddr(t), closedAddr(t)}, WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Stores(ctx); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Stores = %v, want ErrUnreachable", err)
	}
	if err := c.DeleteStore(ctx, 1); !errors.Is(err, ErrUnreachable) {
		t.Errorf("DeleteStore = %v, want ErrUnreachable", err)
	}

	// A hanging PD times out per attempt and is unreachable too.
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); srv.Close() })
	c2, _ := New([]string{srv.URL}, WithTimeout(200*time.Millisecond))
	if _, err := c2.Health(ctx); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Health on a hanging PD = %v, want ErrUnreachable", err)
	}
	// A caller's cancelled context is reported as such, not as PD's fault.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c2.Health(cctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Errorf("Health with cancelled ctx = %v", err)
	}
}

// TestMutationNotRetriedAfterSend checks that a POST whose connection broke
// after it was sent is not replayed on another endpoint.
func TestMutationNotRetriedAfterSend(t *testing.T) {
	var second int
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
	}))
	t.Cleanup(broken.Close)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, `{"version":"v8.1.0"}`)
			return
		}
		second++
		_, _ = io.WriteString(w, `"ok"`)
	}))
	t.Cleanup(good.Close)
	c, _ := New([]string{broken.URL, good.URL})
	err := c.CreateOperator(context.Background(), map[string]any{"name": "transfer-leader", "region_id": 1, "to_store_id": 2})
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("err = %v, want ErrUnreachable", err)
	}
	if second != 0 {
		t.Errorf("mutation replayed on the second endpoint %d times", second)
	}
	// A GET is retried on the next endpoint.
	if v, err := c.Version(context.Background()); err != nil || v != "v8.1.0" {
		t.Errorf("GET after a broken connection = %q, %v; want failover", v, err)
	}
}

func TestDateHeader(t *testing.T) {
	when := time.Date(2026, 11, 30, 3, 9, 26, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", when.Format(http.TimeFormat))
		_, _ = io.WriteString(w, `{"version":"v8.1.0"}`)
	}))
	t.Cleanup(srv.Close)
	c, _ := New([]string{srv.URL})
	got, err := c.Date(context.Background())
	if err != nil || !got.Equal(when) {
		t.Errorf("Date = %v, %v; want %v", got, err, when)
	}
}

func TestMaxResponseBytes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"count":0,"stores":[]}`+strings.Repeat(" ", 100))
	}))
	t.Cleanup(srv.Close)
	c, _ := New([]string{srv.URL}, WithMaxResponseBytes(50))
	if _, err := c.Stores(context.Background()); !errors.Is(err, ErrDecode) {
		t.Errorf("oversized body: %v", err)
	}
}

// testPKI is a throw-away CA with one server certificate (127.0.0.1) and
// one client certificate, written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "pd"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	pemOf := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemOf("PRIVATE KEY", der)
	}
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth)
	server, err := tls.X509KeyPair(pemOf("CERTIFICATE", srvDER), keyPEM(srvKey))
	if err != nil {
		t.Fatal(err)
	}
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth)
	dir := t.TempDir()
	p := testPKI{
		caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "client.pem"), keyFile: filepath.Join(dir, "client-key.pem"),
		server: server, pool: x509.NewCertPool(),
	}
	p.pool.AddCert(ca)
	for f, b := range map[string][]byte{p.caFile: pemOf("CERTIFICATE", caDER), p.certFile: pemOf("CERTIFICATE", cliDER), p.keyFile: keyPEM(cliKey)} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestTLS talks to an HTTPS PD stand-in that requires a client
// certificate, configured from PEM files as a TLS-enabled cluster is.
func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `[{"name":"pd1","member_id":1,"client_urls":["https://x"],"health":true}]`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	host := strings.TrimPrefix(srv.URL, "https://")
	c, err := New([]string{host}, WithTLSFiles(pki.caFile, pki.certFile, pki.keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints()[0]; !strings.HasPrefix(got, "https://") {
		t.Errorf("endpoint without scheme became %q, want https", got)
	}
	h, err := c.Health(context.Background())
	if err != nil || len(h) != 1 || !h[0].Health || h[0].Name != "pd1" {
		t.Fatalf("Health over mTLS = %+v, %v", h, err)
	}
	// CA but no client certificate: the server refuses the handshake.
	c2, _ := New([]string{host}, WithTLSConfig(&tls.Config{RootCAs: pki.pool}), WithTimeout(2*time.Second))
	if _, err := c2.Health(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Health without client cert = %v, want ErrUnreachable", err)
	}
	// No CA: PD's certificate is not trusted.
	c3, _ := New([]string{srv.URL}, WithTimeout(2*time.Second))
	if _, err := c3.Health(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Health without CA = %v, want ErrUnreachable", err)
	}
}

func TestParseRegionOperator(t *testing.T) {
	cases := map[string]OperatorStatus{
		`"status: RUNNING, operator: add-peer {add peer: store [4]} (kind:admin,region)"`: OperatorRunning,
		`"status: TIMEOUT, operator: x"`: OperatorTimeout,
		`"status: CANCEL, operator: x"`:  OperatorCancel,
		`"status: REPLACE, operator: x"`: OperatorReplace,
		`"status: 5, operator: x"`:       OperatorCreated,
		`status: SUCCESS, operator: x`:   OperatorSuccess,
	}
	for in, want := range cases {
		op, err := ParseRegionOperator([]byte(in))
		if err != nil || op.Status != want {
			t.Errorf("%s: %+v %v, want %s", in, op, err, want)
		}
	}
	for _, bad := range []string{``, `"status: WEIRD, operator: x"`, `{"status":"RUNNING"}`, `"status`} {
		if _, err := ParseRegionOperator([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if OperatorRunning.Finished() || OperatorCreated.Finished() || !OperatorCancel.Finished() {
		t.Error("Finished wrong")
	}
}

func TestEvictLeaderStoresParsing(t *testing.T) {
	body := `{"store-id-ranges":{"4":[{"start-key":"","end-key":""}],"1":[{"start-key":"","end-key":""}]},"batch":3}`
	c := serveBody(t, 200, []byte(body))
	ids, err := c.EvictLeaderStores(context.Background())
	if err != nil || len(ids) != 2 || ids[0] != 1 || ids[1] != 4 {
		t.Errorf("ids = %v, %v", ids, err)
	}
	none := serveBody(t, 404, []byte(`"404 page not found"`))
	if ids, err := none.EvictLeaderStores(context.Background()); err != nil || len(ids) != 0 {
		t.Errorf("absent scheduler: %v, %v", ids, err)
	}
	bad := serveBody(t, 200, []byte(`{"store-id-ranges":{"x":[]}}`))
	if _, err := bad.EvictLeaderStores(context.Background()); !errors.Is(err, ErrDecode) {
		t.Errorf("bad store id key: %v", err)
	}
}
