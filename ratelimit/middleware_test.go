package ratelimit_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

// groupMiddleware is Middleware on a limiter of g for the tiers.
func groupMiddleware(t *testing.T, g *ratelimit.Group, cfg ratelimit.MiddlewareConfig, tiers ...ratelimit.Tier) func(http.Handler) http.Handler {
	t.Helper()
	l, err := g.Limiter(tiers...)
	require.NoError(t, err)
	mw, err := ratelimit.Middleware(l, cfg)
	require.NoError(t, err)
	return mw
}

// counts sums a counter's points by their attribute values ("v1/v2/"),
// leaving out the attributes named in drop.
func counts(t *testing.T, rd *sdkmetric.ManualReader, name string, drop ...string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, rd.Collect(context.Background(), &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				k := ""
				for _, kv := range dp.Attributes.ToSlice() {
					if !slices.Contains(drop, string(kv.Key)) {
						k += kv.Value.String() + "/"
					}
				}
				out[k] += dp.Value
			}
		}
	}
	return out
}

// nonzero is m without its zero entries (the series every counter starts
// with).
func nonzero(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// Structured-field items of the draft: "name";q=N;w=N and "name";r=N;t=N.
var (
	policyRe = regexp.MustCompile(`^"[a-z]+";q=\d+;w=\d+(, "[a-z]+";q=\d+;w=\d+)*$`)
	limitRe  = regexp.MustCompile(`^"[a-z]+";r=\d+;t=\d+$`)
)

func TestMiddlewareHeadersAndProblem(t *testing.T) {
	t.Parallel()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	g, err := ratelimit.NewGroup(ratelimit.Config{MeterProvider: mp})
	require.NoError(t, err)
	tiers := ratelimit.Tiers()
	mw := groupMiddleware(t, g, ratelimit.MiddlewareConfig{LegacyHeaders: true, RetryAfterJitter: -1, MeterProvider: mp}, tiers.Global, tiers.Auth)
	h := mw(okHandler)

	for i := range 5 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request("192.0.2.1:1"))
		require.Equal(t, http.StatusNoContent, w.Code, "request %d", i)
		assert.Equal(t, `"global";q=199;w=900, "auth";q=9;w=900`, w.Header().Get("RateLimit-Policy"))
		assert.Regexp(t, policyRe, w.Header().Get("RateLimit-Policy"))
		assert.Equal(t, `"auth";r=`+strconv.Itoa(4-i)+`;t=`+strconv.Itoa(180*(i+1)), w.Header().Get("RateLimit"))
		assert.Regexp(t, limitRe, w.Header().Get("RateLimit"))
		assert.Equal(t, "5", w.Header().Get("X-RateLimit-Limit"))
		assert.Equal(t, strconv.Itoa(4-i), w.Header().Get("X-RateLimit-Remaining"))
	}

	w := httptest.NewRecorder()
	h.ServeHTTP(w, request("192.0.2.1:1"))
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	assert.Equal(t, "180", w.Header().Get("Retry-After"), "one emission interval of 15 min / 5, no jitter")
	assert.Equal(t, `"auth";r=0;t=900`, w.Header().Get("RateLimit"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
	assert.Equal(t, map[string]any{
		"type":              "https://iana.org/assignments/http-problem-types#quota-exceeded",
		"title":             "Request cannot be satisfied as assigned quota has been exceeded",
		"status":            float64(429),
		"detail":            "Too many requests for policy auth; retry after 180 s.",
		"violated-policies": []any{"auth"},
		"retry-after":       float64(180),
	}, body)

	w = httptest.NewRecorder()
	h.ServeHTTP(w, request("192.0.2.2:1"))
	assert.Equal(t, http.StatusNoContent, w.Code, "another client is not limited")

	assert.Equal(t, map[string]int64{"allowed/auth/": 6, "denied/auth/": 1}, nonzero(counts(t, rd, "perfkit.ratelimit.decisions")))
}

func TestMiddlewareJitter(t *testing.T) {
	t.Parallel()
	// A limiter that always denies with RetryAfter 1 s: a real one's
	// RetryAfter shrinks as time passes, and a stalled test would see 0.
	l := denyAll{Tier: ratelimit.Tier{Name: "one", Limit: ratelimit.PerSecond(1)}, retry: time.Second}
	mw, err := ratelimit.Middleware(l, ratelimit.MiddlewareConfig{RetryAfterJitter: 3 * time.Second})
	require.NoError(t, err)
	h := mw(okHandler)
	seen := map[string]bool{}
	for range 200 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request("192.0.2.1:1"))
		require.Equal(t, http.StatusTooManyRequests, w.Code)
		seen[w.Header().Get("Retry-After")] = true
	}
	for s := range seen {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		assert.True(t, n >= 1 && n <= 4, "Retry-After %d within 1 s + 3 s jitter", n)
	}
	assert.Greater(t, len(seen), 1, "jitter spreads Retry-After: %v", seen)
}

