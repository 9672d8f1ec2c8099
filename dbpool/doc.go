// Package dbpool opens a database/sql pool tuned and watched the way a busy
// service needs it, on top of any database/sql driver (pgx's stdlib driver
// for PostgreSQL and modernc.org/sqlite are the tested ones).
//
// database/sql already bounds open and idle connections, their lifetime and
// idle time. dbpool adds what it lacks:
//
//   - a minimum of warm connections, opened at Open and topped up in the
//     background after idle close or recycling (MinConns, default 5);
//   - recycling of a connection after MaxUses queries (default 7,500, ±10 %
//     jitter per connection so the pool does not reconnect in one wave);
//   - a fail-fast connect timeout (default 2 s), an acquire timeout bounding
//     the wait for a free connection, and a default query timeout (30 s) for
//     every query whose context has no deadline; on PostgreSQL a timed-out
//     query is cancelled server-side and the connection survives;
//   - slow-query logging (default > 1 s, arguments redacted), OpenTelemetry
//     metrics with the db.client.* semantic-convention names, a saturation
//     signal, leak detection with the acquiring stack, and a per-context query
//     counter (CountQueries) that lets a test prove a handler makes no N+1
//     queries.
//
// All of it lives in a driver wrapper and a background maintainer, so the
// returned *DB embeds a plain *sql.DB and existing code keeps working.
//
// How it maps onto database/sql, and its limits:
//
//   - Warm connections are made by the maintainer goroutine holding MinConns
//     connections from the pool at once and handing them back; it runs at
//     Open, every MaintainInterval, and at once when a connection retires.
//     Holding them also refreshes their idle time, so the warm MinConns survive
//     IdleTimeout while connections above it are closed (HikariCP's
//     minimumIdle/idleTimeout split).
//   - When a connection retires, a replacement is dialled in the background
//     and parked; the next time database/sql asks the connector for a
//     connection it gets the parked one at once. database/sql itself still
//     calls Connect on the caller's goroutine when the pool has room and no
//     idle connection, so a caller can wait on a dial when demand jumps past
//     the open connections; see bench/results/dbpool.md for the spike test.
//   - pending_requests counts callers inside DB's own methods (QueryContext,
//     ExecContext, QueryRowContext, BeginTx, Conn, PingContext and their
//     context-free forms) that have no connection yet. Calls made through
//     DB.DB directly bypass it.
//
// A *DB is safe for concurrent use. Close stops the maintainer and closes the
// pool.
package dbpool
