package dbpool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servio/perfkit/internal/redact"
)

// DB is a database/sql pool with dbpool's tuning and observation. It does
// not embed *sql.DB: its methods are exactly the ones that acquire a
// connection with the acquire timeout and the pending/wait-time accounting
// (QueryContext, QueryRowContext, ExecContext, BeginTx, Conn, PingContext,
// PrepareContext and their context-free forms), plus Close, Stats and the
// health checks. database/sql's knobs (SetMaxOpenConns, ...) are not
// reachable: the pool steers them itself. Code that needs a *sql.DB (a
// migration tool, sqlx) takes the documented escape hatch DB. Safe for
// concurrent use.
type DB struct {
	db *sql.DB
	p  *pool

	stop      context.CancelFunc // stops the maintainer
	done      chan struct{}      // closed when the maintainer has returned
	closeOnce sync.Once
	closeErr  error
}

// DB returns the *sql.DB under the pool, for code that needs one (a
// migration tool, sqlx). Calls through it are bounded by MaxOpen, observed
// (metrics, slow queries, query counts, MaxUses, QueryTimeout) and grow the
// pool within 10 ms, but they skip DB's acquire accounting: their wait for
// a connection is bounded by their context only (no AcquireTimeout) and not
// counted as pending. Do not call its Set* methods: the pool steers
// database/sql's caps itself, and its Stats reports database/sql's growth
// cap as MaxOpenConnections where DB.Stats reports MaxOpen.
func (db *DB) DB() *sql.DB { return db.db }

// pool is the state the driver wrapper, the maintainer and DB share.
type pool struct {
	cfg Config
	db  *sql.DB
	in  *instruments
	log *slog.Logger

	connects        atomic.Int64
	connectTimeouts atomic.Int64
	acquireTimeouts atomic.Int64
	retired         atomic.Int64
	queries         atomic.Int64
	slow            atomic.Int64
	leaks           atomic.Int64
	idleClosed      atomic.Int64 // closed by the maintainer after IdleTimeout
	pending         atomic.Int64
	maintaining     atomic.Bool
	maintDialed     atomic.Bool // the maintainer's current acquisition is dialling
	saturated       atomic.Bool
	capN            atomic.Int64 // database/sql's MaxOpenConns: the growth cap
	lastWaits       int64        // DBStats.WaitCount seen by the maintainer
	growPause       time.Time    // no growth before this, after a failed dial (maintainer only)

	kick      chan struct{} // wakes the maintainer
	connector *connector

	mu    sync.Mutex
	conns map[*conn]struct{} // live connections
}

// Open opens a pool on a registered database/sql driver ("pgx", "sqlite",
// ...) and warms MinConns connections within ctx. dbpool registers "pgx"
// (it imports pgx's stdlib); for "sqlite" the program imports
// modernc.org/sqlite (import _ "modernc.org/sqlite"), which dbpool does not
// impose on PostgreSQL users. For "sqlite" the DSN gets
// dbpool's SQLite defaults (see SQLiteDSN); for "pgx" the pool is opened
// with OpenPostgres, so timed-out queries are cancelled server-side. It
// returns an error wrapping ErrInvalidConfig for a bad Config, and the connect
// error when no connection can be opened (the pool is then closed). The
// returned DB runs a maintainer goroutine until Close.
func Open(ctx context.Context, driverName, dsn string, cfg Config) (*DB, error) {
	switch driverName {
	case "pgx", "pgx/v5":
		return OpenPostgres(ctx, dsn, cfg)
	case "sqlite":
		var err error
		if cfg, dsn, err = sqliteConfig(cfg, dsn); err != nil {
			return nil, err
		}
	}
	probe, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("dbpool: %w", redact.Error(err)) // a driver may quote the DSN
	}
	drv := probe.Driver()
	_ = probe.Close()
	var c driver.Connector = dsnConnector{dsn: dsn, drv: drv}
	if dc, ok := drv.(driver.DriverContext); ok {
		if c, err = dc.OpenConnector(dsn); err != nil {
			return nil, fmt.Errorf("dbpool: %w", redact.Error(err))
		}
	}
	if cfg.Name == "" {
		cfg.Name = driverName
	}
	return OpenConnector(ctx, c, cfg)
}

