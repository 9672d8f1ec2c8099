package cache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/internal/testenv"
)

// keysByMaster returns n keys (cache keys, under prefix in Redis) for each
// master address of the cluster.
func keysByMaster(t *testing.T, rdb *redis.ClusterClient, prefix string, n int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for i := 0; ; i++ {
		k := fmt.Sprint("item:", i)
		m, err := rdb.MasterForKey(t.Context(), prefix+k)
		require.NoError(t, err)
		addr := m.Options().Addr
		if len(out[addr]) < n {
			out[addr] = append(out[addr], k)
		}
		if len(out) == 3 && len(out[addr]) == n {
			done := true
			for _, ks := range out {
				done = done && len(ks) == n
			}
			if done {
				return out
			}
		}
	}
}

// serverOf returns the server of the cluster at addr.
func serverOf(t *testing.T, cl *testenv.Cluster, addr string) *testenv.RedisServer {
	t.Helper()
	i := slices.Index(cl.Addrs, addr)
	require.GreaterOrEqual(t, i, 0, "master %s is one of the cluster's", addr)
	return cl.Servers[i]
}

// TestClusterDeadMasterKeepsL2ForLiveMasters kills one master of three:
// once that node's breaker opened, its keys fail fast while the keys of
// the live masters still go to L2 — written on the server that owns them,
// and read from L2 by another instance — one key at a time and in
// batches that span the dead and the live masters.
func TestClusterDeadMasterKeepsL2ForLiveMasters(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	rdbA := cl.PartialOutageClient()
	const prefix = "dm:"
	// RedisTimeout as newCache's (a loaded CI machine can stall a round trip);
	// a refused call takes microseconds, far under it.
	cfg := cache.Config{RedisTimeout: 2 * time.Second, BreakerConsecutiveFailures: 3, BreakerOpenTimeout: time.Minute}
	a := newCache(t, rdbA, prefix, cfg)
	// Another instance, started while every node is up; it reads nothing
	// before the values below are written.
	b := newCache(t, cl.PartialOutageClient(), prefix, cfg)
	ctx := t.Context()

	byMaster := keysByMaster(t, rdbA, prefix, 4)
	deadAddr := cl.Addrs[0]
	dead := byMaster[deadAddr]
	var live []string
	for addr, ks := range byMaster {
		if addr != deadAddr {
			live = append(live, ks...)
		}
	}
	serverOf(t, cl, deadAddr).Kill()

	// Drive the dead node's breaker open: its keys fail, then fail fast.
	for i := 0; i < cfg.BreakerConsecutiveFailures; i++ {
		err := cache.Set(ctx, a, dead[0], "v", time.Minute)
		require.ErrorIs(t, err, cache.ErrUnavailable, "a write to the dead master fails")
	}
	rejected := a.Stats().L2Rejected
	start := time.Now()
	_, err := cache.Get[string](ctx, a, dead[1])
	took := time.Since(start)
	require.ErrorIs(t, err, cache.ErrMiss)
	assert.Greater(t, a.Stats().L2Rejected, rejected, "the dead master's breaker refused the call")
	assert.Less(t, took, cfg.RedisTimeout/8, "a key on the dead master fails fast once its breaker is open")
	t.Logf("a read from the dead master, breaker open: %v", took)
	require.ErrorIs(t, cache.Set(ctx, a, dead[1], "v", time.Minute), cache.ErrUnavailable)

	// Keys of the live masters still reach L2, one by one.
	for _, k := range live[:4] {
		require.NoError(t, cache.Set(ctx, a, k, "live:"+k, time.Minute), "Set of %s on a live master", k)
	}
	// And in a batch spanning every master: the dead master's part fails,
	// the live masters' parts are written.
	batch := map[string]string{dead[2]: "batch", live[4]: "batch:" + live[4], live[5]: "batch:" + live[5]}
	for _, k := range live[6:] {
		batch[k] = "batch:" + k
	}
	err = cache.SetMany(ctx, a, batch, time.Minute)
	require.ErrorIs(t, err, cache.ErrUnavailable, "the dead master's part of SetMany failed")

	// Server side: each value is on the live master that owns its key.
	for _, k := range live {
		m, err := rdbA.MasterForKey(ctx, prefix+k)
		require.NoError(t, err)
		srv := serverOf(t, cl, m.Options().Addr)
		raw, err := srv.Client().Get(ctx, prefix+k).Bytes()
		require.NoError(t, err, "%s is in Redis on its master %s", k, srv.Addr)
		assert.NotEmpty(t, raw)
	}

	// The other instance (its own client, L1 empty) reads them from L2,
	// one by one and with GetMany across the dead master too.
	for _, k := range live[:4] {
		v, err := cache.Get[string](ctx, b, k)
		require.NoError(t, err, "b reads %s from L2 (b's stats %+v)", k, b.Stats())
		assert.Equal(t, "live:"+k, v)
	}
	got, err := cache.GetMany[string](ctx, b, append(slices.Clone(live[4:]), dead[2], dead[3]))
	require.NoError(t, err)
	want := map[string]string{}
	for _, k := range live[4:] {
		want[k] = "batch:" + k
	}
	assert.Equal(t, want, got, "GetMany serves the live masters' keys while the dead master's miss")
	assert.EqualValues(t, len(live), b.Stats().L2Hits, "every live key came from L2")

	// The dead master's keys still fail fast on a, and a read of one is a
	// miss (the loader runs), not an error.
	v, err := cache.GetOrSet(ctx, a, dead[3], time.Minute, func(context.Context) (string, error) { return "loaded", nil })
	require.NoError(t, err)
	assert.Equal(t, "loaded", v)
	assert.True(t, errors.Is(cache.Set(ctx, a, dead[3], "x", 0), cache.ErrUnavailable))

	// A tag invalidation whose tag set lives on the dead master fails
	// (and is replayed later) at once; the live masters' values stay.
	deadTag := ""
	for i := 0; deadTag == ""; i++ {
		tg := fmt.Sprint("tag", i)
		m, err := rdbA.MasterForKey(ctx, prefix+"tag:"+tg)
		require.NoError(t, err)
		if m.Options().Addr == deadAddr {
			deadTag = tg
		}
	}
	_, err = a.InvalidateTags(ctx, deadTag)
	require.ErrorIs(t, err, cache.ErrUnavailable, "the tag set's master is dead")
	v, err = cache.Get[string](ctx, b, live[0])
	require.NoError(t, err)
	assert.Equal(t, "live:"+live[0], v)

	// A pattern invalidation cannot replace the dead master's epochs: it
	// says so (and is replayed), but still removes the live masters' keys.
	_, err = a.InvalidatePattern(ctx, "item:*")
	require.ErrorIs(t, err, cache.ErrUnavailable, "the dead master's slots keep their epoch")
	for _, k := range live {
		m, err := rdbA.MasterForKey(ctx, prefix+k)
		require.NoError(t, err)
		err = serverOf(t, cl, m.Options().Addr).Client().Get(ctx, prefix+k).Err()
		assert.ErrorIs(t, err, redis.Nil, "%s is gone from its live master", k)
	}
}

