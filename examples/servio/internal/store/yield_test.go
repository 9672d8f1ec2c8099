package store

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SetYield's promise: the yield function runs before and after each read
// and each transaction, and outside them (not while the query runs: a
// yield inside a query would hold its connection across the wait); the
// export's reader, whose rows outlive its call, does not yield.
func TestSetYieldAroundReadsAndTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, SQLite)
	require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 1, Items: 5, Orders: 10}))
	var rid, oid int64
	require.NoError(t, s.db.QueryRowContext(ctx, "SELECT id FROM restaurants").Scan(&rid))
	require.NoError(t, s.db.QueryRowContext(ctx, "SELECT id FROM orders").Scan(&oid))

	yields, inQuery := 0, false
	s.SetYield(func() {
		assert.False(t, inQuery, "a yield ran inside a query")
		yields++
	})
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"menu", func() error { _, err := s.Menu(ctx, rid); return err }},
		{"order", func() error { _, err := s.Order(ctx, oid); return err }},
		{"orders", func() error { _, err := s.Orders(ctx, OrdersQuery{RestaurantID: rid}); return err }},
		{"low stock", func() error { _, err := s.LowStock(ctx, rid); return err }},
		{"transaction", func() error {
			return s.inTx(ctx, func(tx *sql.Tx) error {
				inQuery = true
				defer func() { inQuery = false }()
				var n int
				return tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders").Scan(&n)
			})
		}},
	} {
		yields = 0
		require.NoError(t, tc.run(), tc.name)
		assert.Equal(t, 2, yields, "%s: one yield before, one after", tc.name)
	}
	yields = 0
	rows, err := s.ReplicaReader().QueryContext(ctx, "SELECT id FROM orders")
	require.NoError(t, err)
	require.NoError(t, rows.Close())
	assert.Zero(t, yields, "the export's reader does not yield: its rows stream on the connection after it returns")

	s.SetYield(nil)
	yields = 0
	_, err = s.Menu(ctx, rid)
	require.NoError(t, err)
	assert.Zero(t, yields, "SetYield(nil): none")
}
