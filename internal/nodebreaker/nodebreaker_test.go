package nodebreaker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/nodebreaker"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func settings(failures uint32) gobreaker.Settings {
	return gobreaker.Settings{
		Name:        "t",
		Timeout:     time.Hour, // stays open for the whole test
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
	}
}

// TestSingleClient: a non-cluster client has one breaker, whatever the key.
func TestSingleClient(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	b := nodebreaker.New[int](c, settings(2))
	ctx := context.Background()
	cb := b.ForKey(ctx, "a")
	assert.Same(t, cb, b.ForKey(ctx, "{other}:b"), "one breaker for every key")
	assert.Same(t, cb, b.ForAddr("10.0.0.1:6379"), "one breaker for every address")
	assert.Equal(t, "t@127.0.0.1:1", cb.Name())
	boom := errors.New("boom")
	for range 2 {
		_, err := b.Execute(ctx, "a", func() (int, error) { return 0, boom })
		require.ErrorIs(t, err, boom)
	}
	_, err := b.Execute(ctx, "z", func() (int, error) { return 1, nil })
	assert.ErrorIs(t, err, gobreaker.ErrOpenState, "the one breaker opened for key z too")
	assert.True(t, b.Open())
	assert.Equal(t, []nodebreaker.State{{Name: "t@127.0.0.1:1", State: gobreaker.StateOpen}}, b.States())
}

// TestClusterDeadMaster kills one master of a private three-master cluster
// (cluster-require-full-coverage no): the breaker of the dead master opens,
// and keys owned by the two live masters keep reaching Redis through
// breakers that stay closed, while calls for the dead master's keys run
// concurrently with theirs.
func TestClusterDeadMaster(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	c := cl.PartialOutageClient()
	ctx := context.Background()
	b := nodebreaker.New[string](c, settings(3))

	// one key per master, found through the cluster's own slot map
	keyOf := map[string]string{} // master address → key
	for i := 0; len(keyOf) < 3 && i < 1000; i++ {
		k := fmt.Sprintf("nb:%d", i)
		n, err := c.MasterForKey(ctx, k)
		require.NoError(t, err)
		if _, ok := keyOf[n.Options().Addr]; !ok {
			keyOf[n.Options().Addr] = k
		}
	}
	require.Len(t, keyOf, 3, "keys on all three masters")
	for addr, k := range keyOf {
		cb := b.ForKey(ctx, k)
		assert.Equal(t, "t@"+addr, cb.Name(), "key %s is owned by %s", k, addr)
		assert.Same(t, cb, b.ForAddr(addr))
		assert.Same(t, cb, b.ForKey(ctx, "{"+k+"}:suffix"), "a hash tag picks the tag's node")
	}

	dead := cl.Servers[0]
	dead.Kill()
	const rounds = 20
	var wg sync.WaitGroup
	errs := make(map[string][]error)
	var mu sync.Mutex
	for addr, k := range keyOf {
		wg.Go(func() {
			for i := range rounds {
				_, err := b.Execute(ctx, k, func() (string, error) {
					cctx, cancel := context.WithTimeout(ctx, time.Second)
					defer cancel()
					return c.Set(cctx, k, i, time.Minute).Result()
				})
				mu.Lock()
				errs[addr] = append(errs[addr], err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for addr, es := range errs {
		if addr == dead.Addr {
			assert.ErrorIs(t, es[rounds-1], gobreaker.ErrOpenState, "calls for the dead master's key fail fast at the end")
			assert.Equal(t, gobreaker.StateOpen, b.ForAddr(addr).State(), "dead master's breaker")
			continue
		}
		for i, err := range es {
			assert.NoError(t, err, "live master %s, call %d", addr, i)
		}
		assert.Equal(t, gobreaker.StateClosed, b.ForAddr(addr).State(), "live master %s's breaker", addr)
	}
	assert.True(t, b.Open())
	open := 0
	for _, s := range b.States() {
		if s.State == gobreaker.StateOpen {
			open++
			assert.Equal(t, "t@"+dead.Addr, s.Name)
		}
	}
	assert.Equal(t, 1, open, "exactly one breaker open: %v", b.States())
}

// TestClusterUnreachable: when no node answers and the client has never
// read the slot map, calls share the "@cluster" breaker, which opens.
func TestClusterUnreachable(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true,
		DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	b := nodebreaker.New[string](c, settings(2))
	ctx := context.Background()
	cb := b.ForKey(ctx, "a")
	assert.Equal(t, "t@cluster", cb.Name())
	for range 2 {
		_, err := b.Execute(ctx, "a", func() (string, error) { return c.Get(ctx, "a").Result() })
		require.Error(t, err)
	}
	_, err := b.Execute(ctx, "b", func() (string, error) { return "", nil })
	assert.ErrorIs(t, err, gobreaker.ErrOpenState)
}
