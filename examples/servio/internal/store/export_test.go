package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allOrders reads every order of restaurant rid through Orders' pages,
// oldest first: what an export must return.
func allOrders(t *testing.T, ctx context.Context, s *Store, rid int64) []Order {
	t.Helper()
	var all []Order
	q := OrdersQuery{RestaurantID: rid, Limit: MaxPageSize}
	for {
		p, err := s.Orders(ctx, q)
		require.NoError(t, err)
		all = append(all, p.Orders...)
		if p.NextCursor == "" {
			break
		}
		c, err := DecodeCursor(p.NextCursor)
		require.NoError(t, err)
		q.After = &c
	}
	slices.Reverse(all)
	return all
}

// collect runs ExportOrders and returns the orders and the page sizes.
func collect(ctx context.Context, s *Store, q ExportQuery) ([]Order, []int, error) {
	var got []Order
	var sizes []int
	err := s.ExportOrders(ctx, s.db, q, func(p []Order) error {
		got = append(got, p...)
		sizes = append(sizes, len(p))
		return nil
	})
	return got, sizes, err
}

// TestExportOrdersKeysetPages: the export returns every live order of the
// restaurant once, oldest first, with the items Orders returns, in pages
// of PageSize (the last one shorter), and only the orders created in
// [From, To) when a range is given.
func TestExportOrdersKeysetPages(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 2, Items: 5, Orders: 80}))
		var rid int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT MIN(id) FROM restaurants").Scan(&rid))
		want := allOrders(t, ctx, s, rid)
		require.Greater(t, len(want), 14, "the seed gives restaurant %d enough orders for several pages", rid)

		got, sizes, err := collect(ctx, s, ExportQuery{RestaurantID: rid, PageSize: 7})
		require.NoError(t, err)
		assert.Equal(t, want, got)
		for i, n := range sizes {
			if i < len(sizes)-1 {
				assert.Equal(t, 7, n, "page %d is full", i)
			}
		}
		assert.Equal(t, (len(want)+6)/7, len(sizes), "ceil(%d/7) pages", len(want))

		from, to := want[3].CreatedAt, want[len(want)-4].CreatedAt
		var inRange []Order
		for _, o := range want {
			if !o.CreatedAt.Before(from) && o.CreatedAt.Before(to) {
				inRange = append(inRange, o)
			}
		}
		got, _, err = collect(ctx, s, ExportQuery{RestaurantID: rid, From: from, To: to, PageSize: 5})
		require.NoError(t, err)
		assert.Equal(t, inRange, got, "orders created in [%s, %s)", from, to)

		got, sizes, err = collect(ctx, s, ExportQuery{RestaurantID: rid, From: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		assert.Empty(t, got, "nothing in the future")
		assert.Empty(t, sizes, "no empty page is handed out")
	})
}

// TestExportOrdersErrors: an unknown restaurant is a NotFoundError before
// any page; page's error stops the export; a cancelled context stops it
// with the context's error.
func TestExportOrdersErrors(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 1, Items: 3, Orders: 20}))
		var rid int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT MIN(id) FROM restaurants").Scan(&rid))

		called := false
		err := s.ExportOrders(ctx, s.db, ExportQuery{RestaurantID: rid + 1000}, func([]Order) error { called = true; return nil })
		var nf *NotFoundError
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, "restaurant", nf.What)
		assert.False(t, called)

		stop := errors.New("consumer gone")
		pages := 0
		err = s.ExportOrders(ctx, s.db, ExportQuery{RestaurantID: rid, PageSize: 3}, func([]Order) error { pages++; return stop })
		require.ErrorIs(t, err, stop)
		assert.Equal(t, 1, pages, "no page after the consumer's error")

		cctx, cancel := context.WithCancel(ctx)
		pages = 0
		err = s.ExportOrders(cctx, s.db, ExportQuery{RestaurantID: rid, PageSize: 3}, func([]Order) error { pages++; cancel(); return nil })
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 1, pages, "the query after the cancellation does not run")
	})
}
