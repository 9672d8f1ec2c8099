package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOrdersNPlusOneMatchesOrders: the baseline's N+1 loader returns
// exactly the page the batched query returns, cursor included.
func TestOrdersNPlusOneMatchesOrders(t *testing.T) {
	t.Parallel()
	for _, d := range []Dialect{SQLite, Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newStore(t, d)
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
}
