// Package store is the operator's persistence: tickets, action proposals
// and the append-only audit trail of action records, in one SQLite file
// or, for several replicas, one PostgreSQL database (postgres.go: the same
// queries, guarantees and schema versions; what differs is listed there).
// The aggregates it holds are described by small interfaces
// (interfaces.go) that *Store satisfies on both databases.
//
// The daemon (monitor loop, diagnosis runner, executor) and CLI invocations
// open the same file from different processes at the same time. The store
// is built for that:
//
//   - The database runs in WAL mode, so readers never block the writer and
//     the writer never blocks readers.
//   - Every write is one transaction started with BEGIN IMMEDIATE (the DSN
//     sets _txlock=immediate): a writer takes the database's write lock
//     before it reads anything, so two writers never deadlock on a lock
//     upgrade; the second one waits up to Options.BusyTimeout instead of
//     failing with "database is locked". Writers sharing one Store also
//     queue on a semaphore so they do not poll SQLite's lock.
//   - Every status change is a compare-and-swap
//     (UPDATE ... WHERE id = ? AND status = ?) validated against the
//     transition tables of package ticket and package action. A lost race
//     returns *ticket.ErrTransition or *action.ErrTransition carrying the
//     status the row is really in.
//   - synchronous=FULL: a committed transaction survives a power loss, which
//     the executor's at-most-once guarantee (a claim is durable before PD is
//     called) relies on.
//
// Times are passed in by the caller (the store never reads the clock for
// lifecycle fields) and stored as UTC text with a fixed width,
// "2006-01-02T15:04:05.000000000Z", so that SQL compares them as strings
// and humans can read them with the sqlite3 shell.
//
// Action records are append-only (triggers refuse UPDATE and DELETE) and
// hash-chained; see RecordHash for the exact encoding and Verify for what a
// walk of the chain detects.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tikvops/operator/internal/action"
	"github.com/tikvops/operator/internal/auditkey"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Sentinel errors callers branch on (errors.Is).
var (
	// ErrNoDatabase is returned by Open when the file does not exist and
	// Options.Create is false. The wrapping error names the path.
	ErrNoDatabase = errors.New("no operator database")
	// ErrNotFound is returned for an unknown ticket, proposal or record id,
	// or when no non-resolved ticket has the requested key.
	ErrNotFound = errors.New("not found")
	// ErrExpired is returned (wrapped) by Approve when the proposal's
	// expires_at has passed; the proposal has been moved to expired.
	ErrExpired = errors.New("proposal expired")
	// ErrInvalid is returned (wrapped) for an argument the store refuses:
	// empty approver, missing reject reason, malformed JSON, a final status
	// that is not completed or failed, ...
	ErrInvalid = errors.New("invalid argument")
	// ErrSchemaTooNew is returned by Open when the file was migrated by a
	// newer operator binary than this one.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

// DefaultBusyTimeout is how long a write waits for another process's write
// transaction before failing, when Options.BusyTimeout is zero.
const DefaultBusyTimeout = 10 * time.Second

// Options configure Open.
type Options struct {
	// Create creates the file and its parent directory when missing (the
	// daemon). When false (CLI read commands) a missing file makes Open
	// return ErrNoDatabase and no file is created.
	Create bool
	// BusyTimeout bounds how long a write waits for another connection's
	// write lock (SQLite busy_timeout). Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxOpenConns caps the connection pool; zero means 4.
	MaxOpenConns int
	// Logger receives migration messages; nil discards them.
	Logger *slog.Logger
}

// Store is a handle on the operator database. It is safe for concurrent use
// by multiple goroutines; several Stores (in one or many processes) may
// open the same file.
type Store struct {
	db   *sql.DB
	path string // the file's absolute path, or the PostgreSQL URL without password
	pg   bool   // PostgreSQL (postgres.go) rather than SQLite
	log  *slog.Logger
	// wsem serialises this handle's write transactions (capacity 1), so
	// in-process writers queue here rather than in SQLite's busy handler.
	wsem chan struct{}
	// reconnectWait bounds how long a PostgreSQL write waits for the
	// server to come back (beginWrite); Options.BusyTimeout.
	reconnectWait time.Duration

	// integrity: see integrity.go.
	imu        sync.RWMutex
	cluster    string
	clusterNm  string // the name cluster is bound under (clusters.go)
	signer     *auditkey.Key
	checkpoint *auditkey.Checkpoint
	onAppend   func(action.Record)
	// pending holds the records appended by the write transaction in
	// progress (guarded by wsem); write() passes them to afterAppend after
	// the commit and drops them on rollback.
	pending []action.Record
}

// Open opens (and with Options.Create, creates) the database at path, sets
// WAL mode, busy_timeout, foreign keys and synchronous=FULL on every
// connection, and applies pending migrations, each in its own transaction.
// Concurrent Opens of the same file are safe: a migration is applied once.
//
// A path starting with postgres:// or postgresql:// opens that PostgreSQL
// database instead (postgres.go): it must exist (Create does not create
// it), its pending migrations are applied under the database's write lock,
// and errors name the host and database but never the password.
//
// Errors: ErrNoDatabase (wrapped, naming the path) when the file is
// missing and Create is false, or the PostgreSQL database is missing; ErrSchemaTooNew when a newer binary migrated the
// file; otherwise the wrapped SQLite or filesystem error.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open database: %w: empty path", ErrInvalid)
	}
	if IsPostgresURL(path) {
		return openPostgres(ctx, path, opts)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	mode := "rw"
	if opts.Create {
		if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
			return nil, fmt.Errorf("open database %s: %w", abs, err)
		}
		mode = "rwc"
	} else if _, err := os.Stat(abs); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s (the daemon creates it on first start)", ErrNoDatabase, abs)
		}
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}

	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	db, err := sql.Open("sqlite", dsn(abs, mode, busy))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	conns := opts.MaxOpenConns
	if conns <= 0 {
		conns = 4
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)

	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Store{db: db, path: abs, log: log.With("component", "store", "db", abs), wsem: make(chan struct{}, 1)}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		if !opts.Create && isCantOpen(err) {
			return nil, fmt.Errorf("%w at %s: %v", ErrNoDatabase, abs, err)
		}
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	if err := s.setWAL(ctx, busy); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	return s, nil
}

