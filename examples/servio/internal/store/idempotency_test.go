package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIdemLeaseAndExpiry: a claim whose owner neither completed nor
// released it is taken over after IdemLease, and the old owner's write
// then rolls back (ErrIdemLost); a completed key replays until IdemTTL and
// is forgotten after.
func TestIdemLeaseAndExpiry(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 1, Items: 1, Orders: 0}))
		var rid, item int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT restaurant_id, id FROM menu_items").Scan(&rid, &item))
		count := func() (n int) {
			require.NoError(t, s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders").Scan(&n))
			return n
		}
		respond := func(o Order) (int, []byte, error) { return 201, []byte(`{"id":1}`), nil }
		now := time.Now()
		first, err := s.ClaimIdem(ctx, "scope", "k", "h", now)
		require.NoError(t, err)
		require.Equal(t, IdemClaimed, first.Outcome)

		c, err := s.ClaimIdem(ctx, "scope", "k", "h", now.Add(IdemLease/2))
		require.NoError(t, err)
		assert.Equal(t, IdemInFlight, c.Outcome, "within the lease")

		second, err := s.ClaimIdem(ctx, "scope", "k", "h", now.Add(IdemLease+time.Second))
		require.NoError(t, err)
		require.Equal(t, IdemClaimed, second.Outcome, "after the lease a retry takes the key over")

		_, err = s.CreateOrder(ctx, NewOrder{RestaurantID: rid, Items: []NewOrderItem{{MenuItemID: item, Quantity: 1}},
			Idem: &IdemCompletion{Claim: first, Respond: respond}})
		require.ErrorIs(t, err, ErrIdemLost)
		assert.Equal(t, 0, count(), "the old owner's order rolled back")

		ic := &IdemCompletion{Claim: second, Respond: respond}
		_, err = s.CreateOrder(ctx, NewOrder{RestaurantID: rid, Items: []NewOrderItem{{MenuItemID: item, Quantity: 1}}, Idem: ic})
		require.NoError(t, err)
		assert.Equal(t, 1, count())

		c, err = s.ClaimIdem(ctx, "scope", "k", "h", now.Add(IdemTTL-time.Minute))
		require.NoError(t, err)
		assert.Equal(t, IdemReplay, c.Outcome)
		assert.Equal(t, 201, c.Status)
		assert.JSONEq(t, `{"id":1}`, string(c.Body))

		c, err = s.ClaimIdem(ctx, "scope", "k", "other", now.Add(IdemTTL+time.Minute))
		require.NoError(t, err)
		assert.Equal(t, IdemClaimed, c.Outcome, "after 24 h the key is forgotten")
	})
}