// TestClusterInvalidationSurvivesChannelNodeDeath kills the master that
// owns the invalidation channel's slot — the node a cluster client's
// Subscribe uses — and checks that b still drops from its L1 the keys a
// writes and deletes. The bound is measured: the slowest delivery with
// every node up, times ten, and at least crossBound (the checker's
// figure); each delivery is polled with the generous settle deadline and
// the observed latencies are logged.
func TestClusterInvalidationSurvivesChannelNodeDeath(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	rdbA, rdbB := cl.PartialOutageClient(), cl.PartialOutageClient()
	const prefix = "cn:"
	cfg := cache.Config{L1TTL: 5 * time.Minute, TTL: 10 * time.Minute, RedisTimeout: 500 * time.Millisecond}
	a := newCache(t, rdbA, prefix, cfg)
	b := newCache(t, rdbB, prefix, cfg)
	ctx := t.Context()
	waitSubscribed(t, a, b)
	inv0 := b.Stats().Invalidations

	channel := prefix + cache.DefaultChannel
	chMaster, err := rdbA.MasterForKey(ctx, channel)
	require.NoError(t, err)
	chAddr := chMaster.Options().Addr
	var keys []string
	for addr, ks := range keysByMaster(t, rdbA, prefix, 3) {
		if addr != chAddr {
			keys = append(keys, ks...)
		}
	}

	// round writes key on a (Set, then Delete) after b cached "old", and
	// returns how long b took to stop serving "old" after each write
	// returned.
	round := func(key string) []time.Duration {
		t.Helper()
		var out []time.Duration
		for _, write := range []func() error{
			func() error { return cache.Set(ctx, a, key, "new", 0) },
			func() error { return a.Delete(ctx, key) },
		} {
			require.NoError(t, cache.Set(ctx, a, key, "old", 0))
			// b may still hold the previous round's value until a's
			// announcement of "old" arrives.
			require.Eventually(t, func() bool {
				v, err := cache.GetOrSet(ctx, b, key, 0, func(context.Context) (string, error) { return "loaded", nil })
				return err == nil && v == "old"
			}, settle, time.Millisecond, "b caches the old value of %s", key)
			require.NoError(t, write(), "the write of %s on a", key)
			start := time.Now()
			deadline := start.Add(settle)
			for {
				v, err := cache.Get[string](ctx, b, key)
				if err != nil || v != "old" {
					break
				}
				require.True(t, time.Now().Before(deadline), "b still serves the old %s %v after a's write", key, settle)
				time.Sleep(100 * time.Microsecond)
			}
			out = append(out, time.Since(start))
		}
		return out
	}

	var healthy []time.Duration
	for _, k := range keys[:3] {
		healthy = append(healthy, round(k)...)
	}
	// One announcement is heard on every master's subscription and
	// applied once: b counts one invalidation per message of a (4 a key:
	// two Sets of "old", the Set of "new", the Delete), never the copies.
	require.Eventually(t, func() bool { return b.Stats().Invalidations-inv0 >= 4*3 }, settle, time.Millisecond)
	assert.Never(t, func() bool { return b.Stats().Invalidations-inv0 > 4*3 }, 300*time.Millisecond, 5*time.Millisecond,
		"a copy of an announcement from another master was applied again")

	serverOf(t, cl, chAddr).Kill()
	var outage []time.Duration
	for _, k := range keys[3:] {
		outage = append(outage, round(k)...)
	}
	bound := max(crossBound, 10*slices.Max(healthy))
	t.Logf("channel node %s killed; deliveries with every node up: %v; after the kill: %v; bound %v", chAddr, healthy, outage, bound)
	for _, d := range outage {
		assert.LessOrEqual(t, d, bound, "a delivery after the channel node died")
	}
}

