package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The PostgreSQL backend (issue 14: several replicas on one shared
// database).
//
// Open takes a postgres:// or postgresql:// URL instead of a file path.
// The store keeps one code path for both databases: the queries are
// written once, with SQLite's "?" and "?N" placeholders, and the
// connections of a PostgreSQL store rewrite them to $N (rebind, outside
// string literals, quoted identifiers and comments). Where the SQL really
// differs the store asks its dialect (seqTable, jsonEach); everything
// else is SQL both databases speak (RETURNING, ON CONFLICT ... DO
// NOTHING/UPDATE, CASE instead of SQLite's scalar max).
//
// What stays the same on PostgreSQL:
//
//   - Write serialisation. SQLite takes the database's write lock at BEGIN
//     IMMEDIATE; on PostgreSQL every write transaction starts with
//     pg_advisory_xact_lock(writeLockKey), so audit-chain appends (read
//     the head, hash, insert) and compare-and-swap transitions are serial
//     across processes and replicas exactly as on SQLite. The lock waits
//     up to Options.BusyTimeout (lock_timeout) and is released at commit
//     or rollback. Writers sharing one Store still queue on wsem first.
//   - Ids. SQLite's AUTOINCREMENT (a new id is past the highest ever
//     issued, kept in sqlite_sequence; a rolled-back insert issues
//     nothing) is reproduced by a BEFORE INSERT trigger and the table
//     id_sequence, updated in the inserting transaction: no gaps from
//     rollbacks (PostgreSQL sequences are not transactional), and a
//     deleted tail of the audit trail stays visible to Verify.
//   - Append-only tables (action_records, silences, silence_expiries):
//     plpgsql triggers refuse UPDATE, DELETE and TRUNCATE; in addition the
//     daemon can connect as a runtime role without UPDATE, DELETE and
//     TRUNCATE on them (PostgresRuntimeGrants), while the owner role runs
//     the migrations. Verify still detects rows changed by a superuser who
//     disabled the triggers (hash chain, signatures, checkpoints).
//   - Times: the same fixed-width UTC text (timeLayout), compared as
//     strings; text columns use the "C" collation so that ORDER BY and
//     comparisons are byte order, as in SQLite, whatever the database's
//     default collation.
//   - Schema versions: schema_migrations holds the same numbers; the
//     PostgreSQL schema at version N equals SQLite's at version N
//     (pgMigrations), so ErrSchemaTooNew works on both.

// writeLockKey is the pg_advisory_xact_lock key every write transaction
// of every operator process on the database takes first (an arbitrary
// constant: "op.store" in ASCII).
const writeLockKey int64 = 0x6f702e73746f7265

// DefaultPostgresConns is the pool size of a PostgreSQL store when
// Options.MaxOpenConns is zero.
const DefaultPostgresConns = 8

// IsPostgresURL reports whether target names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURL(target string) bool {
	t := strings.ToLower(strings.TrimSpace(target))
	return strings.HasPrefix(t, "postgres://") || strings.HasPrefix(t, "postgresql://")
}

// RedactURL returns a PostgreSQL URL without its password (user, host,
// port and database stay), for logs and errors. A string that does not
// parse becomes "postgres://(unparsable URL)".
func RedactURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	if q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// openPostgres is Open for a PostgreSQL URL. The database must exist (the
// owner role creates it: createdb); Options.Create does not create it.
func openPostgres(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	name := RedactURL(rawURL)
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx's parse errors may quote the URL: name only the redacted one.
		return nil, fmt.Errorf("open database %s: %w: not a valid PostgreSQL URL", name, ErrInvalid)
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = busy
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	// A write waits this long for another replica's write lock.
	cfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(busy.Milliseconds(), 10)
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "operator"
	}
	db := sql.OpenDB(pgConnector{base: stdlib.GetConnector(*cfg)})
	conns := opts.MaxOpenConns
	if conns <= 0 {
		conns = DefaultPostgresConns
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	// Recycle connections so a replica follows a failover of the server
	// (DNS) and does not hold server memory forever.
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)

	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Store{db: db, path: name, pg: true, log: log.With("component", "store", "db", name), wsem: make(chan struct{}, 1), reconnectWait: busy}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "3D000" { // invalid_catalog_name
			return nil, fmt.Errorf("%w at %s (create it first: createdb, as the owner role)", ErrNoDatabase, name)
		}
		return nil, fmt.Errorf("open database %s: %w", name, redactErr(err, rawURL))
	}
	if err := s.migratePostgres(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", name, redactErr(err, rawURL))
	}
	return s, nil
}

