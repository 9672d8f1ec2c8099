package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOrdersNPlusOneMatchesOrders: the baseline's N+1 loader returns
// exactly the page the batched query returns, cursor included.
func TestOrdersNPlusOneMatchesOrders(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 1, Items: 5, Orders: 30}))
		var rid int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT id FROM restaurants").Scan(&rid))
		q := OrdersQuery{RestaurantID: rid, Limit: 7}
		for range 3 { // three pages, following the cursor
			want, err := s.Orders(ctx, q)
			require.NoError(t, err)
			got, err := s.OrdersNPlusOne(ctx, q)
			require.NoError(t, err)
			require.NotEmpty(t, want.Orders)
			assert.Equal(t, want, got)
			c, err := DecodeCursor(want.NextCursor)
			require.NoError(t, err)
			q.After = &c
		}
	})
}

// TestCreateOrderRefused: an unknown or deleted restaurant and an item of
// another restaurant's menu are NotFoundErrors, an unavailable or short
// item a ConflictError, items are checked before stock is taken, and
// nothing is written.
func TestCreateOrderRefused(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 2, Items: 3, Orders: 1}))
		var r1, r2, item2 int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT MIN(id), MAX(id) FROM restaurants").Scan(&r1, &r2))
		require.NoError(t, s.db.QueryRowContext(ctx, rebind(s.d, "SELECT MIN(id) FROM menu_items WHERE restaurant_id = ?"), r2).Scan(&item2))
		count := func() (n int) {
			require.NoError(t, s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders").Scan(&n))
			return n
		}
		before := count()
		one := []NewOrderItem{{MenuItemID: item2, Quantity: 1}}

		var item1, item1b int64
		require.NoError(t, s.db.QueryRowContext(ctx, rebind(s.d, "SELECT MIN(id), MAX(id) FROM menu_items WHERE restaurant_id = ?"), r1).Scan(&item1, &item1b))
		_, err := s.db.ExecContext(ctx, rebind(s.d, "UPDATE menu_items SET is_available = ? WHERE id = ?"), false, item1)
		require.NoError(t, err)
		var ce *ConflictError
		_, err = s.CreateOrder(ctx, NewOrder{RestaurantID: r1, Items: []NewOrderItem{{MenuItemID: item1, Quantity: 1}}})
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Reason, "not available")
		_, err = s.CreateOrder(ctx, NewOrder{RestaurantID: r1, Items: []NewOrderItem{{MenuItemID: item1b, Quantity: 1 << 20}}})
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Reason, fmt.Sprintf("%d asked", 1<<20))
		assert.Contains(t, ce.Reason, "left")
		// Short of stock and not on this menu: the unknown item is found
		// while pricing, before any stock is taken.
		_, err = s.CreateOrder(ctx, NewOrder{RestaurantID: r1, Items: []NewOrderItem{{MenuItemID: item1b, Quantity: 1 << 20}, {MenuItemID: item2, Quantity: 1}}})
		var nf *NotFoundError
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, "menu item", nf.What)

		_, err = s.CreateOrder(ctx, NewOrder{RestaurantID: r1, Items: one})
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, "menu item", nf.What, "an item of another restaurant")

		_, err = s.CreateOrder(ctx, NewOrder{RestaurantID: r2 + 100, Items: one})
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, "restaurant", nf.What)

		_, err = s.db.ExecContext(ctx, rebind(s.d, "UPDATE restaurants SET deleted_at = created_at WHERE id = ?"), r2)
		require.NoError(t, err)
		_, err = s.CreateOrder(ctx, NewOrder{RestaurantID: r2, Items: one})
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, "restaurant", nf.What, "a deleted restaurant takes no orders")
		assert.Equal(t, before, count(), "nothing written")
	})
}