// TestClusterLoadDoesNotResurrectAfterPatternOrTags holds a load's write
// to L2 on a Redis Cluster — the fill script, or the tag-set pipeline
// that precedes a tagged fill — after the load missed, runs a pattern
// or tag invalidation of its key on another instance to completion, then
// lets the write go: the loaded value must not be in L2 (read raw from
// the cluster) nor be read by a third instance.
func TestClusterLoadDoesNotResurrectAfterPatternOrTags(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	const prefix = "res:"
	ctx := t.Context()
	raw := cl.Client()
	for _, tc := range []struct {
		name, key string
		opts      []cache.Option
		// hold picks the call to hold: skip reports the calls let through.
		skip       func(names []string, pipe bool) bool
		invalidate func(c *cache.Cache) error
	}{
		{
			name: "pattern", key: "menu:1",
			skip: func(names []string, pipe bool) bool {
				return pipe || (names[0] != "evalsha" && names[0] != "eval")
			},
			invalidate: func(c *cache.Cache) error { _, err := c.InvalidatePattern(ctx, "menu:*"); return err },
		},
		{
			name: "tags", key: "menu:2", opts: []cache.Option{cache.WithTags("r1")},
			skip:       func(names []string, pipe bool) bool { return !pipe }, // the SADD of the tag set
			invalidate: func(c *cache.Cache) error { _, err := c.InvalidateTags(ctx, "r1"); return err },
		},
		{
			name: "tags/fill", key: "menu:3", opts: []cache.Option{cache.WithTags("r2")},
			skip: func(names []string, pipe bool) bool {
				return pipe || (names[0] != "evalsha" && names[0] != "eval")
			},
			invalidate: func(c *cache.Cache) error { _, err := c.InvalidateTags(ctx, "r2"); return err },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := cl.Client()
			hold := newHoldHook()
			rc.AddHook(hold)
			a := newCache(t, rc, prefix, cache.Config{})
			b := newCache(t, cl.Client(), prefix, cache.Config{})

			hold.arm(1, tc.skip)
			got := make(chan string, 1)
			go func() {
				v, _ := cache.GetOrSet(ctx, a, tc.key, time.Minute, func(context.Context) (string, error) { return "stale", nil }, tc.opts...)
				got <- v
			}()
			select {
			case <-hold.held:
			case <-time.After(settle):
				t.Fatal("the load's write to L2 was never sent")
			}
			require.NoError(t, tc.invalidate(b))
			close(hold.release)
			<-got

			v, err := raw.Get(ctx, prefix+tc.key).Bytes()
			if !errors.Is(err, redis.Nil) {
				require.NoError(t, err)
				assert.NotContains(t, string(v), "stale", "the load's value reached L2 after the invalidation returned")
			}
			c := newCache(t, cl.Client(), prefix, cache.Config{})
			for name, c := range map[string]*cache.Cache{"b": b, "c": c} {
				v, err := cache.Get[string](ctx, c, tc.key)
				assert.ErrorIs(t, err, cache.ErrMiss, "%s read the load's value after the invalidation: %q", name, v)
			}
		})
	}
}

