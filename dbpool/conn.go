package dbpool

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync/atomic"
	"time"
)

// conn wraps a driver connection. database/sql serialises calls on one
// connection; the atomics are for the maintainer, which reads them from its
// own goroutine.
type conn struct {
	ci    driver.Conn
	p     *pool
	limit int64 // uses before retirement; 0: unlimited

	uses      atomic.Int64
	retired   atomic.Bool
	heldSince atomic.Int64 // UnixNano when a caller acquired it; 0 while idle or held by the maintainer
	idleSince atomic.Int64 // UnixNano when returned idle to the pool; 0 before and while held
	leaked    atomic.Bool  // leak logged for the current acquisition
	stack     atomic.Pointer[[]uintptr]

	queryer   driver.QueryerContext
	execer    driver.ExecerContext
	preparer  driver.ConnPrepareContext
	beginner  driver.ConnBeginTx
	pinger    driver.Pinger
	resetter  driver.SessionResetter
	validator driver.Validator
	checker   driver.NamedValueChecker

	stmts *stmtCache // nil: no statement cache (Config.StatementCache)
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

// usesLimit returns the number of uses after which a new connection
// retires: maxUses, moved at random by up to ±jitter (a fraction; 0: exact).
func usesLimit(maxUses int, jitter float64) int64 {
	if maxUses <= 0 {
		return 0
	}
	n := int64(maxUses)
	if spread := int64(float64(n) * jitter); spread > 0 {
		n += rand.Int64N(2*spread+1) - spread
	}
	return n
}

func (p *pool) newConn(ci driver.Conn) *conn {
	c := &conn{ci: ci, p: p, limit: usesLimit(p.cfg.MaxUses, p.cfg.MaxUsesJitter)}
	c.queryer, _ = ci.(driver.QueryerContext)
	c.execer, _ = ci.(driver.ExecerContext)
	c.preparer, _ = ci.(driver.ConnPrepareContext)
	c.beginner, _ = ci.(driver.ConnBeginTx)
	c.pinger, _ = ci.(driver.Pinger)
	c.resetter, _ = ci.(driver.SessionResetter)
	c.validator, _ = ci.(driver.Validator)
	c.checker, _ = ci.(driver.NamedValueChecker)
	c.stmts = newStmtCache(p.cfg.StatementCache, c.preparer)
	p.track(c)
	return c
}

// markAcquired records that a caller, or with maint the maintainer, took
// the connection. The maintainer's holds are not uses: they get no use time
// and no leak check (a hold can wait for a slow dial longer than
// LeakThreshold).
func (c *conn) markAcquired(maint bool) {
	c.idleSince.Store(0)
	if maint {
		return
	}
	c.heldSince.Store(time.Now().UnixNano())
	if c.p.cfg.LeakThreshold > 0 {
		pcs := make([]uintptr, 64)
		pcs = pcs[:runtime.Callers(3, pcs)]
		c.stack.Store(&pcs)
	}
}

// enter runs before every statement: it ends the caller's wait and marks a
// connection handed over without ResetSession (a new one) as acquired.
func (c *conn) enter(ctx context.Context) context.Context {
	ctx = c.p.acquired(ctx)
	if c.heldSince.Load() == 0 {
		c.markAcquired(false)
	}
	return ctx
}

// observe runs after every statement the driver executed.
func (c *conn) observe(ctx context.Context, start time.Time, query string, args []driver.NamedValue, err error, timeout bool) error {
	d := time.Since(start)
	c.uses.Add(1)
	c.p.queries.Add(1)
	countQuery(ctx)
	c.p.in.opDuration.Record(ctx, d.Seconds(), c.p.in.rec...)
	if c.p.cfg.SlowQuery > 0 && d >= c.p.cfg.SlowQuery {
		c.p.slowQuery(ctx, query, len(args), d, err)
	}
	if err != nil && timeout && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &queryTimeoutError{d: c.p.cfg.QueryTimeout, err: err}
	}
	return err
}

// deadline applies QueryTimeout to a context without a deadline.
func (c *conn) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.p.cfg.QueryTimeout <= 0 {
		return ctx, nil
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, nil
	}
	return context.WithTimeout(ctx, c.p.cfg.QueryTimeout)
}

