package cache

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/internal/testenv"
)

// Every slot's hash tag lands in that slot, and slotOf agrees with the
// cluster (CLUSTER KEYSLOT) on plain and hash-tagged keys.
func TestSlotTags(t *testing.T) {
	t.Parallel()
	for s, tag := range slotTags() {
		require.Equal(t, s, slotOf("x{"+tag+"}y"), "tag %q", tag)
	}
	cl := testenv.RedisCluster(t)
	rdb := cl.Client()
	for _, k := range []string{"", "a", "menu:42", "servio:{user:1}:cart", "{}x", "a{b}c{d}", "{", "}{x}"} {
		want, err := rdb.ClusterKeySlot(t.Context(), k).Result()
		require.NoError(t, err)
		assert.EqualValues(t, want, slotOf(k), "slot of %q", k)
	}
}

// Concurrent invalidations on a cluster share rounds of epoch
// replacements, and each returns only once a round that started after it
// replaced every slot's epoch.
func TestClusterEpochRoundsCoalesce(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	c, err := New(Config{Redis: cl.Client(), KeyPrefix: "co:", RedisTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	keys := c.slotEpochKeys()
	probe := []string{keys[0], keys[5000], keys[clusterSlots-1]}
	read := func() []string {
		out := make([]string, len(probe))
		for i, k := range probe {
			out[i] = c.rdb.Get(ctx, k).Val()
		}
		return out
	}
	require.NoError(t, c.newEpoch(ctx))
	const n = 16
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			before := read()
			assert.NoError(t, c.newEpoch(ctx))
			after := read()
			for i := range probe {
				assert.NotEqual(t, before[i], after[i], "the epoch of %s was replaced after the call began", probe[i])
			}
		})
	}
	wg.Wait()
	last := read()
	assert.Equal(t, []string{last[0], last[0], last[0]}, last, "the last round wrote every slot")
	rounds := c.rounds.started.Load() - 1
	t.Logf("%d concurrent invalidations, %d rounds", n, rounds)
	assert.Less(t, rounds, uint64(n), "concurrent invalidations share rounds")
}
