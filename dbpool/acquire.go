package dbpool

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// acquireCtx is the context DB's methods hand to database/sql. It counts the
// caller as pending until the driver wrapper sees it take a connection,
// records the wait, and, when AcquireTimeout is shorter than the caller's
// own deadline, ends the wait with ErrAcquireTimeout. The wrapper unwraps it
// before calling the driver, so drivers only see the caller's context.
//
// The bound is armed lazily (see Done): a timer, a done channel and a
// parent-cancel hook are made only for a caller that waits.
type acquireCtx struct {
	context.Context
	p     *pool
	start time.Time
	bound time.Duration // AcquireTimeout; 0 when the caller's context bounds the wait
	state atomic.Int32  // waiting, expired or settled
	polls atomic.Int32  // Done calls while waiting

	armOnce   sync.Once
	armed     atomic.Bool   // done, timer and stop are set (published by this store)
	done      chan struct{} // the wait's channel, once armed
	closeOnce sync.Once
	timer     *time.Timer
	stop      func() bool // unregisters the parent-cancel hook; nil without one
	err       atomic.Pointer[acquireTimeoutError]
}

// testHookAcquire, when set by a test, runs at the end of begin, before
// database/sql acquires a connection.
var testHookAcquire atomic.Pointer[func()]

const (
	waiting int32 = iota
	expired
	settled
)

// begin prepares a DB method's call: it returns an acquireCtx that counts
// the caller as pending until a connection is taken, records the wait and
// bounds it by AcquireTimeout, measured from this call, when ctx has no
// earlier deadline. The bound does not depend on what the pool looks like
// now (an idle connection seen here may be taken by another caller a moment
// later): it is armed by the first Done call that can block, on every
// interleaving, and costs nothing more for a caller that never waits.
func (p *pool) begin(ctx context.Context) (context.Context, *acquireCtx) {
	a := &acquireCtx{Context: ctx, p: p, start: time.Now()}
	p.pending.Add(1)
	if !p.cfg.EagerDial && p.db.Stats().Idle == 0 {
		p.wake() // the maintainer grows the pool while callers wait
	}
	if t := p.cfg.AcquireTimeout; t > 0 {
		if dl, ok := ctx.Deadline(); !ok || dl.Sub(a.start) > t {
			a.bound = t
		}
	}
	if h := testHookAcquire.Load(); h != nil {
		(*h)()
	}
	return a, a
}

// Done is the wait's channel while waiting (closed by the acquire timeout or
// the caller's cancellation) and the caller's once a connection is taken.
//
// database/sql (sql.go, DB.conn, as of Go 1.26) reads ctx.Done() for each
// acquisition attempt first in a non-blocking check (select with default)
// under its lock, then, only if no connection is free and MaxOpen is
// reached, in the select that waits for one. A dial is not a wait: the
// driver wrapper's Connect settles it. So the first Done call of a call
// cannot block and gets the caller's channel; every later Done call while
// waiting (the wait, a retry's check) arms the bound and gets the wait's
// channel. Arming more often than needed only costs; TestAcquireTimeout*
// fail if database/sql ever blocks on the first call.
func (a *acquireCtx) Done() <-chan struct{} {
	if a.bound == 0 || a.state.Load() == settled {
		return a.Context.Done()
	}
	if a.armed.Load() {
		return a.done
	}
	if a.polls.Add(1) == 1 {
		return a.Context.Done()
	}
	a.armOnce.Do(a.arm)
	if a.armed.Load() {
		return a.done
	}
	return a.Context.Done() // settled meanwhile
}

// arm starts the bound for a caller that may block: the timer fires
// AcquireTimeout after begin, not after arming.
func (a *acquireCtx) arm() {
	if a.state.Load() != waiting {
		return
	}
	a.done = make(chan struct{})
	if a.Context.Done() != nil {
		a.stop = context.AfterFunc(a.Context, a.close)
	}
	a.timer = time.AfterFunc(a.bound-time.Since(a.start), a.expire) // after stop: expire reads it
	a.armed.Store(true)
	if a.state.Load() == settled { // settle ran before armed was set: undo here
		a.disarm()
	}
}

// disarm stops the timer and the parent-cancel hook; it may run twice.
func (a *acquireCtx) disarm() {
	a.timer.Stop()
	if a.stop != nil {
		a.stop()
	}
}

// Err reports ErrAcquireTimeout after the acquire timeout, else the caller's
// context error.
func (a *acquireCtx) Err() error {
	if e := a.err.Load(); e != nil {
		return e
	}
	return a.Context.Err()
}

func (a *acquireCtx) close() { a.closeOnce.Do(func() { close(a.done) }) }