// QueryContext runs a query through the driver, observed: on the
// connection's cached prepared statement for query when there is a cache.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.queryer == nil && c.stmts == nil {
		return nil, driver.ErrSkip
	}
	ctx = c.enter(ctx)
	ctx, cancel := c.deadline(ctx)
	start := time.Now()
	var rows driver.Rows
	cs, err := c.stmts.take(ctx, query)
	switch {
	case err != nil:
	case cs != nil:
		rows, err = cs.query.QueryContext(ctx, args)
	case c.queryer != nil:
		rows, err = c.queryer.QueryContext(ctx, query, args)
	default:
		err = driver.ErrSkip
	}
	return c.rows(ctx, cancel, start, query, args, rows, err, cs)
}

// rows observes a query and wraps its rows so that closing them releases
// the default query timeout's context and the cached statement cs (nil:
// none) they run on.
func (c *conn) rows(ctx context.Context, cancel context.CancelFunc, start time.Time, query string, args []driver.NamedValue, rows driver.Rows, err error, cs *cachedStmt) (driver.Rows, error) {
	if !errors.Is(err, driver.ErrSkip) {
		err = c.observe(ctx, start, query, args, err, cancel != nil)
	}
	if err != nil || rows == nil {
		if cs != nil {
			cs.busy = false
		}
		if cancel != nil {
			cancel()
		}
		return rows, err
	}
	if cancel == nil && cs == nil {
		return rows, nil
	}
	return &cancelRows{Rows: rows, cancel: cancel, stmt: cs}, nil
}

// ExecContext runs a statement through the driver, observed: on the
// connection's cached prepared statement for query when there is a cache.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.execer == nil && c.stmts == nil {
		return nil, driver.ErrSkip
	}
	ctx = c.enter(ctx)
	ctx, cancel := c.deadline(ctx)
	start := time.Now()
	var res driver.Result
	cs, err := c.stmts.take(ctx, query)
	switch {
	case err != nil:
	case cs != nil:
		res, err = cs.exec.ExecContext(ctx, args)
		cs.busy = false
	case c.execer != nil:
		res, err = c.execer.ExecContext(ctx, query, args)
	default:
		err = driver.ErrSkip
	}
	if !errors.Is(err, driver.ErrSkip) {
		err = c.observe(ctx, start, query, args, err, cancel != nil)
	}
	if cancel != nil {
		cancel()
	}
	return res, err
}

// Prepare prepares a statement without a context.
func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext prepares a statement whose runs are observed.
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	ctx = c.enter(ctx)
	var (
		si  driver.Stmt
		err error
	)
	if c.preparer != nil {
		si, err = c.preparer.PrepareContext(ctx, query)
	} else {
		si, err = c.ci.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &stmt{si: si, c: c, query: query}, nil
}

// Begin starts a transaction without a context.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx starts a transaction; its statements run through the connection
// and are observed there.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	ctx = c.enter(ctx)
	if c.beginner != nil {
		return c.beginner.BeginTx(ctx, opts)
	}
	if opts.Isolation != 0 || opts.ReadOnly {
		return nil, errors.New("dbpool: driver does not support transaction options")
	}
	return c.ci.Begin() //lint:ignore SA1019 fallback for drivers without ConnBeginTx
}

// Ping forwards to the driver when it can ping.
func (c *conn) Ping(ctx context.Context) error {
	ctx = c.p.acquired(ctx)
	if c.pinger == nil {
		return nil
	}
	return c.pinger.Ping(ctx)
}

// ResetSession runs when database/sql hands a used connection to a caller:
// it refuses a retired connection and marks the acquisition.
func (c *conn) ResetSession(ctx context.Context) error {
	if c.retired.Load() {
		return driver.ErrBadConn
	}
	ctx = c.p.acquired(ctx)
	c.markAcquired(c.p.isMaint(ctx))
	if c.resetter != nil {
		return c.resetter.ResetSession(ctx)
	}
	return nil
}

// IsValid runs when the connection goes back to the pool: it records the
// use time and idle start, and retires the connection after its maximum
// uses.
func (c *conn) IsValid() bool {
	now := time.Now().UnixNano()
	if h := c.heldSince.Swap(0); h != 0 {
		c.p.in.useTime.Record(context.Background(), float64(now-h)/1e9, c.p.in.rec...)
	}
	if c.stack.Load() != nil {
		c.stack.Store(nil)
	}
	c.leaked.Store(false)
	if c.limit > 0 && c.uses.Load() >= c.limit {
		if c.retired.CompareAndSwap(false, true) {
			c.p.retire()
		}
		return false
	}
	if c.validator != nil && !c.validator.IsValid() {
		return false
	}
	c.idleSince.Store(now)
	return true
}