// redactErr makes sure err's text does not carry the URL's password
// (pgx does not put it there today; this keeps it so).
func redactErr(err error, rawURL string) error {
	u, perr := url.Parse(rawURL)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}

// seqTable is the table holding the highest id ever issued per table:
// SQLite's sqlite_sequence, or id_sequence (same columns name, seq) on
// PostgreSQL.
func (s *Store) seqTable() string {
	if s.pg {
		return "id_sequence"
	}
	return "sqlite_sequence"
}

// jsonEach is a table expression over the elements of the JSON array
// bound to one "?" parameter, with one text column "value": SQLite's
// json_each, PostgreSQL's json_array_elements_text. Integer elements need
// CAST(value AS INTEGER) to compare with integer columns.
func (s *Store) jsonEach() string {
	if s.pg {
		return "json_array_elements_text(CAST(? AS json)) AS json_each(value)"
	}
	return "json_each(?)"
}

// lockWrites takes the database-wide write lock inside tx (PostgreSQL);
// SQLite took it at BEGIN IMMEDIATE already.
func (s *Store) lockWrites(ctx context.Context, tx *sql.Tx) error {
	if !s.pg {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, writeLockKey); err != nil {
		return fmt.Errorf("take the write lock (pg_advisory_xact_lock): %w", err)
	}
	return nil
}

// beginWrite starts a write transaction: BEGIN (SQLite: BEGIN
// IMMEDIATE, which takes the write lock), on PostgreSQL the write lock
// (lockWrites), and the leader's term fence (fencing.go).
//
// Retry policy on PostgreSQL (docs/ha.md, "PostgreSQL restarted"): when
// one of these steps fails because the connection was lost or could not
// be made (connLost: the server restarted and terminated the pool's
// connections, or is starting or down), the transaction is rolled back and
// the steps are retried on another connection, with a backoff from 50 ms
// to 1 s, for up to reconnectWait (Options.BusyTimeout) or until ctx ends.
// That is safe because nothing of the caller's write has run yet: the
// fence's own write is inside the rolled-back transaction. Nothing after
// this point is retried: a connection lost during the caller's statements
// rolls the transaction back (the error is returned), and one lost during
// COMMIT leaves the outcome unknown, so the error is returned and the
// caller must not assume either outcome (an API decision answers 500; the
// person looks before deciding again, and a second approval or rejection
// of the same action is refused as a conflict, never recorded twice).
func (s *Store) beginWrite(ctx context.Context) (*sql.Tx, error) {
	deadline := time.Now().Add(s.reconnectWait)
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			err = fmt.Errorf("begin write transaction: %w", err)
		} else if err = s.lockWrites(ctx, tx); err == nil {
			if err = s.fence(ctx, tx, time.Now()); err == nil {
				if attempt > 1 {
					s.log.Info("database connection back: write proceeds", "attempts", attempt)
				}
				return tx, nil
			}
		}
		if tx != nil {
			_ = tx.Rollback()
		}
		if !s.pg || !connLost(err) || ctx.Err() != nil || time.Now().Add(delay).After(deadline) {
			return nil, err
		}
		s.log.Warn("database connection lost before a write; retrying on a new connection", "attempt", attempt, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// connLost reports whether err says that the connection to PostgreSQL
// was lost or could not be made, rather than that a statement failed:
// driver.ErrBadConn, an error pgx marks safe to retry (nothing was sent),
// a connect error, SQLSTATE class 08 (connection exception), 57P01
// (admin_shutdown: the server is stopping), 57P02 (crash_shutdown), 57P03
// (cannot_connect_now: starting or stopping), an EOF or a network error.
func connLost(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
}

// Dialect returns "postgres" or "sqlite".
func (s *Store) Dialect() string {
	if s.pg {
		return "postgres"
	}
	return "sqlite"
}

// pgConnector wraps pgx's database/sql connector so that every
// connection rebinds the store's "?" placeholders to PostgreSQL's $N.
type pgConnector struct{ base driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("pgx stdlib returned a %T connection", conn)
	}
	return &pgConn{Conn: sc}, nil
}

