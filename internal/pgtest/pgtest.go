// Package pgtest runs a real PostgreSQL server for tests: Debian's
// postgresql package (the newest /usr/lib/postgresql/N/bin), initialised in
// a temporary directory and listening on a free 127.0.0.1 port.
//
// One server serves a whole test binary (initdb costs seconds); every test
// gets its own database from NewDatabase, dropped when the test ends. The
// server starts on the first NewDatabase and is stopped by Main, which the
// package's TestMain must call:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The postgres processes also get a parent-death signal (SIGQUIT, the
// server's immediate shutdown), so a test binary killed before Main's
// cleanup leaves no server behind.
//
// When the binaries are missing, NewDatabase skips the test with the
// command that installs them, or fails it when the environment variable CI
// is set (a CI run must not silently skip the PostgreSQL tests).
//
// initdb and postgres refuse to run as root: when the test runs as root,
// the temporary directory is handed to the "postgres" system user (created
// by the Debian package) and both run with that user's credentials.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the server's superuser role.
const Superuser = "postgres"

// startTimeout bounds how long the server may take to accept connections
// after it was started.
const startTimeout = 60 * time.Second

// server is the binary's shared PostgreSQL.
type server struct {
	bin      string // directory of initdb and postgres
	dir      string // temporary directory: data/, socket, log
	port     int
	password string
	cred     *syscall.Credential // nil when not root
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
	logPath  string
}

var (
	mu      sync.Mutex
	srv     *server
	srvErr  error // a start failure is reported to every later caller
	counter int
)

// Main runs the tests of m and then stops the shared server (if a test
// started one) and removes its directory. Call it from TestMain; it does
// not return (it calls os.Exit with m.Run's code).
func Main(m *testing.M) {
	code := m.Run()
	mu.Lock()
	if srv != nil {
		if err := srv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop PostgreSQL: %v\n", err)
		}
		_ = os.RemoveAll(srv.dir)
		srv = nil
	}
	mu.Unlock()
	os.Exit(code)
}

// BinDir returns the directory of the newest installed PostgreSQL's
// initdb and postgres (/usr/lib/postgresql/N/bin), or "" when none is
// installed.
func BinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type cand struct {
		dir string
		ver int
	}
	var cs []cand
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			continue
		}
		cs = append(cs, cand{d, v})
	}
	if len(cs) == 0 {
		return ""
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ver > cs[j].ver })
	return cs[0].dir
}

// get returns the shared server, starting it on first use. It skips (or,
// with CI set, fails) t when PostgreSQL is not installed.
func get(t testing.TB) *server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if srv != nil {
		return srv
	}
	if srvErr != nil {
		t.Fatalf("pgtest: %v", srvErr)
	}
	bin := BinDir()
	if bin == "" {
		msg := "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql, or run scripts/test.sh"
		if os.Getenv("CI") != "" {
			t.Fatalf("pgtest: %s (CI is set: not skipping)", msg)
		}
		t.Skip("pgtest: " + msg)
	}
	s, err := start(bin)
	if err != nil {
		srvErr = err
		t.Fatalf("pgtest: %v", err)
	}
	srv = s
	return srv
}

