package store

import (
	"context"
	"database/sql"

	"github.com/servio/perfkit/dbpool"
)

// NewReplicated returns a Store whose writes and transactions run on c's
// primary and whose menu, low-stock and order-history reads run through
// c.Read (a replica when one is usable and has replayed what the reader
// must see). Every committed write is recorded in the context's sessions
// (dbpool.WithSession): a caller's later reads in the same session see
// it. Menu reads, which fill a cache shared by every instance, see every
// write committed before they start (dbpool.Cluster.Latest), so no
// instance caches a menu from before a committed edit.
func NewReplicated(c *dbpool.Cluster, d Dialect) *Store {
	s := New(c.Primary(), d)
	s.cluster = c
	return s
}

// read runs fn, a read that may see a replica's data, through the cluster,
// or on the primary without one, between two yields (SetYield).
func (s *Store) read(ctx context.Context, fn func(Conn) error) error {
	s.yielded()
	defer s.yielded()
	return s.route(ctx, fn)
}

// route runs fn through the cluster, or on the primary without one.
func (s *Store) route(ctx context.Context, fn func(Conn) error) error {
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

// latest makes ctx's reads see every write committed on the primary so
// far (one query on the primary); without a cluster it returns ctx.
func (s *Store) latest(ctx context.Context) context.Context {
	if s.cluster == nil {
		return ctx
	}
	return s.cluster.Latest(ctx)
}

// ReplicaReader returns the Reader of the orders export (ExportOrders):
// each of its queries runs on a usable replica when the Store has a
// cluster (NewReplicated; one that fails to start the query is retried on
// the primary), else on the primary. Rows stream from the server that
// answered: a replica lost while a page is being read fails that page
// (the export marks itself truncated) rather than switching servers mid-page.
func (s *Store) ReplicaReader() Reader { return replicaReader{s} }

// replicaReader is ReplicaReader's Reader.
type replicaReader struct{ s *Store }

// QueryContext runs query through the Store's read routing. It does not
// yield (SetYield): its rows stream after it returns, on a connection a
// yield would hold, and the export that reads them is not behind the
// adaptive limiter.
func (r replicaReader) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	var rows *sql.Rows
	err := r.s.route(ctx, func(c Conn) error {
		var err error
		rows, err = c.QueryContext(ctx, query, args...)
		return err
	})
	return rows, err
}