func (a *acquireCtx) expire() {
	if !a.state.CompareAndSwap(waiting, expired) {
		return
	}
	a.err.Store(&acquireTimeoutError{d: a.p.cfg.AcquireTimeout})
	a.p.pending.Add(-1)
	a.p.acquireTimeouts.Add(1)
	a.p.in.timeouts.Add(context.Background(), 1, a.p.in.add...)
	a.close()
	if a.stop != nil {
		a.stop()
	}
}

// settle ends the wait: the caller has a connection (or gave up).
func (a *acquireCtx) settle(got bool) {
	if !a.state.CompareAndSwap(waiting, settled) {
		return
	}
	a.p.pending.Add(-1)
	if a.armed.Load() { // else arm sees settled after setting armed and disarms
		a.disarm()
	}
	if got {
		a.p.in.waitTime.Record(a.Context, time.Since(a.start).Seconds(), a.p.in.rec...)
	}
}

// finish runs when DB's method returns.
func (a *acquireCtx) finish(err error) { a.settle(err == nil) }

// acquired settles the wait of ctx if it is a waiting caller's and returns
// the caller's own context.
func (p *pool) acquired(ctx context.Context) context.Context {
	if a, ok := ctx.(*acquireCtx); ok {
		a.settle(true)
		return a.Context
	}
	return ctx
}

// QueryContext is sql.DB.QueryContext with the acquire timeout and the
// pending/wait accounting. ctx bounds the wait for a connection and the
// query; the wait ends with ErrAcquireTimeout after AcquireTimeout when ctx
// has no earlier deadline, and a statement gets QueryTimeout when ctx has
// no deadline at all. DB's other context-taking methods behave the same.
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx, a := db.p.begin(ctx)
	rows, err := db.db.QueryContext(ctx, query, args...)
	a.finish(err)
	return rows, err
}

// Query is QueryContext with context.Background().
func (db *DB) Query(query string, args ...any) (*sql.Rows, error) {
	return db.QueryContext(context.Background(), query, args...)
}

// QueryRowContext is sql.DB.QueryRowContext with the acquire timeout and
// the pending/wait accounting.
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx, a := db.p.begin(ctx)
	row := db.db.QueryRowContext(ctx, query, args...)
	a.finish(row.Err())
	return row
}

// QueryRow is QueryRowContext with context.Background().
func (db *DB) QueryRow(query string, args ...any) *sql.Row {
	return db.QueryRowContext(context.Background(), query, args...)
}

// ExecContext is sql.DB.ExecContext with the acquire timeout and the
// pending/wait accounting.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, a := db.p.begin(ctx)
	res, err := db.db.ExecContext(ctx, query, args...)
	a.finish(err)
	return res, err
}

// Exec is ExecContext with context.Background().
func (db *DB) Exec(query string, args ...any) (sql.Result, error) {
	return db.ExecContext(context.Background(), query, args...)
}

// BeginTx is sql.DB.BeginTx with the acquire timeout and the pending/wait
// accounting.
func (db *DB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	ctx, a := db.p.begin(ctx)
	tx, err := db.db.BeginTx(ctx, opts)
	a.finish(err)
	return tx, err
}

// Begin is BeginTx with context.Background().
func (db *DB) Begin() (*sql.Tx, error) {
	return db.BeginTx(context.Background(), nil)
}

// Conn is sql.DB.Conn with the acquire timeout and the pending/wait
// accounting.
func (db *DB) Conn(ctx context.Context) (*sql.Conn, error) {
	ctx, a := db.p.begin(ctx)
	c, err := db.db.Conn(ctx)
	a.finish(err)
	return c, err
}

// PingContext is sql.DB.PingContext with the acquire timeout and the
// pending/wait accounting.
func (db *DB) PingContext(ctx context.Context) error {
	ctx, a := db.p.begin(ctx)
	err := db.db.PingContext(ctx)
	a.finish(err)
	return err
}

// Ping is PingContext with context.Background().
func (db *DB) Ping() error { return db.PingContext(context.Background()) }

// PrepareContext is sql.DB.PrepareContext with the acquire timeout and the
// pending/wait accounting for the connection it prepares on. The returned
// *sql.Stmt acquires connections itself when it runs (database/sql
// re-prepares on whichever connection it gets): those runs are bounded by
// MaxOpen and observed, but their wait is bounded by their ctx only.
func (db *DB) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	ctx, a := db.p.begin(ctx)
	st, err := db.db.PrepareContext(ctx, query)
	a.finish(err)
	return st, err
}

// Prepare is PrepareContext with context.Background().
func (db *DB) Prepare(query string) (*sql.Stmt, error) {
	return db.PrepareContext(context.Background(), query)
}