func (c pgConnector) Driver() driver.Driver { return c.base.Driver() }

// pgConn is a pgx connection whose query methods rebind placeholders and
// whose arguments are converted as SQLite would store them (bool → 0/1).
type pgConn struct{ *stdlib.Conn }

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(rebind(query))
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(query), args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	idle := c.Conn.Conn().PgConn().TxStatus() == 'I'
	rows, err := c.Conn.QueryContext(ctx, rebind(query), args)
	if err != nil {
		// A SELECT outside a transaction on a connection the server
		// closed (a restart) is retried by database/sql on another
		// connection when told driver.ErrBadConn: a read has no outcome
		// to lose. Anything else keeps its error.
		if idle && ctx.Err() == nil && c.Conn.Conn().IsClosed() && isSelect(query) && connLost(err) {
			return nil, driver.ErrBadConn
		}
		return nil, err
	}
	return pgRows{rows}, nil
}

// isSelect reports whether query is a plain SELECT (its first keyword,
// after blanks): a statement that writes nothing.
func isSelect(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

// pgRows returns a boolean result (EXISTS, a comparison) as the integer
// 0 or 1, as SQLite does: the store scans such results into ints and
// bools alike.
type pgRows struct{ driver.Rows }

func (r pgRows) Next(dest []driver.Value) error {
	if err := r.Rows.Next(dest); err != nil {
		return err
	}
	for i, v := range dest {
		if b, ok := v.(bool); ok {
			if b {
				dest[i] = int64(1)
			} else {
				dest[i] = int64(0)
			}
		}
	}
	return nil
}

// CheckNamedValue stores Go bools as the integers 0 and 1: the schema has
// no boolean columns (as in SQLite, where true is stored as 1).
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if b, ok := nv.Value.(bool); ok {
		if b {
			nv.Value = int64(1)
		} else {
			nv.Value = int64(0)
		}
	}
	return c.Conn.CheckNamedValue(nv)
}

// rebinds caches rebind's results: the store's queries are a few hundred
// constant strings.
var rebinds sync.Map // string → string

const maxRebindCache = 4096

var rebindCount struct {
	sync.Mutex
	n int
}

// rebind rewrites SQLite placeholders to PostgreSQL's: "?NNN" becomes
// "$NNN" and a bare "?" becomes "$N" with N one past the largest number
// used so far in the statement (SQLite's own numbering rule). Question
// marks inside '…' literals, "…" identifiers, $tag$…$tag$ bodies and
// comments are left alone.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	if v, ok := rebinds.Load(q); ok {
		return v.(string)
	}
	out := rebindSlow(q)
	rebindCount.Lock()
	if rebindCount.n < maxRebindCache {
		rebindCount.n++
		rebinds.Store(q, out)
	}
	rebindCount.Unlock()
	return out
}

func rebindSlow(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	maxN := 0
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			j = min(j+1, len(q))
			b.WriteString(q[i:j])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			end := len(q)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(q[i:end])
			i = end
		case c == '$':
			// $tag$ … $tag$ (a dollar-quoted body), else a plain '$'.
			j := i + 1
			for j < len(q) && (q[j] == '_' || q[j] >= 'a' && q[j] <= 'z' || q[j] >= 'A' && q[j] <= 'Z') {
				j++
			}
			if j < len(q) && q[j] == '$' {
				tag := q[i : j+1]
				k := strings.Index(q[j+1:], tag)
				end := len(q)
				if k >= 0 {
					end = j + 1 + k + len(tag)
				}
				b.WriteString(q[i:end])
				i = end
				continue
			}
			b.WriteByte(c)
			i++
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			n := maxN + 1
			if j > i+1 {
				n, _ = strconv.Atoi(q[i+1 : j])
			}
			maxN = max(maxN, n)
			b.WriteString("$" + strconv.Itoa(n))
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}