// TestClusterTaggedSetWhoseTagMasterFailsLeavesNoUntrackedValue: a tagged
// Set on a cluster writes the value on its master, then the tag set on
// the tag's master. When only the second write fails, the Set returns
// ErrUnavailable and must not leave the value in L2 outside its tag set
// (an InvalidateTags after the Set returned would miss it until the
// replay): it is taken back at once with a tombstone.
func TestClusterTaggedSetWhoseTagMasterFailsLeavesNoUntrackedValue(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	rdb := cl.PartialOutageClient()
	const prefix = "tg:"
	a := newCache(t, rdb, prefix, cache.Config{})
	b := newCache(t, cl.PartialOutageClient(), prefix, cache.Config{}) // another instance
	ctx := t.Context()

	// A tag whose set lives on one master and a key that lives on another.
	tagMaster := func(tag string) string {
		m, err := rdb.MasterForKey(ctx, prefix+"tag:"+tag)
		require.NoError(t, err)
		return m.Options().Addr
	}
	tag := "t0"
	for i := 0; tagMaster(tag) != cl.Addrs[0]; i++ {
		tag = fmt.Sprint("t", i)
	}
	var key string
	for _, ks := range keysByMaster(t, rdb, prefix, 1) {
		if m, _ := rdb.MasterForKey(ctx, prefix+ks[0]); m.Options().Addr != cl.Addrs[0] {
			key = ks[0]
		}
	}
	serverOf(t, cl, cl.Addrs[0]).Kill()

	err := cache.Set(ctx, a, key, "untracked?", time.Minute, cache.WithTags(tag))
	require.ErrorIs(t, err, cache.ErrUnavailable, "the tag set's master is dead")
	raw, err := rdb.Get(ctx, prefix+key).Bytes()
	if err == nil {
		assert.NotContains(t, string(raw), "untracked?", "the value must not stay in L2 outside its tag set")
	} else {
		require.ErrorIs(t, err, redis.Nil)
	}
	_, err = cache.Get[string](ctx, b, key)
	require.ErrorIs(t, err, cache.ErrMiss, "another instance must not read the untracked value")
}
