package ratelimit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLocalChainBindingTier: when several local tiers deny, the result is
// the one with the longest wait (the binding tier), not the first in the
// chain: a client that retries after a shorter Retry-After is denied again.
func TestLocalChainBindingTier(t *testing.T) {
	t.Parallel()
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	short := ratelimit.Tier{Name: "short", Limit: ratelimit.PerMinute(2)}
	long := ratelimit.Tier{Name: "long", Limit: ratelimit.PerHour(2)}
	l, err := g.Limiter(short, long)
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 2 {
		r, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		require.True(t, r.Allowed, "request %d", i)
	}
	r, err := l.Allow(ctx, "k")
	require.NoError(t, err)
	require.False(t, r.Allowed)
	assert.Equal(t, "long", r.Tier, "the tier that allows last binds")
	assert.Greater(t, r.RetryAfter, 29*time.Minute, "Retry-After is the long tier's (30 min), not the short one's (30 s)")
}

// TestDuplicateTierCountedOnce: a tier listed twice is one quota, counted
// once per decision, locally and on Redis.
func TestDuplicateTierCountedOnce(t *testing.T) {
	t.Parallel()
	c, prefix := sharedRedis(t)
	tier := ratelimit.Tier{Name: "dup", Limit: ratelimit.PerHour(4)}
	for _, cfg := range []ratelimit.Config{{}, {Redis: c, KeyPrefix: prefix, RedisTimeout: time.Second}} {
		g, err := ratelimit.NewGroup(cfg)
		require.NoError(t, err)
		l, err := g.Limiter(tier, tier)
		require.NoError(t, err, "redis %v", cfg.Redis != nil)
		allowed := 0
		for range 6 {
			r, err := l.Allow(context.Background(), "k")
			require.NoError(t, err)
			if r.Allowed {
				allowed++
			}
		}
		assert.Equal(t, 4, allowed, "tier of 4 listed twice (redis %v)", cfg.Redis != nil)
	}
}

// TestPolicyHeaderIsABound: RateLimit-Policy's q is the most requests that
// pass in any window of w seconds. A greedy client on a fake clock sends
// whenever the limiter allows (at once after each Retry-After); the most it
// gets through in any w-second window equals q.
func TestPolicyHeaderIsABound(t *testing.T) {
	t.Parallel()
	polRe := regexp.MustCompile(`^"[a-z]+";q=(\d+);w=(\d+)$`)
	for _, lim := range []ratelimit.Limit{ratelimit.PerMinute(60), ratelimit.PerMinute(60).WithBurst(10),
		ratelimit.Per(5, 15*time.Minute), ratelimit.PerSecond(10), ratelimit.Per(3, 1500*time.Millisecond)} {
		l, err := ratelimit.NewInMemory(ratelimit.Tier{Name: "p", Limit: lim}, 0)
		require.NoError(t, err)
		mw, err := ratelimit.Middleware(l, ratelimit.MiddlewareConfig{})
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(rec, request("192.0.2.1:1"))
		m := polRe.FindStringSubmatch(rec.Header().Get("RateLimit-Policy"))
		require.NotNil(t, m, "policy header %q", rec.Header().Get("RateLimit-Policy"))
		q, _ := strconv.Atoi(m[1])
		w, _ := strconv.Atoi(m[2])
		win := time.Duration(w) * time.Second

		base := time.Now()
		var at []time.Duration
		for d := time.Duration(0); d < 4*win+4*lim.Period; {
			r, err := l.AllowAt("greedy", base.Add(d), 1)
			require.NoError(t, err)
			if r.Allowed {
				at = append(at, d)
				continue
			}
			d += r.RetryAfter
		}
		most := 0
		for i, j := 0, 0; i < len(at); i++ {
			for at[i]-at[j] >= win {
				j++
			}
			most = max(most, i-j+1)
		}
		assert.Equal(t, q, most, "%v: q=%d w=%d, the most admitted in any %v window", lim, q, w, win)
	}
}

