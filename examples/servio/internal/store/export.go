package store

import (
	"context"
	"database/sql"
	"time"
)

// DefaultExportPage is the number of orders ExportOrders reads per query
// when ExportQuery.PageSize is 0.
const DefaultExportPage = 500

// Reader is what read-only queries run on: a *sql.DB, a *dbpool.DB, or
// anything that routes reads elsewhere (a replica) with the same method.
type Reader interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

var (
	_ Reader = (*sql.DB)(nil)
	_ Reader = Conn(nil)
)

// ExportQuery selects the orders ExportOrders reads: a restaurant's live
// orders created in [From, To).
type ExportQuery struct {
	RestaurantID int64
	// From is the first creation time included; zero: from the first order.
	From time.Time
	// To is the first creation time excluded; zero: no upper bound.
	To time.Time
	// PageSize is the number of orders per query; 0 means DefaultExportPage.
	PageSize int
}

// exportMin and exportMax stand for an open end of the range; both fit
// PostgreSQL's timestamptz and SQLite's fixed-width text.
var (
	exportMin = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	exportMax = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// ExportOrders reads the orders q selects, oldest first by (created_at,
// id), each with its items, and calls page with each page of them, in
// order. A page is one query through r (keyset: the next one starts after
// the last (created_at, id) seen), and its rows are read to the end and
// closed before page is called, so no connection or cursor is held while
// page runs — a slow consumer pins nothing in the database. page's slice
// is reused for the next page: page must not keep it. Memory is one page,
// whatever the number of orders.
//
// The pages are not one snapshot: an order whose status changes during the
// export is read as it is when its page is read, and an order committed
// while the export runs appears only if its creation time is after the
// page already read (a range whose To is in the past is complete).
//
// An unknown or deleted restaurant is a NotFoundError, returned before page
// is called. ExportOrders returns the first error of a query or of page;
// a cancelled ctx cancels the running query and returns ctx's error.
func (s *Store) ExportOrders(ctx context.Context, r Reader, q ExportQuery, page func([]Order) error) error {
	size := q.PageSize
	if size <= 0 {
		size = DefaultExportPage
	}
	from, to := q.From, q.To
	if from.IsZero() {
		from = exportMin
	}
	if to.IsZero() {
		to = exportMax
	}
	buf := make([]Order, 0, size)
	var after *Cursor
	for {
		var rows *sql.Rows
		var err error
		if after == nil {
			rows, err = r.QueryContext(ctx, s.q.orderExport[0], q.RestaurantID, s.timeArg(from), s.timeArg(to), size)
		} else {
			rows, err = r.QueryContext(ctx, s.q.orderExport[1], q.RestaurantID, s.timeArg(after.CreatedAt), after.ID, s.timeArg(to), size)
		}
		if err != nil {
			return err
		}
		if buf, err = scanOrders(rows, buf[:0]); err != nil {
			return err
		}
		if len(buf) == 0 {
			if after == nil {
				return s.restaurantIn(ctx, r, q.RestaurantID)
			}
			return nil
		}
		if err := page(buf); err != nil {
			return err
		}
		if len(buf) < size {
			return nil
		}
		last := buf[len(buf)-1]
		after = &Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
}

// scanOrders appends every order of rows to buf and closes rows.
func scanOrders(rows *sql.Rows, buf []Order) ([]Order, error) {
	defer rows.Close()
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return buf, err
		}
		buf = append(buf, o)
	}
	return buf, rows.Err()
}

// restaurantIn is mustRestaurant through a Reader.
func (s *Store) restaurantIn(ctx context.Context, r Reader, id int64) error {
	rows, err := r.QueryContext(ctx, s.q.restaurantExists, id)
	if err != nil {
		return err
	}
	found := rows.Next()
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if !found {
		return &NotFoundError{What: "restaurant", ID: id}
	}
	return nil
}
