package dbpool

import (
	"context"
	"sync/atomic"
)

// QueryCounter counts the statements run with a context returned by
// CountQueries (and contexts derived from it). It is safe for concurrent use.
type QueryCounter struct{ n atomic.Int64 }

// Load returns the number of statements counted so far.
func (c *QueryCounter) Load() int64 { return c.n.Load() }

type counterKey struct{}

// CountQueries returns a context that counts every statement (query, exec,
// prepared-statement run; not BEGIN/COMMIT or pings) run with it, or with a
// context derived from it, through any dbpool pool, and the counter. Counts
// are exact across goroutines. Use it in tests to prove a handler runs a
// fixed number of queries (no N+1). Nested CountQueries contexts count in
// the innermost counter only.
func CountQueries(ctx context.Context) (context.Context, *QueryCounter) {
	c := new(QueryCounter)
	return context.WithValue(ctx, counterKey{}, c), c
}

func countQuery(ctx context.Context) {
	if c, ok := ctx.Value(counterKey{}).(*QueryCounter); ok {
		c.n.Add(1)
	}
}
