package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSeedIdempotent: a second run with the same sizes adds nothing, a
// bigger one adds only the difference, and LoadDemo leaves the seeded
// database alone.
func TestSeedIdempotent(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		count := func(table string) (n int) {
			require.NoError(t, s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n))
			return n
		}
		var progress []int
		opts := SeedOptions{Restaurants: 3, Items: 4, Orders: 700, Progress: func(done, total int) { progress = append(progress, done) }}
		require.NoError(t, s.Seed(ctx, opts))
		assert.Equal(t, []int{500, 700}, progress)
		assert.Equal(t, 3, count("restaurants"))
		assert.Equal(t, 12, count("menu_items"))
		assert.Equal(t, 12, count("inventory_items"))
		assert.Equal(t, 700, count("orders"))
		items := count("order_items")
		assert.GreaterOrEqual(t, items, 700)

		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 3, Items: 4, Orders: 700}))
		assert.Equal(t, 700, count("orders"), "same sizes again: no-op")
		assert.Equal(t, items, count("order_items"))

		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 4, Items: 5, Orders: 750}))
		assert.Equal(t, 4, count("restaurants"))
		assert.Equal(t, 20, count("menu_items"))
		assert.Equal(t, 20, count("inventory_items"))
		assert.Equal(t, 750, count("orders"))

		loaded, err := s.LoadDemo(ctx, func(p string) (string, error) { return "x", nil })
		require.NoError(t, err)
		assert.False(t, loaded, "demo data is never loaded over existing data")
		assert.Equal(t, 4, count("restaurants"))
	})
}

// TestLoadDemoOnce: the demo data goes into an empty database once; a
// second call, as from a second instance starting, adds nothing.
func TestLoadDemoOnce(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		hash := func(p string) (string, error) { return "h:" + p, nil }
		loaded, err := s.LoadDemo(ctx, hash)
		require.NoError(t, err)
		assert.True(t, loaded)
		loaded, err = s.LoadDemo(ctx, hash)
		require.NoError(t, err)
		assert.False(t, loaded)
		var n int
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM restaurants").Scan(&n))
		assert.Equal(t, 3, n)
		u, err := s.UserByEmail(ctx, "manager@servio.dev")
		require.NoError(t, err)
		assert.Equal(t, "h:servio-demo", u.PasswordHash)
	})
}