// TestClientIPUnixSocket: behind a proxy that talks over a Unix socket
// (RemoteAddr "@"), the forwarding header is believed when "unix" is among
// the trusted proxies, and not otherwise.
func TestClientIPUnixSocket(t *testing.T) {
	t.Parallel()
	trusting, err := ratelimit.NewClientIP(ratelimit.IPConfig{TrustedProxies: []string{"unix", "10.0.0.0/8"}})
	require.NoError(t, err)
	plain, err := ratelimit.NewClientIP(ratelimit.IPConfig{TrustedProxies: []string{"10.0.0.0/8"}})
	require.NoError(t, err)
	tests := []struct {
		name      string
		c         *ratelimit.ClientIP
		req       *http.Request
		want      string
		wantValid bool
	}{
		{"unix trusted, XFF", trusting, request("@", "X-Forwarded-For", "198.51.100.4"), "198.51.100.4", true},
		{"unix trusted, chain through trusted proxy", trusting, request("@", "X-Forwarded-For", "198.51.100.4, 10.0.0.3"), "198.51.100.4", true},
		{"unix trusted, unnamed peer", trusting, request("", "X-Forwarded-For", "198.51.100.4"), "198.51.100.4", true},
		{"unix trusted, no header", trusting, request("@"), "@", false},
		{"unix not trusted", plain, request("@", "X-Forwarded-For", "198.51.100.4"), "@", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.c.Key(tt.req), tt.name)
		assert.Equal(t, tt.wantValid, tt.c.Addr(tt.req).IsValid(), tt.name)
	}
}

// TestRedisClusterDeadMaster: on a private three-master cluster with one
// master killed (cluster-require-full-coverage no), keys owned by the live
// masters are still decided on Redis, exactly, with no error, even for the
// fail-closed Auth tier and even after the dead master's keys have failed
// often enough to open a breaker; the dead master's keys fail closed.
func TestRedisClusterDeadMaster(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	c := cl.PartialOutageClient()
	ctx := context.Background()
	tiers := ratelimit.Tiers()
	const prefix = "rl:"
	g, err := ratelimit.NewGroup(ratelimit.Config{Redis: c, KeyPrefix: prefix, RedisTimeout: time.Second, Logger: quiet()})
	require.NoError(t, err)
	l, err := g.Limiter(tiers.Global, tiers.Auth)
	require.NoError(t, err)

	ipOf := map[string]string{} // master address → a client IP whose keys it owns
	for i := 0; len(ipOf) < 3 && i < 1000; i++ {
		ip := fmt.Sprintf("198.51.100.%d", i%250)
		if i >= 250 {
			ip = fmt.Sprintf("203.0.113.%d", i%250)
		}
		n, err := c.MasterForKey(ctx, prefix+"{"+ip+"}:auth")
		require.NoError(t, err)
		if _, ok := ipOf[n.Options().Addr]; !ok {
			ipOf[n.Options().Addr] = ip
		}
	}
	require.Len(t, ipOf, 3)
	dead := cl.Servers[0]
	dead.Kill()
	for range 10 {
		r, err := l.Allow(ctx, ipOf[dead.Addr])
		require.ErrorIs(t, err, ratelimit.ErrUnavailable, "dead master's key fails closed (Auth)")
		require.False(t, r.Allowed)
	}
	for addr, ip := range ipOf {
		if addr == dead.Addr {
			continue
		}
		allowed := 0
		for i := range 7 {
			r, err := l.Allow(ctx, ip)
			require.NoError(t, err, "live master %s, login %d", addr, i)
			if r.Allowed {
				allowed++
			}
		}
		assert.Equal(t, 5, allowed, "Auth 5 per 15 min on live master %s, decided on Redis", addr)
	}
}

// TestLocalChainConcurrent: 400 goroutines through two chains that share
// a tier (in opposite orders, so a lock-order bug would deadlock) on one
// key: the tight tier admits exactly its quota, and the shared wide tier
// counted only the admitted requests, never a denied one.
func TestLocalChainConcurrent(t *testing.T) {
	t.Parallel()
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	wide := ratelimit.Tier{Name: "wide", Limit: ratelimit.PerHour(1000)}
	tight := ratelimit.Tier{Name: "tight", Limit: ratelimit.PerHour(25)}
	other := ratelimit.Tier{Name: "other", Limit: ratelimit.PerHour(25)}
	ab, err := g.Limiter(wide, tight)
	require.NoError(t, err)
	ba, err := g.Limiter(other, wide)
	require.NoError(t, err)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 400 {
		l := ab
		if i%2 == 1 {
			l = ba
		}
		wg.Go(func() {
			r, err := l.Allow(context.Background(), "k")
			assert.NoError(t, err)
			if r.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(50), allowed.Load(), "25 through each chain's tight tier")
	w, err := g.Limiter(wide)
	require.NoError(t, err)
	r, err := w.Allow(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, 1000-50-1, r.Remaining, "the shared wide tier counted the 50 admitted (and this one) only")
}