func TestMiddlewareShadow(t *testing.T) {
	t.Parallel()
	rd := sdkmetric.NewManualReader()
	l, err := ratelimit.NewInMemory(ratelimit.Tier{Name: "api", Limit: ratelimit.PerHour(2)}, 0)
	require.NoError(t, err)
	mw, err := ratelimit.Middleware(l, ratelimit.MiddlewareConfig{Shadow: true,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd)), Logger: quiet()})
	require.NoError(t, err)
	h := mw(okHandler)
	for range 5 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request("192.0.2.1:1"))
		assert.Equal(t, http.StatusNoContent, w.Code)
		assert.Empty(t, w.Header().Get("RateLimit"), "shadow mode writes no headers")
	}
	assert.Equal(t, map[string]int64{"allowed/api/": 2, "shadow_denied/api/": 3}, nonzero(counts(t, rd, "perfkit.ratelimit.decisions")))
}

func TestMiddlewareKeys(t *testing.T) {
	t.Parallel()
	l, err := ratelimit.NewInMemory(ratelimit.Tier{Name: "api", Limit: ratelimit.PerHour(1)}, 0)
	require.NoError(t, err)
	key, err := ratelimit.ClientIPKey(ratelimit.IPConfig{TrustedProxies: []string{"10.0.0.0/8"}})
	require.NoError(t, err)
	mw, err := ratelimit.Middleware(l, ratelimit.MiddlewareConfig{Key: key})
	require.NoError(t, err)
	h := mw(okHandler)
	tests := []struct {
		req  *http.Request
		code int
	}{
		{request("10.0.0.1:1", "X-Forwarded-For", "198.51.100.1"), http.StatusNoContent},
		{request("10.0.0.2:1", "X-Forwarded-For", "198.51.100.1"), http.StatusTooManyRequests},
		{request("10.0.0.2:1", "X-Forwarded-For", "198.51.100.2"), http.StatusNoContent},
		{request("203.0.113.5:1", "X-Forwarded-For", "198.51.100.3"), http.StatusNoContent},
		{request("203.0.113.5:1", "X-Forwarded-For", "198.51.100.4"), http.StatusTooManyRequests},
	}
	for i, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, tt.req)
		assert.Equal(t, tt.code, w.Code, "request %d", i)
	}
	// an empty key is not limited
	mw, err = ratelimit.Middleware(l, ratelimit.MiddlewareConfig{Key: ratelimit.HeaderKey("X-Api-Key")})
	require.NoError(t, err)
	for range 3 {
		w := httptest.NewRecorder()
		mw(okHandler).ServeHTTP(w, request("192.0.2.1:1"))
		assert.Equal(t, http.StatusNoContent, w.Code)
	}
}

// TestMiddlewareRedisDown: with Redis gone, the fail-open API tier keeps
// serving from the local fallback and the fail-closed Auth tier answers 503
// problem+json; fallbacks are counted.
func TestMiddlewareRedisDown(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	g, err := ratelimit.NewGroup(ratelimit.Config{Redis: c, Logger: quiet(), MeterProvider: mp})
	require.NoError(t, err)
	tiers := ratelimit.Tiers()
	mcfg := ratelimit.MiddlewareConfig{MeterProvider: mp, Logger: quiet()}
	api := groupMiddleware(t, g, mcfg, tiers.API)
	auth := groupMiddleware(t, g, mcfg, tiers.Auth)
	type denial struct {
		status int
		retry  int64
		policy string
	}
	var denied []denial
	mcfg.Denied = func(w http.ResponseWriter, _ *http.Request, res ratelimit.Result, status int, retry int64) {
		denied = append(denied, denial{status, retry, res.Tier})
		w.WriteHeader(status)
	}
	custom := groupMiddleware(t, g, mcfg, tiers.Auth)
	srv.Kill()
	w := httptest.NewRecorder()
	custom(okHandler).ServeHTTP(w, request("192.0.2.2:1"))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Len(t, denied, 1)
	assert.Equal(t, http.StatusServiceUnavailable, denied[0].status, "Denied must be told the denial is a 503, not a 429")
	assert.Equal(t, w.Header().Get("Retry-After"), strconv.FormatInt(denied[0].retry, 10))
	for range 4 {
		w := httptest.NewRecorder()
		api(okHandler).ServeHTTP(w, request("192.0.2.1:1"))
		assert.Equal(t, http.StatusNoContent, w.Code)
		w = httptest.NewRecorder()
		auth(okHandler).ServeHTTP(w, request("192.0.2.1:1"))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
		assert.NotEmpty(t, w.Header().Get("Retry-After"))
		assert.Contains(t, w.Body.String(), "temporary-reduced-capacity")
		assert.Contains(t, w.Body.String(), "temporarily unavailable; retry after")
	}
	assert.Equal(t, map[string]int64{"fail_open/api/": 4, "fail_closed/auth/": 5}, counts(t, rd, "perfkit.ratelimit.fallbacks", "reason"))
	assert.Equal(t, map[string]int64{"allowed/api/": 4, "unavailable/auth/": 5}, nonzero(counts(t, rd, "perfkit.ratelimit.decisions")))
}

func TestMiddlewareConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := ratelimit.Middleware(nil, ratelimit.MiddlewareConfig{})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig)
	g, err := ratelimit.NewGroup(ratelimit.Config{})
	require.NoError(t, err)
	_, err = g.Limiter(ratelimit.Tier{Name: "x"})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidLimit)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig, "an invalid limit is an invalid config")
	_, err = g.Limiter(ratelimit.Tier{Name: "a b", Limit: ratelimit.PerSecond(1)})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig, "a tier name with a space")
	for _, cfg := range []ratelimit.Config{{RedisTimeout: -1}, {Instances: -1}, {MaxKeys: -1}, {BreakerConsecutiveFailures: -1}, {BreakerOpenTimeout: -1}} {
		_, err := ratelimit.NewGroup(cfg)
		assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig, "%+v", cfg)
	}
	_, err = ratelimit.NewRedis(ratelimit.Config{})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig)
	_, err = ratelimit.Middleware(noTiers{}, ratelimit.MiddlewareConfig{})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig, "a limiter with no tiers")
	_, err = g.Limiter(ratelimit.Tier{Name: "x", Limit: ratelimit.PerHour(1).WithBurst(1 << 40)})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidLimit, "a burst whose tolerance overflows a Duration")
}

// noTiers is a TieredLimiter that states no tiers.
type noTiers struct{ denyAll }

func (noTiers) Tiers() []ratelimit.Tier { return nil }

// denyAll is a TieredLimiter of one tier that denies every event with a
// fixed RetryAfter.
type denyAll struct {
	ratelimit.Tier
	retry time.Duration
}

func (d denyAll) Tiers() []ratelimit.Tier { return []ratelimit.Tier{d.Tier} }

func (d denyAll) Allow(ctx context.Context, key string) (ratelimit.Result, error) {
	return d.AllowN(ctx, key, 1)
}

func (d denyAll) AllowN(context.Context, string, int) (ratelimit.Result, error) {
	return ratelimit.Result{Limit: d.Limit.Rate, ResetAfter: d.retry, RetryAfter: d.retry, Tier: d.Name}, nil
}

func (d denyAll) Reset(context.Context, string) error       { return nil }
func (d denyAll) Refund(context.Context, string, int) error { return nil }

func TestMiddlewareDeniedHook(t *testing.T) {
	t.Parallel()
	g, err := ratelimit.NewGroup(ratelimit.Config{Logger: quiet()})
	require.NoError(t, err)
	var statuses []int
	mw := groupMiddleware(t, g, ratelimit.MiddlewareConfig{RetryAfterJitter: -1, Logger: quiet(), Denied: func(w http.ResponseWriter, _ *http.Request, res ratelimit.Result, status int, retry int64) {
		statuses = append(statuses, status)
		assert.Equal(t, "auth", res.Tier)
		assert.Equal(t, int64(180), retry, "one emission interval of 15 min / 5")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":"slow down"}`))
	}}, ratelimit.Tiers().Auth)
	h := mw(okHandler)
	var last *httptest.ResponseRecorder
	for range 6 {
		last = httptest.NewRecorder()
		h.ServeHTTP(last, request("192.0.2.9:1"))
	}
	assert.Equal(t, []int{http.StatusTooManyRequests}, statuses, "only the 6th request is denied, as a 429")
	assert.Equal(t, `{"error":"slow down"}`, last.Body.String())
	assert.Equal(t, "180", last.Header().Get("Retry-After"), "headers are set before Denied runs")
}

// TestMiddlewareDecisionsStartAtZero: before any request, every outcome the
// middleware can count exists at 0, so Prometheus's rate() and increase()
// see the first decision (a series born at 1 shows no rise).
func TestMiddlewareDecisionsStartAtZero(t *testing.T) {
	t.Parallel()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	g, err := ratelimit.NewGroup(ratelimit.Config{MeterProvider: mp})
	require.NoError(t, err)
	tiers := ratelimit.Tiers()
	groupMiddleware(t, g, ratelimit.MiddlewareConfig{MeterProvider: mp}, tiers.Global, tiers.Auth)
	assert.Equal(t, map[string]int64{"allowed/global/": 0, "denied/global/": 0,
		"allowed/auth/": 0, "denied/auth/": 0, "unavailable/auth/": 0},
		counts(t, rd, "perfkit.ratelimit.decisions"), "the auth tier fails closed: it can also be unavailable")

	rd2 := sdkmetric.NewManualReader()
	l, err := ratelimit.NewInMemory(ratelimit.Tier{Name: "api", Limit: ratelimit.PerHour(2)}, 0)
	require.NoError(t, err)
	_, err = ratelimit.Middleware(l, ratelimit.MiddlewareConfig{Shadow: true,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd2))})
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"allowed/api/": 0, "shadow_denied/api/": 0}, counts(t, rd2, "perfkit.ratelimit.decisions"))
}