// dsn builds a modernc.org/sqlite URI for an absolute path. mode is
// SQLite's URI mode: "rw" never creates the file, "rwc" does.
func dsn(abs, mode string, busy time.Duration) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Set("mode", mode)
	q.Set("_txlock", "immediate")
	// busy_timeout is applied first by the driver, before journal_mode,
	// so switching a fresh file to WAL also waits instead of failing.
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	// journal_mode is not set here: switching a new file to WAL needs an
	// exclusive lock, and two connections switching at once fail with
	// SQLITE_BUSY without waiting (deadlock avoidance). setWAL retries.
	return u.String() + "?" + q.Encode()
}

// setWAL puts the file in WAL mode (persistent; a no-op once done),
// retrying for up to busy while other connections hold locks.
func (s *Store) setWAL(ctx context.Context, busy time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, busy)
	defer cancel()
	delay := 2 * time.Millisecond
	for {
		var mode string
		err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err != nil && !isBusy(err) {
			return fmt.Errorf("set WAL mode: %w", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = fmt.Errorf("journal mode stays %q", mode)
			}
			return fmt.Errorf("set WAL mode: %w (gave up after %s)", err, busy)
		case <-t.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// isBusy reports SQLITE_BUSY or SQLITE_LOCKED (primary codes 5 and 6).
func isBusy(err error) bool {
	var coder interface{ Code() int }
	if !errors.As(err, &coder) {
		return false
	}
	c := coder.Code() & 0xff
	return c == 5 || c == 6
}

func isCantOpen(err error) bool {
	var coder interface{ Code() int }
	// SQLITE_CANTOPEN = 14 (primary code; extended codes keep it in the low byte).
	return errors.As(err, &coder) && coder.Code()&0xff == 14
}

// Path returns the absolute path of the database file, or for PostgreSQL
// the URL without its password.
func (s *Store) Path() string { return s.path }

// Close closes the database handle. Other handles on the same file are not
// affected.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close database %s: %w", s.path, err)
	}
	return nil
}

// write runs fn in one BEGIN IMMEDIATE transaction and commits it when fn
// returns nil. It waits for this handle's other writers first (honouring
// ctx), then for other handles' write lock (busy_timeout).
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wsem }()

	s.pending = s.pending[:0]
	// BEGIN, on PostgreSQL the database-wide write lock, and the leader's
	// term fence (fencing.go); on PostgreSQL retried on a lost connection
	// (beginWrite, postgres.go), never after fn ran.
	tx, err := s.beginWrite(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		s.pending = s.pending[:0]
		return err
	}
	if err := tx.Commit(); err != nil {
		s.pending = s.pending[:0]
		return fmt.Errorf("commit: %w", err)
	}
	for _, rec := range s.pending {
		s.afterAppend(rec)
	}
	s.pending = s.pending[:0]
	return nil
}

// timeLayout is the stored time format: UTC, fixed width, so that string
// order is time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// fmtTime formats t for storage.
func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime formats t for storage, or NULL when t is nil or zero.
func nullTime(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return fmtTime(*t)
}

// timeCol scans a stored time (TEXT or NULL).
type timeCol struct {
	t     time.Time
	valid bool
}

// Scan implements sql.Scanner.
func (c *timeCol) Scan(v any) error {
	var s string
	switch v := v.(type) {
	case nil:
		c.valid = false
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	case time.Time:
		c.t, c.valid = v.UTC(), true
		return nil
	default:
		return fmt.Errorf("stored time has type %T", v)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("stored time %q: %w", s, err)
	}
	c.t, c.valid = t.UTC(), true
	return nil
}

func (c timeCol) ptr() *time.Time {
	if !c.valid {
		return nil
	}
	t := c.t
	return &t
}

// jsonArg validates raw JSON for storage; empty means NULL.
func jsonArg(field string, raw []byte) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: %s is not valid JSON", ErrInvalid, field)
	}
	return string(raw), nil
}

func jsonCol(ns sql.NullString) []byte {
	if !ns.Valid || ns.String == "" {
		return nil
	}
	return []byte(ns.String)
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// placeholders returns "?, ?, ?" for n arguments.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	b := make([]byte, 0, 3*n)
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '?')
	}
	return string(b)
}
