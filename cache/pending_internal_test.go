package cache

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/internal/testenv"
)

func newReplayCache(t *testing.T) (*Cache, string) {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	c, err := New(Config{Redis: rdb, KeyPrefix: prefix, RedisTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, prefix
}

// A replayed invalidation also clears this L1 again: a read between the
// failure and the replay may have refilled it from the old L2 value.
func TestReplayClearsOwnL1(t *testing.T) {
	t.Parallel()
	c, prefix := newReplayCache(t)
	ctx := t.Context()
	require.NoError(t, Set(ctx, c, "k", "old", 0))
	c.deferKeys("k") // as a Delete whose Redis part failed
	v, err := Get[string](ctx, c, "k")
	require.NoError(t, err)
	require.Equal(t, "old", v, "still in L1 and L2")

	require.True(t, c.replayPending(ctx), "nothing left")
	_, err = Get[string](ctx, c, "k")
	assert.ErrorIs(t, err, ErrMiss, "L1 cleared by the replay")
	b, err := c.rdb.Get(ctx, prefix+"k").Bytes()
	require.NoError(t, err)
	h, _, err := decodeHeader(b)
	require.NoError(t, err)
	assert.NotZero(t, h.flags&flagTombstone, "L2 holds a tombstone")
	assert.Equal(t, uint64(1), c.Stats().Replayed)
}

// A later write of a key that gets through cancels the key's replay, which
// would only drop the newer value.
func TestLaterWriteCancelsReplay(t *testing.T) {
	t.Parallel()
	c, prefix := newReplayCache(t)
	ctx := t.Context()
	c.deferKeys("k", "other")
	require.NoError(t, Set(ctx, c, "k", "new", 0))
	require.NoError(t, c.Delete(ctx, "other"))
	assert.Zero(t, c.pendingCount())
	require.True(t, c.replayPending(ctx))
	v, err := c.rdb.Get(ctx, prefix+"k").Bytes()
	require.NoError(t, err, "the newer value stays in L2")
	assert.NotEmpty(t, v)
	assert.Zero(t, c.Stats().Replayed)
}

// Past the bounds the excess is dropped and the other instances are
// flushed instead, once.
func TestPendingBounds(t *testing.T) {
	t.Parallel()
	c, _ := newReplayCache(t)
	c.stopRetry() // keep the queue as it is
	for i := range maxPendingKeys + 5 {
		c.deferKeys(fmt.Sprint("k", i))
	}
	for i := range maxPendingPatterns + 1 {
		c.deferPattern(fmt.Sprint("p", i, ":*"))
	}
	c.pend.mu.Lock()
	keys, patterns, flush := len(c.pend.keys), len(c.pend.patterns), c.pend.flush
	c.pend.mu.Unlock()
	assert.Equal(t, maxPendingKeys, keys)
	assert.Equal(t, maxPendingPatterns, patterns)
	assert.True(t, flush, "the other instances will be flushed")
	assert.Equal(t, maxPendingKeys+maxPendingPatterns+1, c.pendingCount())
}

// A round starts with a PING and stops there while Redis is unreachable.
func TestReplayStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	c, err := New(Config{Redis: rdb, RedisTimeout: 200 * time.Millisecond, BreakerConsecutiveFailures: 100,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	c.stopRetry()
	c.deferKeys("a", "b")
	c.deferTags([]string{"t"})
	srv.Kill()
	before := c.Stats().L2Errors
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	assert.False(t, c.replayPending(ctx))
	assert.Equal(t, before+1, c.Stats().L2Errors, "one failed PING, nothing else tried")
	assert.Equal(t, 3, c.pendingCount(), "everything still queued")
}
