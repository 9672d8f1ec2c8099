// Package dbpool opens a database/sql pool tuned and watched the way a
// busy service needs it:
//
//	db, err := dbpool.OpenPostgres(ctx, "postgres://app@db/app", dbpool.Config{
//		MaxOpen:       20,                     // the server never sees more
//		SlowQuery:     500 * time.Millisecond, // logged, arguments redacted
//		LeakThreshold: 30 * time.Second,       // logged with the acquiring stack
//	})
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	var name string
//	err = db.QueryRowContext(ctx, "SELECT name FROM menu WHERE id = $1", 42).Scan(&name)
//	fmt.Println(db.Stats().InUse, db.Saturated())
//
// It works on top of any database/sql driver (pgx's stdlib driver for
// PostgreSQL, through OpenPostgres, and modernc.org/sqlite, through Open
// with "sqlite", are the tested ones).
//
// database/sql already bounds open and idle connections, their lifetime and
// idle time. dbpool adds what it lacks:
//
//   - a minimum of warm connections, opened at Open and topped up in the
//     background after idle close or recycling (MinConns, default 5);
//   - recycling of a connection after MaxUses queries (default 7,500,
//     moved by MaxUsesJitter, ±10 % by default, per connection so the pool
//     does not reconnect in one wave);
//   - a fail-fast connect timeout (default 2 s), an acquire timeout bounding
//     the wait for a free connection, and a default query timeout (30 s) for
//     every query whose context has no deadline; on PostgreSQL a timed-out
//     query is cancelled server-side and the connection survives;
//   - slow-query logging (default > 1 s, arguments redacted), OpenTelemetry
//     metrics (below), a saturation signal, leak detection with the
//     acquiring stack, and a per-context query counter (CountQueries) that
//     lets a test prove a handler makes no N+1 queries;
//   - a per-connection cache of prepared statements by SQL text
//     (StatementCache, on by default for SQLite, whose driver parses and
//     plans every statement given as text again): SQL a connection ran
//     before skips parsing and planning, and a statement whose rows are
//     open is never run a second time before they close.
//
// All of it lives in a driver wrapper and a background maintainer over a
// plain database/sql pool. The returned *DB has database/sql's methods that
// acquire a connection (QueryContext, ExecContext, BeginTx, Conn,
// PrepareContext, ...) with the acquire accounting added; it does not embed
// *sql.DB, so no call skips the accounting by accident. DB.DB is the
// deliberate escape hatch for code that needs a *sql.DB.
//
// The bounds, each checked by a test that counts from outside the pool's
// own bookkeeping (see RELIABILITY.md):
//
//   - Never more than MaxOpen connections exist, counted from the start of
//     a dial to the end of its close (on PostgreSQL: in pg_stat_activity).
//     Every connection, warm, grown or replacing a retired one, is opened
//     through database/sql's own count, which MaxOpen bounds; nothing is
//     dialled beside it.
//   - A DB method's wait for a connection ends with ErrAcquireTimeout after
//     AcquireTimeout when the caller's context has no earlier deadline,
//     whatever the pool looked like when the call started.
//   - A connection held longer than LeakThreshold is reported, from the
//     moment the caller got it: reused or freshly dialled, with or without
//     a statement run on it.
//
// How it maps onto database/sql, and its limits:
//
//   - Warm connections are made by the maintainer goroutine holding the
//     missing ones from the pool at once (one first at Open, then the rest
//     concurrently) and handing them back; it runs at Open, every
//     MaintainInterval, and whenever a connection closes or retires.
//   - IdleTimeout is enforced by the maintainer, not by database/sql's idle
//     timer (which would close the warm connections too): it closes
//     connections idle longer than IdleTimeout but keeps MinConns idle ones
//     (HikariCP's minimumIdle/idleTimeout split). These closes are reported
//     as DBStats.MaxIdleTimeClosed in Stats.
//   - Growth: database/sql dials a new connection on the caller's goroutine
//     whenever the pool has room, so a spike opens one connection per caller
//     and each of them waits a full dial. dbpool keeps database/sql's
//     maximum at the connections already open and raises it one connection
//     at a time from the maintainer while callers wait, dialling there and
//     handing the new connection to a waiter; meanwhile returned connections
//     go straight to waiters. Callers wait on the pool, not on a dial
//     (HikariCP's rule), except that a caller arriving just as the
//     maintainer raises the cap can take that room and dial itself.
//     Config.EagerDial restores database/sql's behaviour, and MaxIdle 2
//     (with MinConns -1) its idle default.
//   - When a connection retires, database/sql closes it and the maintainer
//     tops the warm connections up through database/sql, within MaxOpen.
//   - Acquire accounting (pending_requests, wait_time, AcquireTimeout) is done
//     by DB's own methods (QueryContext, ExecContext, QueryRowContext,
//     BeginTx, Conn, PingContext, PrepareContext and their context-free
//     forms) on every call, at one allocation per call. The AcquireTimeout
//     timer is armed only when database/sql starts to wait for a connection
//     (its second ctx.Done() poll of the call; the first is a non-blocking
//     check), and runs from the call's start. A *sql.Stmt from
//     PrepareContext, and calls through db.DB(), acquire connections
//     inside database/sql: they are
//     bounded by MaxOpen and observed by the driver wrapper, but their
//     waits are bounded by their context only, not counted as pending, and
//     only seen by the maintainer through DBStats.WaitCount (so growth for
//     them starts within 10 ms).
//   - The default QueryTimeout needs a timer per statement whose context has
//     no deadline (5 allocations); a context with a deadline costs nothing.
//
// Why PostgreSQL stays on database/sql's pool rather than pgxpool (with
// stdlib.OpenDBFromPool), measured in issue 17 on a shared, loaded 2-core
// machine (load average 20-30): MaxOpen already holds by construction here
// (every connection goes through database/sql's count; see the tests
// above); pgxpool under database/sql costs more per statement, because
// OpenDBFromPool sets database/sql's idle maximum to 0 so every statement
// acquires from and releases to pgxpool (BenchmarkSelect1Postgres: 34
// against 22 allocs and 3.1 against 1.2 KB per SELECT 1; BenchmarkBurst-
// Postgres: about 600 against 550 allocs per burst of 16); a pgxpool caller
// that finds room dials and waits for its own new connection, which is
// EagerDial's behaviour (BenchmarkSpike: 15 connections opened and the
// slowest caller 153-155 ms with EagerDial, against 0 and 23-31 ms by
// default); and SQLite needs this pool anyway, so pgxpool would be a second
// pool inside dbpool rather than less code.
//
// Metrics (instrument scope github.com/servio/perfkit/dbpool, attribute
// db.client.connection.pool.name) use the OpenTelemetry database
// semantic-convention names where the convention has the instrument:
//
//	db.client.operation.duration            histogram, s
//	db.client.connection.count              {connection}, db.client.connection.state=idle|used
//	db.client.connection.max                {connection}
//	db.client.connection.idle.max           {connection} (MaxIdle, or MaxOpen when unset)
//	db.client.connection.idle.min           {connection} (MinConns)
//	db.client.connection.pending_requests   {request}
//	db.client.connection.timeouts           {timeout}
//	db.client.connection.create_time        histogram, s
//	db.client.connection.wait_time          histogram, s
//	db.client.connection.use_time           histogram, s
//
// and perfkit.dbpool.* for the rest:
//
//	perfkit.dbpool.slow_queries             {operation}
//	perfkit.dbpool.connection.retirements   {connection} (after MaxUses)
//	perfkit.dbpool.connection.leaks         {connection}
//	perfkit.dbpool.connection.saturation    1 (in use / MaxOpen)
//
// Read replicas: a Cluster (NewCluster) holds a primary pool and N
// replica pools, each an ordinary *DB with its own Config (bounds, Name,
// metrics). Writes and transactions run on Primary, or through Write,
// which also records where they left the primary's WAL. Reads that may
// see a replica's data run through Read(ctx, fn): fn gets a replica's
// pool, or the primary's. The promises, each checked by a test against a
// real primary and streaming replica (internal/testenv):
//
//   - A read goes to a replica only if the replica's last check (every
//     CheckInterval, in the background) showed it in recovery and no more
//     than MaxLag behind, and no read failed on it since. Lag is time
//     behind the primary: how long ago the checker first saw the primary
//     flushed past the replica's pg_last_wal_replay_lsn(). It is not
//     now() - pg_last_xact_replay_timestamp(), which grows without bound
//     while the primary is idle and would take a caught-up replica out.
//     A lagging replica leaves within one check after its lag passes
//     MaxLag, and comes back at the first check within it.
//   - Read-your-writes: after a session (WithSession: a key such as a user
//     id, or "" for the context itself) writes through Write (or calls
//     Wrote), its reads go only to a replica whose last check showed it
//     replayed past the primary's WAL insert position read right after the
//     write (asked live, one query on the replica, when its last check
//     showed it behind), else to the primary. A session never reads the
//     state before its write. Writes made without a session raise a floor all reads
//     wait for. The table of session keys is bounded (MaxSessions): a key
//     forgotten to make room raises the floor instead, so forgetting costs
//     replica reads for a moment, never a stale read.
//     The position is the insert position, not pg_current_wal_lsn() (the
//     write position), because with synchronous_commit off a commit can
//     return before its record is written. When the insert position sits
//     just past a WAL page header, replay reaches it only with the next
//     WAL record (on an idle primary the bgwriter's, within about 15 s);
//     until then the session reads from the primary.
//   - A context from Latest reads every write committed on the primary
//     before Latest returned, whoever made it (one query on the primary):
//     for reads whose result outlives the request, such as a shared
//     cache's fill after another instance's invalidation.
//   - A read that fails on a replica with a connection-level error (the
//     replica died or restarted, a recovery conflict cancelled it) takes
//     the replica out and runs again on the primary: a replica dying under
//     load costs no read an error.
//   - With no usable replica, or none at all (SQLite: replicas are not
//     applicable, and the same API runs everything on the one pool), reads
//     run on the primary.
//
// Compared with Rails' automatic role switching, which sends a session's
// reads to the primary for a fixed 2 s after its write whether the
// replicas need 5 ms or 10 s, the session here returns to the replicas as
// soon as one of them has replayed the write (one check later) and stays on
// the primary as long as it takes if they are slower; and with
// go-gorm/dbresolver, which has no notion of lag, reads never go to a
// replica that is behind MaxLag or failing. The cost is one query
// (pg_current_wal_insert_lsn()) per Write and one per replica and check.
//
// Replica metrics (attribute db.client.connection.pool.name: the
// replica's pool name, or the primary's for fallbacks without a failing
// replica):
//
//	perfkit.dbpool.replica.reads            {read}  routed to the replica
//	perfkit.dbpool.replica.fallbacks        {read}  run on the primary; reason=no_replica|unusable|read_your_writes|error
//	perfkit.dbpool.replica.lag              s       at the last check
//	perfkit.dbpool.replica.state            {state} 1 in rotation, 0 out
//
// A *DB is safe for concurrent use. Close stops the maintainer and closes the
// pool.
package dbpool