func start(bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	s := &server{bin: bin, dir: dir, password: hex.EncodeToString(pw), logPath: filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root, and initdb refuses root: no postgres system user to run it as (%v)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.cred != nil {
		_ = os.Chown(pwfile, int(s.cred.Uid), int(s.cred.Gid))
	}
	initdb := s.command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", Superuser,
		"--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync")
	out, err := initdb.CombinedOutput()
	_ = os.Remove(pwfile)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // another process may take the free port first
		if s.port, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if lastErr = s.run(); lastErr == nil {
			return s, nil
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command builds a command running as the postgres user when root, dying
// with the test binary.
func (s *server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"LANG=C", "LC_ALL=C", "PATH=/usr/bin:/bin", "HOME=" + s.dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	return cmd
}

// run starts postgres on s.port and waits until it accepts connections.
func (s *server) run() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := s.command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, s.exited)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.url(Superuser, s.password, "postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited on start (port %d): %s", s.port, s.logTail())
		case <-ctx.Done():
			_ = s.stop()
			return fmt.Errorf("postgres did not accept connections within %s: %v; log: %s", startTimeout, err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts postgres down (fast shutdown: SIGINT) and waits; after 30 s
// it kills it.
func (s *server) stop() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("postgres did not stop within 30s after SIGINT: killed")
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

func (s *server) url(user, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDatabase creates a fresh database on the shared server (starting the
// server on first use) and returns its URL as the superuser,
// postgres://postgres:PASSWORD@127.0.0.1:PORT/DB?sslmode=disable. The
// database is dropped (its connections terminated) when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "")
}

// NewDatabaseFrom is NewDatabase with a copy of template, a database made
// by Template (CREATE DATABASE … TEMPLATE: cheaper than running a
// schema's migrations in every test).
func NewDatabaseFrom(t testing.TB, template string) string {
	t.Helper()
	return newDatabase(t, template)
}

var templates sync.Map // name → *templateOnce

type templateOnce struct {
	once sync.Once
	err  error
}

// Template creates the database name once per test binary, runs init on
// its superuser URL (init must close its connections before returning),
// and returns name for NewDatabaseFrom. The template lives until the
// server stops. A failed init fails every test that asks for it.
func Template(t testing.TB, name string, init func(url string) error) string {
	t.Helper()
	s := get(t)
	v, _ := templates.LoadOrStore(name, &templateOnce{})
	to := v.(*templateOnce)
	to.once.Do(func() {
		if to.err = s.exec(context.Background(), `CREATE DATABASE "`+name+`"`); to.err != nil {
			return
		}
		to.err = init(s.url(Superuser, s.password, name))
	})
	if to.err != nil {
		t.Fatalf("pgtest: template database %s: %v", name, to.err)
	}
	return name
}

func newDatabase(t testing.TB, template string) string {
	t.Helper()
	s := get(t)
	mu.Lock()
	counter++
	name := fmt.Sprintf("t%d_%d", os.Getpid(), counter)
	mu.Unlock()
	stmt := `CREATE DATABASE "` + name + `"`
	if template != "" {
		stmt += ` TEMPLATE "` + template + `"`
	}
	if err := s.exec(context.Background(), stmt); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if srv == nil || srv.cmd == nil {
			return
		}
		if err := s.exec(context.Background(), `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.url(Superuser, s.password, name)
}

// exec runs one statement as the superuser in the "postgres" database.
func (s *server) exec(ctx context.Context, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url(Superuser, s.password, "postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, stmt)
	return err
}

// SuperuserURL returns the superuser's URL of database db on the shared
// server (starting it on first use); db "" means the "postgres" database.
func SuperuserURL(t testing.TB, db string) string {
	t.Helper()
	if db == "" {
		db = "postgres"
	}
	return get(t).url(Superuser, get(t).password, db)
}

// URL returns the URL of database db on the shared server for role user
// with password (a role the test created, e.g. a runtime role without
// UPDATE and DELETE on the audit table).
func URL(t testing.TB, user, password, db string) string {
	t.Helper()
	return get(t).url(user, password, db)
}

// Restart stops the shared server (fast shutdown: open connections are
// terminated, committed transactions survive) and starts it again on the
// same data directory and port, waiting until it accepts connections.
// Databases and URLs stay valid. Tests that restart the server must not
// run in parallel with tests that need it up.
func Restart(t testing.TB) {
	t.Helper()
	s := get(t)
	mu.Lock()
	defer mu.Unlock()
	if err := s.stop(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
	if err := s.run(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// Stop stops the shared server (fast shutdown) until Start: an outage
// longer than a restart. Tests that stop the server must not run in
// parallel with tests that need it up.
func Stop(t testing.TB) {
	t.Helper()
	s := get(t)
	mu.Lock()
	defer mu.Unlock()
	if err := s.stop(); err != nil {
		t.Fatalf("pgtest: stop: %v", err)
	}
}

// Start starts the shared server again after Stop, on the same data
// directory and port, waiting until it accepts connections.
func Start(t testing.TB) {
	t.Helper()
	s := get(t)
	mu.Lock()
	defer mu.Unlock()
	if err := s.run(); err != nil {
		t.Fatalf("pgtest: start: %v", err)
	}
}

// Port returns the shared server's TCP port on 127.0.0.1.
func Port(t testing.TB) int {
	t.Helper()
	return get(t).port
}
