package store

import (
	"context"
	"strconv"

	"github.com/servio/perfkit/dbpool"
)

// NewReplicated returns a Store whose writes and transactions run on c's
// primary and whose menu, low-stock and order-history reads run through
// c.Read (a replica when one is usable and has replayed what the reader
// must see). Every committed write is recorded in the context's sessions
// (dbpool.WithSession): a caller's later reads in the same session see
// it; menu writes are recorded in the menu's own session too, which every
// menu read joins, so no menu read, a cache fill by another user
// included, returns a menu from before a committed edit.
func NewReplicated(c *dbpool.Cluster, d Dialect) *Store {
	s := New(c.Primary(), d)
	s.cluster = c
	return s
}

// read runs fn, a read that may see a replica's data, through the cluster,
// or on the primary without one.
func (s *Store) read(ctx context.Context, fn func(Conn) error) error {
	if s.cluster == nil {
		return fn(s.db)
	}
	return s.cluster.Read(ctx, func(db *dbpool.DB) error { return fn(db) })
}

// wrote records a committed (or possibly committed) write in ctx's
// sessions. Its error is dropped on purpose: when the primary's position
// cannot be read, the cluster holds every read on the primary until its
// next check, so read-your-writes holds without it.
func (s *Store) wrote(ctx context.Context) {
	if s.cluster != nil {
		_ = s.cluster.Wrote(context.WithoutCancel(ctx))
	}
}

// menuSession adds restaurant rid's menu session to ctx.
func menuSession(ctx context.Context, rid int64) context.Context {
	return dbpool.WithSession(ctx, "menu:"+strconv.FormatInt(rid, 10))
}
