package ratelimit_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// commandStats returns INFO commandstats as command → calls.
func commandStats(t *testing.T, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		out[name] = n
	}
	return out
}

// TestRedisStressServerSide: 4 instances (each its own client and Group)
// fire 800 concurrent decisions at one key through three tiers of three
// algorithms. Counted on the client: exactly the tightest tier's quota
// passes. Counted by the private Redis itself (INFO commandstats): one
// script run per decision, and writes (SET for the GCRA
// tier, HSET for the two windows) only for the admitted decisions, so no
// denied request spent any tier's quota; the stored counts agree.
func TestRedisStressServerSide(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	admin := srv.Client()
	ctx := context.Background()
	tiers := []ratelimit.Tier{
		{Name: "g", Limit: ratelimit.PerHour(100)},
		{Name: "s", Limit: ratelimit.Per(50, 24*time.Hour), Algorithm: ratelimit.SlidingWindow},
		{Name: "f", Limit: ratelimit.Per(30, 24*time.Hour), Algorithm: ratelimit.FixedWindow},
	}
	const instances, perInstance = 4, 200
	var ls []ratelimit.Limiter
	var groups []*ratelimit.Group
	for range instances {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Ping(ctx).Err())
		g, err := ratelimit.NewGroup(ratelimit.Config{Redis: c, RedisTimeout: 10 * time.Second, KeyPrefix: "rl:"})
		require.NoError(t, err)
		l, err := g.Limiter(tiers...)
		require.NoError(t, err)
		ls, groups = append(ls, l), append(groups, g)
	}
	require.NoError(t, admin.ConfigResetStat(ctx).Err())
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, l := range ls {
		for range perInstance {
			wg.Go(func() {
				r, err := l.Allow(ctx, "198.51.100.1")
				assert.NoError(t, err)
				if r.Allowed {
					allowed.Add(1)
				}
			})
		}
	}
	wg.Wait()
	const total = instances * perInstance
	assert.Equal(t, int64(30), allowed.Load(), "admitted of %d, tightest tier 30", total)
	var onRedis uint64
	for _, g := range groups {
		onRedis += g.Stats().Redis
	}
	require.Equal(t, uint64(total), onRedis, "every decision made on Redis")

	st := commandStats(t, admin)
	// the script calls TIME once per run; an EVALSHA that Redis answered
	// NOSCRIPT (sent before the first EVAL had loaded the script) is
	// followed by one EVAL
	assert.Equal(t, int64(total), st["time"], "one script run per decision: %v", st)
	assert.Equal(t, int64(total), st["evalsha"], "one EVALSHA per decision: %v", st)
	errs, err := admin.Info(ctx, "errorstats").Result()
	require.NoError(t, err)
	noscript := int64(0)
	if _, rest, ok := strings.Cut(errs, "errorstat_NOSCRIPT:count="); ok {
		noscript, _ = strconv.ParseInt(strings.TrimSpace(strings.SplitN(rest, "\r\n", 2)[0]), 10, 64)
	}
	assert.Equal(t, noscript, st["eval"], "an EVAL only after a NOSCRIPT answer (the script not loaded yet): %v", st)
	assert.Equal(t, int64(30), st["set"], "GCRA writes only for admitted decisions: %v", st)
	assert.Equal(t, int64(2*30), st["hset"], "window tiers write only for admitted decisions: %v", st)
	assert.Equal(t, "30", admin.HGet(ctx, "rl:{198.51.100.1}:s", "c").Val(), "sliding count stored")
	assert.Equal(t, "30", admin.HGet(ctx, "rl:{198.51.100.1}:f", "c").Val(), "fixed count stored")
	r, err := ls[0].(*ratelimit.Redis).AllowTiers(ctx, "198.51.100.1", 1, make([]ratelimit.Result, 3))
	require.NoError(t, err)
	assert.False(t, r.Allowed)
	out := make([]ratelimit.Result, 3)
	_, err = ls[0].(*ratelimit.Redis).AllowTiers(ctx, "198.51.100.1", 1, out)
	require.NoError(t, err)
	assert.Equal(t, 70, out[0].Remaining, "GCRA tier counted the 30 admitted only")
}
