package cli_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tikvops/operator/internal/cli"
	"github.com/tikvops/operator/internal/cli/clitest"
	"github.com/tikvops/operator/internal/testcluster"
)

// silentPD accepts connections and never answers: a stuck PD, or a port
// that is not PD's client URL.
func silentPD(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-done; c.Close() }()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestCheckTimeoutIsPDUnreachable(t *testing.T) {
	db, _ := clitest.DB(t)
	// --timeout shorter than [pd] timeout (5s): the check's deadline ends
	// the collection.
	run(t, db, "check", "--pd", silentPD(t), "--timeout", "1s").
		expect(t, cli.ExitPDUnreachable, nil, []string{"did not answer within --timeout 1s", "Hint:"})
}

func TestCheckNotPD(t *testing.T) {
	db, _ := clitest.DB(t)
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	run(t, db, "check", "--pd", notFound.URL).expect(t, cli.ExitNotPD, nil, []string{"this is not PD", "client URL"})
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>Grafana</body></html>"))
	}))
	defer html.Close()
	run(t, db, "check", "--pd", html.URL).expect(t, cli.ExitNotPD, nil, []string{"this is not PD"})
}

func TestCheckNoPDLeader(t *testing.T) {
	db, _ := clitest.DB(t)
	// PD answers 503 while it has no leader.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `"no leader"`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	run(t, db, "check", "--pd", srv.URL).expect(t, cli.ExitPDUnreachable, nil, []string{"503", "no leader"})
}

// fakePD answers GET /pd/api/v1/stores with stores and everything else
// with other (status, body).
func fakePD(t *testing.T, stores string, status int, other string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/pd/api/v1/stores" && r.URL.RawQuery == "" {
			_, _ = w.Write([]byte(stores))
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(other))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCheckNotEvaluatedIsNotOK(t *testing.T) {
	db, _ := clitest.DB(t)
	// /stores answers null: no store, nothing to evaluate.
	r := run(t, db, "check", "--pd", fakePD(t, "null", 200, "null"))
	r.expect(t, cli.ExitNotEvaluated, nil, []string{"reports no store"})
	if strings.Contains(r.out, "OK") {
		t.Errorf("check says OK with no store:\n%s", r.out)
	}
	// One store, but every other PD endpoint fails: the invariants that
	// need them are not evaluated, which is not a pass.
	one := `{"count":1,"stores":[{"store":{"id":1,"address":"127.0.0.1:20160","state_name":"Up","version":"8.5.0"},
	  "status":{"capacity":"100GiB","available":"80GiB","leader_count":1,"region_count":1,"last_heartbeat_ts":"` +
		time.Now().UTC().Format(time.RFC3339) + `"}}]}`
	r = run(t, db, "check", "--pd", fakePD(t, one, 500, `"internal error"`))
	if r.code != cli.ExitNotEvaluated && r.code != cli.ExitViolations {
		t.Fatalf("exit %d, want %d (or 7 with violations)\n%s\n%s", r.code, cli.ExitNotEvaluated, r.out, r.errOut)
	}
	if r.code == cli.ExitNotEvaluated && (!strings.Contains(r.errOut, "could not be evaluated") || strings.Contains(r.out, "OK:")) {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.out, r.errOut)
	}
}

func TestTLSFilesWithHTTPEndpoint(t *testing.T) {
	db, _ := clitest.DB(t)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, db, "check", "--pd", "http://127.0.0.1:1", "--cacert", ca).
		expect(t, cli.ExitUsage, nil, []string{"TLS files are set", "https://127.0.0.1:1"})
}