// CheckNamedValue forwards to the driver, or lets database/sql convert.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if c.checker != nil {
		return c.checker.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// Close closes the cached statements and the driver connection.
func (c *conn) Close() error {
	c.p.untrack(c)
	c.stmts.close()
	return c.ci.Close()
}

// stmt wraps a prepared statement so that its runs are observed.
type stmt struct {
	si    driver.Stmt
	c     *conn
	query string
}

var (
	_ driver.Stmt              = (*stmt)(nil)
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
)

func (s *stmt) Close() error  { return s.si.Close() }
func (s *stmt) NumInput() int { return s.si.NumInput() }

// Exec runs the statement without a context.
func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.si.Exec(args) //lint:ignore SA1019 database/sql calls ExecContext; this is the interface's required method
}

// Query runs the statement without a context.
func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.si.Query(args) //lint:ignore SA1019 database/sql calls QueryContext; this is the interface's required method
}

// ExecContext runs the statement, observed.
func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	ctx = s.c.enter(ctx)
	ctx, cancel := s.c.deadline(ctx)
	start := time.Now()
	var (
		res driver.Result
		err error
	)
	if se, ok := s.si.(driver.StmtExecContext); ok {
		res, err = se.ExecContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = values(args); err == nil {
			res, err = s.si.Exec(vals) //lint:ignore SA1019 fallback for drivers without StmtExecContext
		}
	}
	err = s.c.observe(ctx, start, s.query, args, err, cancel != nil)
	if cancel != nil {
		cancel()
	}
	return res, err
}

// QueryContext runs the statement, observed.
func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	ctx = s.c.enter(ctx)
	ctx, cancel := s.c.deadline(ctx)
	start := time.Now()
	var (
		rows driver.Rows
		err  error
	)
	if sq, ok := s.si.(driver.StmtQueryContext); ok {
		rows, err = sq.QueryContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = values(args); err == nil {
			rows, err = s.si.Query(vals) //lint:ignore SA1019 fallback for drivers without StmtQueryContext
		}
	}
	return s.c.rows(ctx, cancel, start, s.query, args, rows, err, nil)
}

// CheckNamedValue forwards to the statement's or the connection's checker
// (database/sql would ask the statement first, then the connection).
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.si.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	//lint:ignore SA1019 honour drivers that still convert per column
	if cc, ok := s.si.(driver.ColumnConverter); ok {
		if nv.Ordinal < 1 || nv.Name != "" {
			return driver.ErrSkip
		}
		v, err := cc.ColumnConverter(nv.Ordinal - 1).ConvertValue(nv.Value)
		if err != nil {
			return err
		}
		nv.Value = v
		return nil
	}
	return s.c.CheckNamedValue(nv)
}

func values(args []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("dbpool: driver does not support named parameters")
		}
		vals[i] = a.Value
	}
	return vals, nil
}

// cancelRows releases the default query timeout (cancel) and the cached
// statement the rows run on (stmt) when the rows close; either may be nil.
type cancelRows struct {
	driver.Rows
	cancel context.CancelFunc
	stmt   *cachedStmt
}

var (
	_ driver.RowsNextResultSet              = (*cancelRows)(nil)
	_ driver.RowsColumnTypeScanType         = (*cancelRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*cancelRows)(nil)
	_ driver.RowsColumnTypeLength           = (*cancelRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*cancelRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*cancelRows)(nil)
)

func (r *cancelRows) Close() error {
	err := r.Rows.Close()
	if r.stmt != nil {
		r.stmt.busy = false
	}
	if r.cancel != nil {
		r.cancel()
	}
	return err
}

func (r *cancelRows) HasNextResultSet() bool {
	if n, ok := r.Rows.(driver.RowsNextResultSet); ok {
		return n.HasNextResultSet()
	}
	return false
}

func (r *cancelRows) NextResultSet() error {
	if n, ok := r.Rows.(driver.RowsNextResultSet); ok {
		return n.NextResultSet()
	}
	return io.EOF
}

func (r *cancelRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *cancelRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cancelRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cancelRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cancelRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
