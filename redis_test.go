package perfkit_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/servio/perfkit"
	"github.com/servio/perfkit/health"
	"github.com/servio/perfkit/internal/testenv"
)

func TestRedisOptions(t *testing.T) {
	t.Parallel()
	opt, err := perfkit.RedisOptions("redis://:s3cret@127.0.0.1:6379/2")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:6379", opt.Addr)
	assert.Equal(t, 2, opt.DB)
	assert.Equal(t, "s3cret", opt.Password)
	assert.True(t, opt.ContextTimeoutEnabled)
	assert.Equal(t, perfkit.RedisDialTimeout, opt.DialTimeout)
	assert.Equal(t, 2, opt.DialerRetries, "one dial attempt, retried once")
	assert.Equal(t, perfkit.RedisDialRetryDelay, opt.DialerRetryTimeout)
	assert.Equal(t, 1, opt.MaxRetries)
	assert.Equal(t, time.Millisecond, opt.MinRetryBackoff)
	assert.Equal(t, 4*time.Millisecond, opt.MaxRetryBackoff)
	assert.Equal(t, time.Second, opt.PoolTimeout)

	opt, err = perfkit.RedisOptions("redis://127.0.0.1:6379/0?dial_timeout=5s&max_retries=3")
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, opt.DialTimeout, "the URL's own settings are kept")
	assert.Equal(t, 3, opt.MaxRetries)
	assert.True(t, opt.ContextTimeoutEnabled)

	for _, bad := range []string{"http://u:hunter2@host:6379", "redis://u:hunter2@host:port/0", "redis://u:hunter2/x@h/0"} {
		_, err := perfkit.RedisOptions(bad)
		require.Error(t, err, bad)
		assert.NotContains(t, err.Error(), "hunter2", "the password stays out of the error")
	}
}

func TestRedisClusterOptions(t *testing.T) {
	t.Parallel()
	opt := perfkit.RedisClusterOptions("10.0.0.1:6379", "10.0.0.2:6379")
	assert.Equal(t, []string{"10.0.0.1:6379", "10.0.0.2:6379"}, opt.Addrs)
	assert.True(t, opt.ContextTimeoutEnabled)
	assert.Equal(t, perfkit.RedisDialTimeout, opt.DialTimeout)
	assert.Equal(t, 2, opt.DialerRetries)
	assert.Equal(t, perfkit.RedisDialRetryDelay, opt.DialerRetryTimeout)
	assert.Equal(t, time.Millisecond, opt.MinRetryBackoff)
	assert.Equal(t, 4*time.Millisecond, opt.MaxRetryBackoff)
	assert.Zero(t, opt.MaxRetries, "the cluster client's own retry loop (MaxRedirects)")
}

// The options work against the real Redis.
func TestRedisOptionsLiveRedis(t *testing.T) {
	t.Parallel()
	_, prefix := testenv.Redis(t) // fails clearly when Redis is down; removes the prefix's keys at the end
	opt, err := perfkit.RedisOptions(testenv.RedisURL())
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := t.Context()
	require.NoError(t, rdb.Set(ctx, prefix+"k", "v", time.Minute).Err())
	got, err := rdb.Get(ctx, prefix+"k").Result()
	require.NoError(t, err)
	assert.Equal(t, "v", got)
}

// closedAddr returns a local address nothing listens on: a dial is refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// redisCheck runs one health.Redis check of rdb with health's default
// timeout (2 s) and returns its output and how long it took.
func redisCheck(t *testing.T, rdb redis.UniversalClient) (string, time.Duration) {
	t.Helper()
	hc, err := health.New(health.Config{MeterProvider: noop.NewMeterProvider(),
		Checks: []health.Check{{Name: "redis", Critical: true, Run: health.Redis(rdb)}}})
	require.NoError(t, err)
	defer hc.Close()
	t0 := time.Now()
	rep := hc.Check(context.Background())
	d := time.Since(t0)
	require.Len(t, rep.Checks, 1)
	assert.Equal(t, health.StatusFail, rep.Status)
	return rep.Checks[0].Output, d
}

// With RedisOptions, a health check of a Redis that refuses connections
// fails in milliseconds and says why: "connection refused".
func TestHealthRedisRefusedWithOptions(t *testing.T) {
	t.Parallel()
	opt, err := perfkit.RedisOptions("redis://" + closedAddr(t) + "/0")
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })

	out, d := redisCheck(t, rdb)
	assert.Contains(t, out, "connection refused")
	assert.NotContains(t, out, "timed out")
	assert.NotContains(t, out, "deadline exceeded")
	assert.Less(t, d, 500*time.Millisecond, "well under the check's 2 s timeout (measured: about 50 ms)")
}

// The bad behaviour RedisOptions avoids: a client with go-redis's defaults
// (5 dial attempts 100 ms apart for each of 4 tries, and no
// ContextTimeoutEnabled) keeps dialling the refused port until the
// check's 2 s timeout, so the check takes the whole 2 s (about 1.95 s:
// health.Redis stops a little early) and fails with a deadline. health.Redis
// still names the refused dial it saw, through its dial hook; before it
// did, the output was "health: check timed out after 2s" alone.
func TestHealthRedisRefusedWithDefaults(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL("redis://" + closedAddr(t) + "/0")
	require.NoError(t, err)
	opt.MaxRetries = 0 // the default, spelled out: 3 retries
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })

	out, d := redisCheck(t, rdb)
	assert.Greater(t, d, 1500*time.Millisecond, "spends (nearly) the whole timeout")
	assert.True(t, strings.Contains(out, "deadline exceeded") || strings.Contains(out, "timed out"),
		"reported as a timeout: %s", out)
	assert.Contains(t, out, "connection refused", "with the last dial error named")
}
