package faults

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hammer sends n requests per instance from g goroutines each and counts
// the requests admitted: answered neither 429 (over the limit) nor 503 (the
// fail-closed Auth tier when Redis could not decide in time).
func hammer(t *testing.T, ins []*instance, g, n int, method, path string, body any, header ...string) (admitted int64, statuses map[int]int) {
	t.Helper()
	var adm atomic.Int64
	var mu sync.Mutex
	statuses = map[int]int{}
	var wg sync.WaitGroup
	for _, in := range ins {
		for range g {
			wg.Go(func() {
				for range n {
					st, _ := in.status(method, path, body, header...)
					mu.Lock()
					statuses[st]++
					mu.Unlock()
					if st != 429 && st != 503 {
						adm.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	return adm.Load(), statuses
}

// exactEnv gives the rate limiter a Redis deadline that a starved CI
// machine meets: exactness is about Redis deciding, and with the default
// 50 ms a stalled round trip would (correctly) fall back to the failure
// policy instead.
const exactEnv = "REDIS_TIMEOUT=2s"

func login() map[string]string {
	return map[string]string{"email": "manager@servio.dev", "password": "not-the-password"}
}

// TestDistributedAuthLimitExact: 3 instances sharing Redis, 50 goroutines
// each, logging in as one client: exactly 5 attempts are admitted in the
// Auth tier's 15-minute window, whatever instance they reach.
func TestDistributedAuthLimitExact(t *testing.T) {
	t.Parallel()
	rs := testenv.StartRedis(t)
	ins := []*instance{
		startServio(t, "REDIS_URL="+rs.URL(), exactEnv),
		startServio(t, "REDIS_URL="+rs.URL(), exactEnv),
		startServio(t, "REDIS_URL="+rs.URL(), exactEnv),
	}
	admitted, statuses := hammer(t, ins, 50, 2, "POST", "/auth/login", login(), "X-Forwarded-For", "198.19.0.1")
	assert.Equal(t, int64(5), admitted, "Auth tier is 5 per 15 min per client across instances; statuses %v", statuses)
	assert.Zero(t, statuses[500]+statuses[502]+statuses[503], "no request may fail; statuses %v", statuses)
}

// TestDistributedAPILimitExact: the API tier (60 a minute: a burst of 60,
// then one a second) admits exactly what its GCRA allows per client
// across 3 instances — the burst, plus one for each whole second the
// hammering lasted (0 on a quiet machine, where it takes well under a
// second); a client named by X-Forwarded-For through a trusted proxy
// (loopback here) is limited on its own.
func TestDistributedAPILimitExact(t *testing.T) {
	t.Parallel()
	rs := testenv.StartRedis(t)
	env := "REDIS_URL=" + rs.URL()
	ins := []*instance{startServio(t, env, exactEnv), startServio(t, env, exactEnv), startServio(t, env, exactEnv)}
	start := time.Now()
	admitted, statuses := hammer(t, ins, 10, 4, "GET", "/restaurants/1/menu", nil, "X-Forwarded-For", "198.18.7.7")
	took := time.Since(start) // bounds the time between any two decisions
	most := int64(60 + took/time.Second)
	t.Logf("120 requests in %v: %d admitted (burst 60, at most %d)", took, admitted, most)
	assert.GreaterOrEqual(t, admitted, int64(60), "the burst of 60 is admitted; statuses %v", statuses)
	assert.LessOrEqual(t, admitted, most, "API tier is 60/min per client across instances: at most 60 + one a second over %v; statuses %v", took, statuses)
	// another client behind the same proxy has its own budget
	st, body := ins[0].status("GET", "/restaurants/1/menu", nil, "X-Forwarded-For", "198.18.7.8")
	assert.Equal(t, 200, st, "a different client must not share the first one's limit: %s", body)
}

// TestSpoofedForwardedForIgnored: without trusted proxies, X-Forwarded-For
// is the client's own claim and must not change its rate-limit key.
func TestSpoofedForwardedForIgnored(t *testing.T) {
	t.Parallel()
	rs := testenv.StartRedis(t)
	a := startServio(t, "REDIS_URL="+rs.URL(), "TRUSTED_PROXIES=", exactEnv)
	var admitted int
	for i := range 20 {
		st, _ := a.status("POST", "/auth/login", login(), "X-Forwarded-For", fmt.Sprintf("198.18.0.%d", i+1))
		if st != 429 {
			admitted++
		}
	}
	assert.Equal(t, 5, admitted, "forged X-Forwarded-For from an untrusted peer must not buy more attempts")
}

// TestRedisClusterService: the service on a 3-master Redis Cluster keeps
// its cache, its cross-instance invalidation and its exact rate limits.
func TestRedisClusterService(t *testing.T) {
	t.Parallel()
	rc := testenv.RedisCluster(t)
	url := strings.Join(rc.Addrs, ",")
	dsn := testenv.PostgresDSN(t)
	a := startServio(t, "REDIS_URL="+url, "DATABASE_URL="+dsn, exactEnv)
	b := startServio(t, "REDIS_URL="+url, "DATABASE_URL="+dsn, exactEnv)
	item := firstItem(t, a, 2)
	_ = priceOf(t, b, 2, item) // fill B's cache
	setPrice(t, a, item, 4242)
	awaitPrice(t, b, 2, item, 4242, 2*time.Second, "cross-instance invalidation on a cluster")

	admitted, statuses := hammer(t, []*instance{a, b}, 10, 2, "POST", "/auth/login", login(), "X-Forwarded-For", "198.19.0.2")
	assert.Equal(t, int64(5), admitted, "Auth tier on a cluster; statuses %v", statuses)
	st, body := a.status("GET", "/health/ready", nil)
	require.Equal(t, 200, st, "%s", body)
}
