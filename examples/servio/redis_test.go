package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedisOutage kills a private Redis under a running instance: reads
// and writes keep working (L1 and the database, behind the cache's
// breaker), health reports Redis failing but the service up, and the
// fail-closed Auth tier answers 503 rather than letting logins through
// unlimited.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	rs := testenv.StartRedis(t)
	cfg := testConfig(t, "sqlite")
	cfg.RedisURL = rs.URL()
	// Every call to the dead Redis waits out go-redis's dial and command
	// retries up to this deadline until the breakers open: shorter than
	// the other tests' 5 s keeps the test quick, and still ten times the
	// 50 ms default so the login before the outage cannot time out.
	opts := testAppOptions
	opts.redisTimeout = 500 * time.Millisecond
	a := startAppWith(t, cfg, opts).admin()
	a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, nil)
	a.doJSON("POST", "/auth/login", `{"email":"staff@servio.dev","password":"servio-demo"}`, http.StatusOK, nil)

	rs.Kill()
	var menu menuResponse
	a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, &menu)
	a.doJSON("PATCH", "/menu-items/2", `{"price_cents":999}`, http.StatusOK, nil)
	a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, &menu)
	assert.Equal(t, int64(999), menu.Items[0].PriceCents, "a write still invalidates the local L1")
	a.doJSON("GET", "/orders/3", "", http.StatusOK, nil)
	a.doJSON("POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":5,"quantity":1}]}`, http.StatusCreated, nil)

	code, _ := a.do("POST", "/auth/login", `{"email":"staff@servio.dev","password":"servio-demo"}`)
	assert.Equal(t, http.StatusServiceUnavailable, code, "Auth fails closed while Redis is down")

	code, body := a.do("GET", "/health/detailed", "")
	assert.Equal(t, http.StatusOK, code, "Redis is not critical: %s", body)
	var h struct {
		Status string
		Checks map[string][]struct{ Status string }
	}
	require.NoError(t, json.Unmarshal(body, &h))
	assert.Equal(t, "warn", h.Status)
	redis := 0
	for name, results := range h.Checks {
		if name == "redis" || strings.HasPrefix(name, "redis:") {
			redis++
			for _, r := range results {
				assert.Equal(t, "fail", r.Status, "%s: %s", name, body)
			}
		}
	}
	assert.Positive(t, redis, "/health/detailed must report Redis: %s", body)
}

// TestRedisCluster runs an instance on a 3-master Redis Cluster given as
// REDIS_URL's comma-separated node list: cache and limits work on it.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	rc := testenv.RedisCluster(t)
	cfg := testConfig(t, "sqlite")
	cfg.RedisURL = rc.Addrs[0] + "," + rc.Addrs[1] + "," + rc.Addrs[2]
	a := startApp(t, cfg).admin()
	a.queries.Store(0)
	for range 3 {
		a.doJSON("GET", "/restaurants/3/menu", "", http.StatusOK, nil)
	}
	assert.Equal(t, int64(1), a.queries.Load(), "later reads are cache hits")
	a.doJSON("PATCH", "/menu-items/11", `{"is_available":false}`, http.StatusOK, nil)
	var menu menuResponse
	a.doJSON("GET", "/restaurants/3/menu", "", http.StatusOK, &menu)
	assert.Len(t, menu.Items, 3, "the write invalidated the menu on the cluster")
	for range 5 {
		a.doJSON("POST", "/auth/login", `{"email":"staff@servio.dev","password":"x"}`, http.StatusUnauthorized, nil)
	}
	a.doJSON("POST", "/auth/login", `{"email":"staff@servio.dev","password":"x"}`, http.StatusTooManyRequests, nil)
}