// pki writes a CA and a leaf certificate it signed (server: for
// 127.0.0.1) into dir, returning the file names.
func pki(t *testing.T, dir, name string, server bool) (caFile, certFile, keyFile string, pool *x509.CertPool, cert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(f, typ string, b []byte) string {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile = write(name+"-ca.crt", "CERTIFICATE", caDER)
	certFile = write(name+".crt", "CERTIFICATE", der)
	keyFile = write(name+".pem", "EC PRIVATE KEY", keyDER)
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return caFile, certFile, keyFile, pool, cert
}

func TestTLSClientCertFromWrongCA(t *testing.T) {
	db, _ := clitest.DB(t)
	dir := t.TempDir()
	serverCA, _, _, clusterPool, serverCert := pki(t, dir, "cluster", true)
	_, otherCert, otherKey, _, _ := pki(t, dir, "other", false)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("null"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: clusterPool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.Config.ErrorLog = nil
	srv.StartTLS()
	defer srv.Close()
	run(t, db, "check", "--pd", srv.URL, "--cacert", serverCA, "--cert", otherCert, "--key", otherKey).
		expect(t, cli.ExitPDUnreachable, nil, []string{"PD rejected the client certificate", "signed by a CA it trusts"})
	// And the other way round: PD's certificate is not signed by --cacert.
	otherCA := filepath.Join(dir, "other-ca.crt")
	run(t, db, "check", "--pd", srv.URL, "--cacert", otherCA, "--cert", otherCert, "--key", otherKey).
		expect(t, cli.ExitPDUnreachable, nil, []string{"not signed by the CA in --cacert"})
}

func TestConfigShowIntegers(t *testing.T) {
	db, _ := clitest.DB(t)
	r := run(t, db, "config", "show")
	r.expect(t, 0, []string{"hot-write-min-bytes-per-sec = 1048576\n"}, nil)
	if strings.Contains(r.out, "e+0") {
		t.Errorf("config show prints exponents:\n%s", r.out)
	}
}

func TestCompletionAndManPages(t *testing.T) {
	db, _ := clitest.DB(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := run(t, db, "completion", sh)
		r.expect(t, 0, []string{"operator"}, nil)
		if len(r.out) < 500 {
			t.Errorf("completion %s: %d bytes", sh, len(r.out))
		}
	}
	dir := t.TempDir()
	run(t, db, "docs", "man", dir).expect(t, 0, nil, nil)
	for _, page := range []string{"operator.1", "operator-tickets-list.1", "operator-check.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), ".TH") {
			t.Errorf("%s is not a man page", page)
		}
	}
	// The list commands document --wide in their man pages as in --help.
	b, _ := os.ReadFile(filepath.Join(dir, "operator-tickets-list.1"))
	if !strings.Contains(string(b), "wide") || !strings.Contains(string(b), "watch") {
		t.Errorf("operator-tickets-list.1 lacks --wide/--watch")
	}
}

func TestAuditListHelpWording(t *testing.T) {
	db, _ := clitest.DB(t)
	run(t, db, "audit", "--help").expect(t, 0, []string{"approvals, rejections, dry runs and executions"}, nil)
	run(t, db, "audit", "list", "--help").expect(t, 0, []string{"one record per approval, rejection,\ndry run and execution"}, nil)
}

var _ = context.Background

// TestCheckRealPD runs check against a real pd-server with simulated
// stores: the fresh cluster passes with the default thresholds (exit 0,
// "OK", every invariant evaluated); PD's answers are never "not PD" nor
// "not evaluated".
func TestCheckRealPD(t *testing.T) {
	db, _ := clitest.DB(t)
	c := testcluster.Start(t, testcluster.Options{Stores: 3, Regions: 6})
	r := run(t, db, "check", "--pd", c.PDURL)
	r.expect(t, cli.ExitOK, []string{"OK: ", "invariants hold on " + c.PDURL}, nil)
	if r.errOut != "" {
		t.Errorf("stderr: %s", r.errOut)
	}
	r = run(t, db, "check", "--pd", c.PDURL, "-o", "json")
	r.expect(t, cli.ExitOK, []string{`"evaluated": [`, `"violations": []`}, nil)
	if strings.Contains(r.out, `"errors"`) {
		t.Errorf("invariants not evaluated on a real PD:\n%s", r.out)
	}
}
