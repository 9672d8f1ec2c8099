package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// setFillHooks installs the L1 fill hooks for one test (they are package
// globals: the tests using them do not run in parallel).
func setFillHooks(t *testing.T, beforePut, beforeSettle func(key string)) {
	t.Helper()
	testHookBeforePut, testHookBeforeSettle = beforePut, beforeSettle
	t.Cleanup(func() { testHookBeforePut, testHookBeforeSettle = nil, nil })
}

// A load's L1 fill that passed its check before an invalidation ran must
// not be readable once the invalidation returned. The fill is held between
// its check and its write to L1 while the invalidation runs; then, with
// the value written but the fill not yet settled, a read must not see the
// old value if the invalidation had returned. (Before the fix the
// invalidation missed the fill — nothing was in L1 yet, or it was queued
// and not yet applied, which pattern and tag invalidations cannot see —
// returned, and the read got the old value until the fill undid itself.)
func TestInvalidationWaitsForRacingFill(t *testing.T) {
	for _, tc := range []struct {
		name       string
		invalidate func(ctx context.Context, c *Cache) error
	}{
		{"Delete", func(ctx context.Context, c *Cache) error { return c.Delete(ctx, "k") }},
		{"InvalidatePattern", func(ctx context.Context, c *Cache) error { _, err := c.InvalidatePattern(ctx, "k*"); return err }},
		{"InvalidateTags", func(ctx context.Context, c *Cache) error { _, err := c.InvalidateTags(ctx, "t"); return err }},
		{"Set", func(ctx context.Context, c *Cache) error { return Set(ctx, c, "k", "new", time.Minute) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
			ctx := context.Background()

			var (
				once     sync.Once
				returned = make(chan struct{}) // closed when the invalidation returned
				invErr   error
				stale    string
			)
			setFillHooks(t, func(key string) {
				once.Do(func() {
					go func() {
						invErr = tc.invalidate(ctx, c)
						close(returned)
					}()
					// Give the invalidation every chance to finish first.
					select {
					case <-returned:
					case <-time.After(200 * time.Millisecond):
					}
				})
			}, func(key string) {
				select {
				case <-returned: // the write returned: a read must not see "old"
					if v, err := Get[string](ctx, c, "k"); err == nil && v == "old" {
						stale = v
					}
				default:
				}
			})
			v, err := GetOrSet(ctx, c, "k", time.Minute, func(context.Context) (string, error) { return "old", nil }, WithTags("t"))
			require.NoError(t, err)
			require.Equal(t, "old", v)
			<-returned
			require.NoError(t, invErr)
			require.Empty(t, stale, "a read after the invalidation returned saw the value of a load that began before it")
			testHookBeforePut, testHookBeforeSettle = nil, nil
			got, err := Get[string](ctx, c, "k")
			if tc.name == "Set" {
				require.NoError(t, err)
				require.Equal(t, "new", got)
			} else {
				require.True(t, errors.Is(err, ErrMiss), "after the invalidation: %q, %v", got, err)
			}
		})
	}
}
