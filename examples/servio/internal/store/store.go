package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/servio/perfkit/dbpool"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect says which SQL database a Store talks to.
type Dialect int

const (
	// SQLite is the embedded default (modernc.org/sqlite, no cgo).
	SQLite Dialect = iota
	// Postgres is PostgreSQL through pgx's database/sql driver.
	Postgres
)

// String returns "sqlite" or "postgres".
func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Errors the repositories return; handlers map them to HTTP statuses.
var (
	ErrNotFound  = errors.New("store: not found")
	ErrConflict  = errors.New("store: conflict")
	ErrBadCursor = errors.New("store: bad cursor")
)

// NotFoundError names what was not found; it matches ErrNotFound.
type NotFoundError struct {
	What string
	ID   int64
}

// Error returns "<what> <id> not found".
func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %d not found", e.What, e.ID) }

// Is reports whether target is ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ConflictError says why a write was refused (out of stock, item not
// available, order already closed); it matches ErrConflict.
type ConflictError struct{ Reason string }

// Error returns the reason.
func (e *ConflictError) Error() string { return e.Reason }

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

//go:embed migrations
var migrations embed.FS

// Target resolves the database to use: databaseURL (postgres:// or
// postgresql://) when set, otherwise the SQLite file servio.db under dataDir
// with dbpool's SQLite settings (WAL, busy timeout 5 s, foreign keys on,
// immediate write transactions).
func Target(databaseURL, dataDir string) (driver, dsn string, d Dialect, err error) {
	if databaseURL != "" {
		if !strings.HasPrefix(databaseURL, "postgres://") && !strings.HasPrefix(databaseURL, "postgresql://") {
			return "", "", 0, fmt.Errorf("store: DATABASE_URL must be a postgres:// URL")
		}
		return "pgx", databaseURL, Postgres, nil
	}
	// dbpool.Open adds the same defaults; the DSN carries them so a plain
	// sql.Open (the store's tests) gets them too.
	return "sqlite", dbpool.SQLiteDSN("file:" + filepath.Join(dataDir, "servio.db")), SQLite, nil
}

// Conn is what a Store runs its statements on: a *sql.DB, or a
// *dbpool.DB, whose own methods add the acquire timeout and pool accounting.
type Conn interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// Store runs servio's queries. It is safe for concurrent use.
type Store struct {
	db      Conn
	d       Dialect
	q       queries
	cluster *dbpool.Cluster // nil: every read on db (see NewReplicated)
	yield   func()          // nil: none (see SetYield)
}

// New returns a Store over db, which speaks dialect d.
func New(db Conn, d Dialect) *Store {
	return &Store{db: db, d: d, q: buildQueries(d)}
}

// SetYield makes the store call f before and after each read on its read
// path (menus, single orders, order pages, low stock) and each
// transaction (order placement, status changes, menu edits, the demo
// data) — f nil: none — as servio's adaptive limiter's YieldToNetwork
// with -adaptive-network-first on SQLite: a query to an embedded database
// runs on the caller's goroutine, without the network wait that lets the
// Go runtime read new requests during a query to a database server, so a
// handler that queries yields there instead. The single statements
// outside those (a login's user lookup, idempotency claims, menu item
// updates) and the export's reader (ReplicaReader) do not yield. Call it
// before the store is used.
func (s *Store) SetYield(f func()) { s.yield = f }

// yielded runs the store's yield function, if any.
func (s *Store) yielded() {
	if s.yield != nil {
		s.yield()
	}
}

// Dialect returns the store's SQL dialect.
func (s *Store) Dialect() Dialect { return s.d }

// Migrate applies the embedded migrations not applied yet to db (the pool
// behind the Store). On PostgreSQL a session advisory lock keeps instances
// starting together on one schema from racing; the lock is per database
// and schema, so services in other schemas of the server do not wait.
func (s *Store) Migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	sub, err := fs.Sub(migrations, "migrations/"+s.d.String())
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	dialect := goose.DialectSQLite3
	if s.d == Postgres {
		dialect = goose.DialectPostgres
		var id int64
		if err := db.QueryRowContext(ctx, "SELECT "+lockKeySQL("migrate")).Scan(&id); err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
		// goose's default probe is every 5 s; a second keeps a waiting
		// instance from idling long after the lock is free.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(id), lock.WithLockTimeout(1, 300))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db, sub, opts...)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for _, r := range res {
		log.Info("migration applied", "version", r.Source.Version, "file", filepath.Base(r.Source.Path), "took", r.Duration.String())
	}
	return nil
}

// lockKeySQL is a PostgreSQL expression for the advisory lock key of
// purpose in the current database and schema.
func lockKeySQL(purpose string) string {
	return "hashtext('servio:" + purpose + ":' || current_database() || '.' || current_schema())::bigint"
}

// rebind turns ? placeholders into $1, $2, … for PostgreSQL.
func rebind(d Dialect, q string) string {
	if d != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sqliteTime is the fixed-width text form timestamps take in SQLite.
const sqliteTime = "2006-01-02T15:04:05.000Z"

// timeArg is t as a query argument of the dialect.
func (s *Store) timeArg(t time.Time) any {
	if s.d == SQLite {
		return t.UTC().Format(sqliteTime)
	}
	return t.UTC()
}

// dbTime scans a timestamp from either dialect (time.Time or text).
type dbTime struct{ t time.Time }

// Scan implements sql.Scanner.
func (d *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		d.t = x.UTC()
		return nil
	case string:
		return d.parse(x)
	case []byte:
		return d.parse(string(x))
	case nil:
		d.t = time.Time{}
		return nil
	}
	return fmt.Errorf("store: cannot scan %T as time", v)
}

func (d *dbTime) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("store: bad timestamp %q: %w", s, err)
	}
	d.t = t.UTC()
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil and rolling
// back otherwise, a panic in fn included, between two yields (SetYield).
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	s.yielded()
	defer s.yielded()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	err = tx.Commit()
	s.wrote(ctx) // even after a failed Commit: it may have committed
	return err
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func exists(ctx context.Context, q queryer, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryAll runs query on q and scans every row into a T with scan. It
// returns an empty, non-nil slice when there are no rows.
func queryAll[T any](ctx context.Context, q rowsQueryer, scan func(*sql.Rows, *T) error, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
