package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTxHooks: a hook runs in the order's transaction with the order as
// written (customer_phone included), what it writes commits with the
// order, and an error from it rolls the order back; the same holds for a
// status change's hooks.
func TestTxHooks(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 1, Items: 2, Orders: 1}))
		_, err := s.db.ExecContext(ctx, "CREATE TABLE hook_marks (order_id BIGINT NOT NULL, status TEXT NOT NULL)")
		require.NoError(t, err)
		var rid, item int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT MIN(id) FROM restaurants").Scan(&rid))
		require.NoError(t, s.db.QueryRowContext(ctx, rebind(s.d, "SELECT MIN(id) FROM menu_items WHERE restaurant_id = ?"), rid).Scan(&item))
		count := func(q string) (n int) {
			require.NoError(t, s.db.QueryRowContext(ctx, q).Scan(&n))
			return n
		}
		mark := func(ctx context.Context, tx *sql.Tx, o Order) error {
			_, err := tx.ExecContext(ctx, rebind(s.d, "INSERT INTO hook_marks (order_id, status) VALUES (?, ?)"), o.ID, o.Status)
			return err
		}
		boom := errors.New("hook failed")
		failing := func(ctx context.Context, tx *sql.Tx, o Order) error {
			require.NoError(t, mark(ctx, tx, o))
			return boom
		}
		orders := count("SELECT COUNT(*) FROM orders")
		line := []NewOrderItem{{MenuItemID: item, Quantity: 1}}

		_, err = s.CreateOrder(ctx, NewOrder{RestaurantID: rid, Items: line, CustomerPhone: "+14155550100", InTx: failing})
		require.ErrorIs(t, err, boom)
		assert.Equal(t, orders, count("SELECT COUNT(*) FROM orders"), "a failing hook rolls the order back")
		assert.Zero(t, count("SELECT COUNT(*) FROM hook_marks"), "and what the hook wrote")

		o, err := s.CreateOrder(ctx, NewOrder{RestaurantID: rid, Items: line, CustomerPhone: "+14155550100", InTx: mark})
		require.NoError(t, err)
		assert.Equal(t, "+14155550100", o.CustomerPhone)
		got, err := s.Order(ctx, o.ID)
		require.NoError(t, err)
		assert.Equal(t, "+14155550100", got.CustomerPhone, "customer_phone is stored")
		assert.Equal(t, 1, count("SELECT COUNT(*) FROM hook_marks"), "the hook's write commits with the order")

		_, err = s.UpdateOrderStatus(ctx, o.ID, StatusPreparing, nil, nil, failing)
		require.ErrorIs(t, err, boom)
		got, err = s.Order(ctx, o.ID)
		require.NoError(t, err)
		assert.Equal(t, StatusPending, got.Status, "a failing hook rolls the status change back")
		_, err = s.UpdateOrderStatus(ctx, o.ID, StatusPreparing, nil, nil, mark)
		require.NoError(t, err)
		assert.Equal(t, 1, count("SELECT COUNT(*) FROM hook_marks WHERE status = 'preparing'"), "the hook sees the new status")

		plain, err := s.CreateOrder(ctx, NewOrder{RestaurantID: rid, Items: line})
		require.NoError(t, err)
		got, err = s.Order(ctx, plain.ID)
		require.NoError(t, err)
		assert.Empty(t, got.CustomerPhone, "no phone is stored as NULL and read back empty")
	})
}