// OpenConnector opens a pool on a driver.Connector (e.g. pgx's
// stdlib.GetConnector) and warms MinConns connections within ctx. Errors
// and Close are as for Open; the pool closes c if it is an io.Closer.
func OpenConnector(ctx context.Context, c driver.Connector, cfg Config) (*DB, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: nil connector", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults(fmt.Sprintf("%T", c.Driver()))
	if err != nil {
		return nil, err
	}
	p := &pool{
		cfg:   cfg,
		log:   cfg.Logger,
		kick:  make(chan struct{}, 1),
		conns: make(map[*conn]struct{}),
	}
	p.connector = &connector{inner: c, p: p}
	p.db = sql.OpenDB(p.connector)
	if cfg.EagerDial {
		p.setCap(cfg.MaxOpen)
	} else {
		p.setCap(max(cfg.MinConns, 1))
	}
	// No SetConnMaxIdleTime: database/sql's idle timer would close the warm
	// connections too; the maintainer enforces IdleTimeout (closeIdle).
	p.db.SetConnMaxLifetime(cfg.MaxLifetime)
	if p.in, err = newInstruments(p); err != nil {
		_ = p.db.Close()
		return nil, err
	}
	// One connection first: it fails fast on a bad DSN or a dead server, and
	// does one-time work alone (SQLite switching a new file to WAL takes a
	// lock concurrent openers would fight over); then the rest at once.
	err = p.hold(ctx, min(cfg.MinConns, 1))
	if err == nil {
		err = p.hold(ctx, cfg.MinConns)
	}
	if err != nil {
		_ = p.in.reg.Unregister()
		_ = p.db.Close()
		return nil, fmt.Errorf("dbpool: warming %d connections: %w", cfg.MinConns, redact.Error(err))
	}
	mctx, stop := context.WithCancel(context.Background())
	db := &DB{db: p.db, p: p, stop: stop, done: make(chan struct{})}
	go p.maintain(mctx, db.done)
	return db, nil
}

// Close stops the maintainer and waits for it, closes the pool (connections
// in use close when they are returned, as with sql.DB.Close) and
// unregisters the metrics. It is idempotent and returns the first call's
// error.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.stop()
		<-db.done
		db.closeErr = errors.Join(db.db.Close(), db.p.in.reg.Unregister())
	})
	return db.closeErr
}

// DBStats is database/sql's statistics of the pool with MaxOpenConnections
// the configured MaxOpen (not database/sql's growth cap): what a generic
// check of a database/sql pool (health.SQL) reports.
func (db *DB) DBStats() sql.DBStats { return db.p.stats() }

// Stats is a snapshot of the pool: database/sql's counters plus dbpool's.
// MaxOpenConnections is the configured MaxOpen (not database/sql's growth
// cap) and MaxIdleTimeClosed counts the connections the maintainer closed
// after IdleTimeout.
type Stats struct {
	sql.DBStats
	// MinConns is the configured number of warm connections.
	MinConns int
	// Pending is the number of callers of DB's methods waiting for a connection.
	Pending int64
	// Saturation is InUse / MaxOpenConnections (the configured MaxOpen).
	Saturation float64
	// Saturated reports Saturation >= Config.SaturationThreshold.
	Saturated bool
	// Connects counts connections opened (the driver's Connect succeeded).
	Connects int64
	// Retired counts connections closed after reaching their maximum uses.
	Retired int64
	// ConnectTimeouts and AcquireTimeouts count the two kinds of timeout.
	ConnectTimeouts, AcquireTimeouts int64
	// Queries counts statements run; SlowQueries those at or above the
	// slow-query threshold.
	Queries, SlowQueries int64
	// Leaks counts connections held longer than LeakThreshold.
	Leaks int64
}

