package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// paths walk a new (pending) order to each status along allowed moves.
var paths = map[string][]string{
	StatusPending:   nil,
	StatusPreparing: {StatusPreparing},
	StatusReady:     {StatusPreparing, StatusReady},
	StatusCompleted: {StatusPreparing, StatusReady, StatusCompleted},
	StatusCancelled: {StatusCancelled},
}

// TestOrderStateMachine: from every status to every status, exactly the
// moves pending → preparing → ready → completed and pending/preparing →
// cancelled succeed; every other one is a ConflictError naming the current
// status and changes nothing. Stock comes back once, on the cancel.
func TestOrderStateMachine(t *testing.T) {
	t.Parallel()
	allowed := map[[2]string]bool{
		{StatusPending, StatusPreparing}: true, {StatusPreparing, StatusReady}: true, {StatusReady, StatusCompleted}: true,
		{StatusPending, StatusCancelled}: true, {StatusPreparing, StatusCancelled}: true,
	}
	all := []string{StatusPending, StatusPreparing, StatusReady, StatusCompleted, StatusCancelled}
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 1, Items: 1, Orders: 0}))
		var rid, item int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT restaurant_id, id FROM menu_items").Scan(&rid, &item))
		stock := func() (n int) {
			require.NoError(t, s.db.QueryRowContext(ctx, rebind(s.d, "SELECT current_quantity FROM inventory_items WHERE menu_item_id = ?"), item).Scan(&n))
			return n
		}
		for _, from := range all {
			for _, to := range all {
				o, err := s.CreateOrder(ctx, NewOrder{RestaurantID: rid, Items: []NewOrderItem{{MenuItemID: item, Quantity: 2}}})
				require.NoError(t, err)
				for _, st := range paths[from] {
					_, err := s.UpdateOrderStatus(ctx, o.ID, st, nil, nil)
					require.NoError(t, err, "walking order %d to %s", o.ID, from)
				}
				before := stock()
				got, err := s.UpdateOrderStatus(ctx, o.ID, to, nil, nil)
				if allowed[[2]string{from, to}] {
					require.NoError(t, err, "%s → %s", from, to)
					assert.Equal(t, to, got.Status)
				} else {
					var ce *ConflictError
					require.ErrorAs(t, err, &ce, "%s → %s must be refused", from, to)
					assert.Contains(t, ce.Reason, "is "+from, "the 409 names the current status")
					cur, err := s.Order(ctx, o.ID)
					require.NoError(t, err)
					assert.Equal(t, from, cur.Status, "a refused move changes nothing")
				}
				wantBack := 0
				if allowed[[2]string{from, to}] && to == StatusCancelled {
					wantBack = 2
				}
				assert.Equal(t, before+wantBack, stock(), "%s → %s: stock returned once, on the cancel only", from, to)
			}
		}
	})
}

// TestUpdateOrderStatusAllow: the allow hook sees the order's restaurant
// and current status, and its error aborts the change.
func TestUpdateOrderStatusAllow(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 1, Items: 1, Orders: 0}))
		var rid, item int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT restaurant_id, id FROM menu_items").Scan(&rid, &item))
		o, err := s.CreateOrder(ctx, NewOrder{RestaurantID: rid, Items: []NewOrderItem{{MenuItemID: item, Quantity: 1}}})
		require.NoError(t, err)
		refused := &ConflictError{Reason: "no"}
		var sawR int64
		var sawS string
		_, err = s.UpdateOrderStatus(ctx, o.ID, StatusPreparing, func(r int64, cur string) error { sawR, sawS = r, cur; return refused }, nil)
		require.ErrorIs(t, err, refused)
		assert.Equal(t, rid, sawR)
		assert.Equal(t, StatusPending, sawS)
		cur, err := s.Order(ctx, o.ID)
		require.NoError(t, err)
		assert.Equal(t, StatusPending, cur.Status, "a refusal changes nothing")
	})
}
