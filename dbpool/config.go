package dbpool

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// Config configures a pool. The zero value of every field means the default
// documented beside it, so Config{} is Servio's pool: 20 max, 5 warm,
// recycle after 7,500 uses, 30 s query and idle timeouts, 2 s connect
// timeout. A negative duration or count switches the feature off where noted.
type Config struct {
	// MaxOpen bounds open connections (in use + idle + being dialled or
	// closed): the server never sees more from this pool. Default 20; at
	// most 1<<20.
	MaxOpen int
	// MinConns connections are kept open and warm: opened at Open and topped
	// up in the background. Default 5 (or MaxOpen if smaller); negative: none;
	// more than MaxOpen is an error.
	MinConns int
	// MaxIdle bounds the idle connections database/sql keeps: a connection
	// returned while MaxIdle others are idle is closed (SetMaxIdleConns).
	// Default 0: no bound besides MaxOpen, and IdleTimeout closes the idle
	// ones above MinConns. database/sql's own default is 2, which under fluctuating
	// load closes most returned connections and dials new ones; to
	// reproduce plain database/sql set MaxIdle 2, MinConns -1 and EagerDial.
	// Must not be negative nor, when set, below MinConns.
	MaxIdle int
	// MaxUses retires a connection after it ran this many statements
	// (queries, execs, prepared-statement runs), moved per connection by
	// MaxUsesJitter so connections opened together do not retire together.
	// Default 7,500; negative: never.
	MaxUses int
	// MaxUsesJitter is the fraction by which each connection's MaxUses is
	// moved, at random, up or down. Default 0.1 (±10 %); negative: off,
	// every connection retires after exactly MaxUses uses; at most 1.
	MaxUsesJitter float64
	// EagerDial lets callers dial new connections themselves whenever the
	// pool has room, as plain database/sql does. By default (false) the pool
	// grows in the background instead: callers that find every open
	// connection busy wait for one to be returned while the maintainer
	// dials one more at a time (HikariCP's rule), so a short spike is served
	// by the open connections instead of opening one per caller.
	EagerDial bool
	// QueryTimeout is applied to every statement whose context has no
	// deadline; an explicit deadline wins. Default 30 s; negative: none.
	QueryTimeout time.Duration
	// StatementCache is how many prepared statements each connection keeps,
	// by SQL text, least recently used out first: a query or exec given as
	// text (on DB, a transaction or a Conn) runs on its connection's
	// cached statement, so SQL the connection ran before is not parsed
	// and planned again. A statement whose rows are still open is not
	// shared: the same text asked again meanwhile runs uncached. Default
	// DefaultSQLiteStatementCache for Open with "sqlite" (modernc.org/sqlite
	// prepares every statement it is given as text; on servio's order page
	// that was about a quarter of the query's cost), 0 otherwise; negative:
	// off. Leave it off for PostgreSQL through pgx: pgx caches prepared
	// statements itself, and a statement cached here would cost a
	// round trip to deallocate when evicted. A driver whose statements
	// convert their own arguments is not cached.
	StatementCache int
	// IdleTimeout closes connections idle this long, checked every
	// MaintainInterval, but keeps MinConns idle ones open (HikariCP's
	// minimumIdle/idleTimeout split). Default 30 s; negative: never.
	IdleTimeout time.Duration
	// MaxLifetime closes connections this old (SetConnMaxLifetime).
	// Default 0: no limit (MaxUses recycles instead).
	MaxLifetime time.Duration
	// ConnectTimeout bounds opening one connection (dial, TLS, startup)
	// through the context given to the driver; a driver without
	// driver.DriverContext opens without a context and is not bounded.
	// Default 2 s.
	ConnectTimeout time.Duration
	// AcquireTimeout bounds the wait for a free connection in DB's methods
	// when the caller's context has no earlier deadline; the call then fails
	// with ErrAcquireTimeout. Default 5 s; negative: only ctx bounds it.
	AcquireTimeout time.Duration
	// SlowQuery logs (Warn, SQL text, arguments redacted) and counts
	// statements that take at least this long. A statement's duration, here
	// and in db.client.operation.duration, runs until the driver returns
	// (for a query: the first row with pgx, the statement step with SQLite),
	// not until the rows are closed. Default 1 s; negative: off.
	SlowQuery time.Duration
	// LeakThreshold logs, with the acquiring goroutine's stack, a connection
	// held longer than this (HikariCP's leakDetectionThreshold). The stack
	// is captured at each acquisition only when this is set. Default 0: off.
	LeakThreshold time.Duration
	// SaturationThreshold is the in-use/MaxOpen ratio at or above which the
	// pool counts as saturated (Saturated, Stats, a Warn log on entering).
	// Default 0.9.
	SaturationThreshold float64
	// MaintainInterval is how often the maintainer closes idle connections,
	// tops up warm ones and checks saturation and leaks. Default 1 s, or
	// IdleTimeout/3 (at least 10 ms) if that is smaller.
	MaintainInterval time.Duration
	// Name is the db.client.connection.pool.name metric attribute and the
	// "pool" log attribute. Default: the driver name given to Open,
	// "postgresql" for OpenPostgres, the driver's Go type for OpenConnector.
	Name string
	// MeterProvider provides the metrics. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger receives slow-query, saturation and leak logs. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of the Config fields whose zero value means "default".
const (
	DefaultMaxOpen             = 20
	DefaultMinConns            = 5
	DefaultMaxUses             = 7500
	DefaultMaxUsesJitter       = 0.1
	DefaultQueryTimeout        = 30 * time.Second
	DefaultIdleTimeout         = 30 * time.Second
	DefaultConnectTimeout      = 2 * time.Second
	DefaultAcquireTimeout      = 5 * time.Second
	DefaultSlowQuery           = time.Second
	DefaultSaturationThreshold = 0.9
	DefaultMaintainInterval    = time.Second
	// DefaultSQLiteStatementCache is Config.StatementCache's default for
	// Open with "sqlite".
	DefaultSQLiteStatementCache = 64
)

// maxMaxOpen bounds MaxOpen (and so MinConns): the pool allocates per warm
// connection, and a typo such as 1<<40 must be an error, not a panic.
const maxMaxOpen = 1 << 20

// withDefaults validates c and fills in defaults; negative "off" values
// become 0.
func (c Config) withDefaults(driverName string) (Config, error) {
	if c.MaxOpen < 0 || c.MaxOpen > maxMaxOpen {
		return c, fmt.Errorf("%w: MaxOpen %d not in [0,%d]", ErrInvalidConfig, c.MaxOpen, maxMaxOpen)
	}
	if !(c.SaturationThreshold >= 0 && c.SaturationThreshold <= 1) { // NaN too
		return c, fmt.Errorf("%w: SaturationThreshold %v not in [0,1]", ErrInvalidConfig, c.SaturationThreshold)
	}
	if !(c.MaxUsesJitter <= 1) { // NaN too
		return c, fmt.Errorf("%w: MaxUsesJitter %v > 1", ErrInvalidConfig, c.MaxUsesJitter)
	}
	if c.ConnectTimeout < 0 || c.MaxLifetime < 0 || c.LeakThreshold < 0 || c.MaintainInterval < 0 {
		return c, fmt.Errorf("%w: ConnectTimeout, MaxLifetime, LeakThreshold and MaintainInterval must not be negative", ErrInvalidConfig)
	}
	if c.MaxOpen == 0 {
		c.MaxOpen = DefaultMaxOpen
	}
	if c.MinConns == 0 {
		c.MinConns = min(DefaultMinConns, c.MaxOpen)
	}
	c.MinConns = max(c.MinConns, 0)
	if c.MinConns > c.MaxOpen {
		return c, fmt.Errorf("%w: MinConns %d > MaxOpen %d", ErrInvalidConfig, c.MinConns, c.MaxOpen)
	}
	if c.MaxIdle < 0 || (c.MaxIdle > 0 && c.MaxIdle < c.MinConns) {
		return c, fmt.Errorf("%w: MaxIdle %d is negative or below MinConns %d", ErrInvalidConfig, c.MaxIdle, c.MinConns)
	}
	c.StatementCache = max(c.StatementCache, 0)
	c.MaxUses = orDefault(c.MaxUses, DefaultMaxUses)
	c.MaxUsesJitter = orDefault(c.MaxUsesJitter, DefaultMaxUsesJitter)
	c.QueryTimeout = orDefault(c.QueryTimeout, DefaultQueryTimeout)
	c.IdleTimeout = orDefault(c.IdleTimeout, DefaultIdleTimeout)
	c.AcquireTimeout = orDefault(c.AcquireTimeout, DefaultAcquireTimeout)
	c.SlowQuery = orDefault(c.SlowQuery, DefaultSlowQuery)
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.SaturationThreshold == 0 {
		c.SaturationThreshold = DefaultSaturationThreshold
	}
	if c.MaintainInterval == 0 {
		c.MaintainInterval = DefaultMaintainInterval
		if c.IdleTimeout > 0 && c.IdleTimeout/3 < c.MaintainInterval {
			c.MaintainInterval = max(c.IdleTimeout/3, 10*time.Millisecond)
		}
	}
	if c.Name == "" {
		c.Name = driverName
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// orDefault maps 0 to def and negative ("off") to 0.
func orDefault[T int | float64 | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}