// Stats returns a snapshot of the pool's statistics. Safe for concurrent
// use; it does not block on connections.
func (db *DB) Stats() Stats {
	p := db.p
	s := Stats{
		DBStats:         p.stats(),
		MinConns:        p.cfg.MinConns,
		Pending:         max(p.pending.Load(), 0),
		Connects:        p.connects.Load(),
		Retired:         p.retired.Load(),
		ConnectTimeouts: p.connectTimeouts.Load(),
		AcquireTimeouts: p.acquireTimeouts.Load(),
		Queries:         p.queries.Load(),
		SlowQueries:     p.slow.Load(),
		Leaks:           p.leaks.Load(),
	}
	s.Saturation = p.saturation(s.DBStats)
	s.Saturated = s.Saturation >= p.cfg.SaturationThreshold
	return s
}

// Saturated reports whether in-use / max connections is at or above
// Config.SaturationThreshold right now.
func (db *DB) Saturated() bool {
	return db.p.saturation(db.p.db.Stats()) >= db.p.cfg.SaturationThreshold
}

// Config returns the pool's configuration with defaults filled in.
func (db *DB) Config() Config { return db.p.cfg }

// saturation is in-use / configured MaxOpen (database/sql's own maximum is
// the growth cap, which can be lower).
func (p *pool) saturation(s sql.DBStats) float64 {
	return float64(s.InUse) / float64(p.cfg.MaxOpen)
}

// stats is database/sql's stats with MaxOpenConnections the configured
// maximum rather than the current growth cap, and the maintainer's idle
// closes (made by lowering MaxIdleConns) counted as MaxIdleTimeClosed.
func (p *pool) stats() sql.DBStats {
	s := p.db.Stats()
	s.MaxOpenConnections = p.cfg.MaxOpen
	n := p.idleClosed.Load()
	s.MaxIdleTimeClosed += n
	s.MaxIdleClosed -= n
	return s
}

// HealthCheck pings the database through the pool and returns the ping's
// latency and the pool's stats. It honours ctx. Use db.Check where a
// func(context.Context) error is wanted.
func (db *DB) HealthCheck(ctx context.Context) (time.Duration, Stats, error) {
	start := time.Now()
	err := db.PingContext(ctx)
	d := time.Since(start)
	if err != nil {
		err = fmt.Errorf("dbpool: ping: %w", err)
	}
	return d, db.Stats(), err
}

// Check pings the database through the pool: a health check of the shape
// func(context.Context) error that needs no import of dbpool's types.
func (db *DB) Check(ctx context.Context) error {
	_, _, err := db.HealthCheck(ctx)
	return err
}

func (p *pool) slowQuery(ctx context.Context, query string, nargs int, d time.Duration, err error) {
	p.slow.Add(1)
	p.in.slow.Add(ctx, 1, p.in.add...)
	attrs := []slog.Attr{
		slog.String("pool", p.cfg.Name),
		slog.String("sql", redact.String(query)), // a literal may be a secret: "... password = 'x'"
		slog.Int("args", nargs),                  // values never logged: they may hold personal data or secrets
		slog.Duration("duration", d),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", redact.String(err.Error())))
	}
	p.log.LogAttrs(ctx, slog.LevelWarn, "dbpool: slow query", attrs...)
}

// retire counts a connection retired after its maximum uses. database/sql
// closes it; the close wakes the maintainer, which tops the warm
// connections up through database/sql (so within MaxOpen).
func (p *pool) retire() {
	p.retired.Add(1)
	p.in.retired.Add(context.Background(), 1, p.in.add...)
}

// setCap sets database/sql's open and idle maximum.
func (p *pool) setCap(n int) {
	p.db.SetMaxOpenConns(n)
	p.db.SetMaxIdleConns(p.idleCap(n))
	p.capN.Store(int64(n))
}

// idleCap is database/sql's idle maximum for an open maximum of n.
func (p *pool) idleCap(n int) int {
	if p.cfg.MaxIdle > 0 {
		return min(n, p.cfg.MaxIdle)
	}
	return n
}

func (p *pool) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *pool) track(c *conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *pool) untrack(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	p.wake() // top up warm connections after a close or retirement
}
