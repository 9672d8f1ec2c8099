package dbpool

import (
	"container/list"
	"context"
	"database/sql/driver"
)

// stmtCache is one connection's prepared statements by SQL text, the least
// recently used evicted first (Config.StatementCache). database/sql
// serialises every call on a connection, Rows.Close and Close included,
// under the connection's lock, so the cache needs none of its own.
type stmtCache struct {
	max  int
	prep driver.ConnPrepareContext
	m    map[string]*list.Element // of *cachedStmt
	lru  list.List                // front: most recently used
	// off: the driver's statements cannot run with a context, or convert
	// their arguments themselves (database/sql converted them for the
	// connection, as for SQL given as text, not for the statement).
	off bool
}

// cachedStmt is a prepared statement of the cache. busy is set while a
// run's rows are open: a statement has one cursor, so the same SQL text
// asked again before they close (in a transaction, or with two result sets
// open on one connection) runs uncached instead.
type cachedStmt struct {
	si    driver.Stmt
	query driver.StmtQueryContext
	exec  driver.StmtExecContext
	text  string
	busy  bool
}

func newStmtCache(n int, prep driver.ConnPrepareContext) *stmtCache {
	if n <= 0 || prep == nil {
		return nil
	}
	return &stmtCache{max: n, prep: prep, m: make(map[string]*list.Element)}
}

// take returns query's prepared statement, preparing it on a miss, marked
// busy; nil with a nil error when the caller must run query uncached (the
// cache is off, the statement is busy, or every cached statement is busy
// and none can make room). A prepare error is query's error.
func (sc *stmtCache) take(ctx context.Context, query string) (*cachedStmt, error) {
	if sc == nil || sc.off {
		return nil, nil
	}
	if e, ok := sc.m[query]; ok {
		cs := e.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		sc.lru.MoveToFront(e)
		cs.busy = true
		return cs, nil
	}
	if len(sc.m) >= sc.max && !sc.evict() {
		return nil, nil
	}
	si, err := sc.prep.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	q, qok := si.(driver.StmtQueryContext)
	x, xok := si.(driver.StmtExecContext)
	_, checks := si.(driver.NamedValueChecker)
	_, converts := si.(driver.ColumnConverter) //lint:ignore SA1019 a driver that still converts per column
	if !qok || !xok || checks || converts {
		sc.off = true
		_ = si.Close()
		return nil, nil
	}
	cs := &cachedStmt{si: si, query: q, exec: x, text: query, busy: true}
	sc.m[query] = sc.lru.PushFront(cs)
	return cs, nil
}

// evict closes the least recently used statement that is not busy; false
// when every one is.
func (sc *stmtCache) evict() bool {
	for e := sc.lru.Back(); e != nil; e = e.Prev() {
		cs := e.Value.(*cachedStmt)
		if cs.busy {
			continue
		}
		sc.lru.Remove(e)
		delete(sc.m, cs.text)
		_ = cs.si.Close()
		return true
	}
	return false
}

// close closes every cached statement; the connection closes next.
func (sc *stmtCache) close() {
	if sc == nil {
		return
	}
	for e := sc.lru.Front(); e != nil; e = e.Next() {
		_ = e.Value.(*cachedStmt).si.Close()
	}
	sc.lru.Init()
	clear(sc.m)
}
