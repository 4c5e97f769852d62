package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	s := &Store{db: db, path: name, pg: true, log: log.With("component", "store", "db", name), wsem: make(chan struct{}, 1)}
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
	rows, err := c.Conn.QueryContext(ctx, rebind(query), args)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
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
