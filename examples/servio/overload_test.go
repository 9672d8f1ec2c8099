package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/resilience"
)

func TestRoutePriority(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         resilience.Priority
	}{
		{"GET", "/health/ready", resilience.PriorityCritical},
		{"GET", "/metrics", resilience.PriorityCritical},
		{"POST", "/orders", resilience.PriorityHigh},
		{"PATCH", "/orders/{id}", resilience.PriorityHigh},
		{"POST", "/auth/login", resilience.PriorityHigh},
		{"GET", "/restaurants/{id}/menu", resilience.PriorityNormal},
		{"GET", "/orders/{id}", resilience.PriorityNormal},
		{"PATCH", "/menu-items/{id}", resilience.PriorityNormal},
		{"POST", "/assistant/query", resilience.PriorityLow},
		{"POST", "/uploads", resilience.PriorityLow},
	} {
		assert.Equal(t, c.want, routePriority(c.method, c.path), "%s %s", c.method, c.path)
	}
}

// TestOverloadSheds fills the adaptive limiter the way a burst would: a
// normal-priority read is then answered 503 with Retry-After and servio's
// JSON error body, while a login (high) and the health probes still get
// through; once the burst ends reads are served again.
func TestOverloadSheds(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite")
	require.NotNil(t, a.overload, "the adaptive limit is on by default")
	ctx := context.Background()
	var burst []resilience.Permit
	assert.Equal(t, 100, a.overload.Limit(), "starts at its floor, -adaptive-min-limit")
	for a.overload.InFlight() < a.overload.Limit()*3/4 { // all the room of normal calls
		pm, err := a.overload.Acquire(ctx, resilience.PriorityNormal)
		require.NoError(t, err)
		burst = append(burst, pm)
	}

	resp, err := http.Get(a.URL + "/restaurants/1/menu")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.True(t, strings.HasPrefix(resp.Header.Get("Server-Timing"), "shed;dur="), "the refusal says how long it took: %q", resp.Header.Get("Server-Timing"))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var e struct {
		Error      string `json:"error"`
		RetryAfter int    `json:"retry_after"`
	}
	require.NoError(t, json.Unmarshal(body, &e), "%s", body)
	assert.Equal(t, "server overloaded (normal priority); retry in 1 s", e.Error)
	assert.Equal(t, 1, e.RetryAfter)

	status, _ := a.do("POST", "/auth/login", `{"email":"nobody@servio.dev","password":"wrong"}`)
	assert.NotEqual(t, http.StatusServiceUnavailable, status, "a login (high priority) is admitted")
	status, _ = a.do("GET", "/health/live", "")
	assert.Equal(t, http.StatusOK, status, "health probes are never shed")

	for _, pm := range burst {
		pm.Release(nil)
	}
	status, _ = a.do("GET", "/restaurants/1/menu", "")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, 0, a.overload.InFlight())
}

func TestOverloadOff(t *testing.T) {
	getenv := func(k string) string {
		if k == "ADAPTIVE_LIMIT" {
			return "off"
		}
		return ""
	}
	cfg, err := parseConfig("servio", nil, getenv, io.Discard, nil)
	require.NoError(t, err)
	assert.False(t, cfg.AdaptiveLimit, "ADAPTIVE_LIMIT=off")
	cfg, err = parseConfig("servio", nil, func(string) string { return "" }, io.Discard, nil)
	require.NoError(t, err)
	assert.True(t, cfg.AdaptiveLimit, "on by default")
	assert.Equal(t, time.Duration(0), cfg.AdaptiveDelayTarget, "default delay target: off until tuned")
	cfg, err = parseConfig("servio", nil, func(k string) string {
		if k == "ADAPTIVE_DELAY_TARGET" {
			return "5ms"
		}
		return ""
	}, io.Discard, nil)
	require.NoError(t, err)
	assert.Equal(t, 5*time.Millisecond, cfg.AdaptiveDelayTarget, "ADAPTIVE_DELAY_TARGET=5ms")
	_, err = parseConfig("servio", []string{"-adaptive-delay-target", "-1ms"}, func(string) string { return "" }, io.Discard, nil)
	assert.Error(t, err, "a negative delay target is refused")
	assert.Empty(t, cfg.AdaptiveQueueHeader, "no queue header by default: the run-queue delay")
	cfg, err = parseConfig("servio", nil, func(k string) string {
		return map[string]string{"ADAPTIVE_QUEUE_HEADER": "X-Request-Start", "ADAPTIVE_DELAY_TARGET": "1ms", "TRUSTED_PROXIES": "10.0.0.0/8"}[k]
	}, io.Discard, nil)
	require.NoError(t, err)
	assert.Equal(t, "X-Request-Start", cfg.AdaptiveQueueHeader, "ADAPTIVE_QUEUE_HEADER")
	ok := []string{"-adaptive-delay-target", "1ms", "-trusted-proxies", "10.0.0.0/8"}
	_, err = parseConfig("servio", append(ok, "-adaptive-queue-header", "X-Request-Start"), func(string) string { return "" }, io.Discard, nil)
	require.NoError(t, err)
	for _, bad := range []string{"X Request", "X-Start:", "Ünicode"} {
		_, err = parseConfig("servio", append(ok, "-adaptive-queue-header", bad), func(string) string { return "" }, io.Discard, nil)
		assert.Error(t, err, "%q is no header name", bad)
	}
	_, err = parseConfig("servio", []string{"-adaptive-queue-header", "X-Request-Start", "-trusted-proxies", "10.0.0.0/8"}, func(string) string { return "" }, io.Discard, nil)
	assert.ErrorContains(t, err, "delay target", "a queue header with no target would do nothing")
	_, err = parseConfig("servio", []string{"-adaptive-queue-header", "X-Request-Start", "-adaptive-delay-target", "1ms"}, func(string) string { return "" }, io.Discard, nil)
	assert.ErrorContains(t, err, "trusted-proxies", "stamps believed from nobody would do nothing")
	assert.Zero(t, cfg.AdaptiveMaxWait, "no max wait by default")
	cfg, err = parseConfig("servio", append(ok, "-adaptive-queue-header", "X-Request-Start"), func(k string) string {
		return map[string]string{"ADAPTIVE_MAX_WAIT": "5ms"}[k]
	}, io.Discard, nil)
	require.NoError(t, err)
	assert.Equal(t, 5*time.Millisecond, cfg.AdaptiveMaxWait, "ADAPTIVE_MAX_WAIT=5ms")
	_, err = parseConfig("servio", append(ok, "-adaptive-max-wait", "5ms"), func(string) string { return "" }, io.Discard, nil)
	assert.ErrorContains(t, err, "adaptive-queue-header", "a max wait with no stamp to count from would do nothing")
	_, err = parseConfig("servio", append(ok, "-adaptive-queue-header", "X-Request-Start", "-adaptive-max-wait", "-1ms"), func(string) string { return "" }, io.Discard, nil)
	assert.Error(t, err, "a negative max wait is refused")

	cfg = testConfig(t, "sqlite")
	cfg.Baseline = true
	assert.Nil(t, startApp(t, cfg).overload, "-baseline keeps the adaptive limit off")
}

// TestOverloadShedsOnRunQueueDelay: with the run-queue delay far above
// -adaptive-delay-target the limiter sheds by priority although nothing
// is in flight — the assistant (low) first, then reads (normal) — while
// health probes still pass; once the delay is gone, reads are served
// again.
func TestOverloadShedsOnRunQueueDelay(t *testing.T) {
	t.Parallel()
	var delay atomic.Int64
	opts := testAppOptions
	opts.overloadDelay = func() time.Duration { return time.Duration(delay.Load()) }
	cfg := testConfig(t, "sqlite")
	cfg.AdaptiveDelayTarget = 2 * time.Millisecond
	a := startAppWith(t, cfg, opts)

	delay.Store(int64(time.Second))
	require.Eventually(t, func() bool {
		status, _ := a.do("GET", "/restaurants/1/menu", "")
		return status == http.StatusServiceUnavailable
	}, 10*time.Second, 15*time.Millisecond, "reads are shed once the level passes 1")
	assert.GreaterOrEqual(t, a.overload.ShedLevel(), 1.0, "normal is shed only after all of low")
	assert.Zero(t, a.overload.InFlight(), "nothing in flight: the delay alone sheds")
	status, _ := a.do("GET", "/health/live", "")
	assert.Equal(t, http.StatusOK, status, "health probes are never shed")

	delay.Store(0)
	require.Eventually(t, func() bool {
		status, _ := a.do("GET", "/restaurants/1/menu", "")
		return status == http.StatusOK && a.overload.ShedLevel() == 0
	}, 10*time.Second, 15*time.Millisecond, "with no delay the level falls back to 0")
}

// TestOverloadShedsOnQueueHeader: with -adaptive-queue-header the delay
// is the wait since the stamp a front proxy puts in that header. Requests
// stamped a second ago — a standing queue — are shed by priority (reads
// once the level passes 1) while probes pass; with fresh stamps the level
// falls back and reads are served. Stamps are believed only from the
// trusted proxies (the peer address), and not when older than a minute;
// the run-queue delay is no longer read (this test's process is idle).
func TestOverloadShedsOnQueueHeader(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "sqlite")
	// A target far above what a fresh stamp waits on a busy CI machine
	// (a few ms), far below the 1 s stamps that make the queue.
	cfg.AdaptiveDelayTarget = 50 * time.Millisecond
	cfg.AdaptiveQueueHeader = "X-Request-Start"
	cfg.TrustedProxies = []string{"192.0.2.0/24"} // not this test's loopback client
	untrusted := startApp(t, cfg)
	for range 30 {
		require.Equal(t, http.StatusOK, stampedGet(t, untrusted.URL+"/restaurants/1/menu", time.Second),
			"a stamp from a peer that is no trusted proxy is not believed")
		time.Sleep(11 * time.Millisecond)
	}
	assert.Zero(t, untrusted.overload.ShedLevel())

	cfg.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
	a := startApp(t, cfg)
	get := func(path string, ago time.Duration) int { return stampedGet(t, a.URL+path, ago) }

	for range 30 {
		require.Equal(t, http.StatusOK, get("/restaurants/1/menu", 2*time.Minute), "a stamp older than a minute is not a queue")
		time.Sleep(11 * time.Millisecond)
	}
	assert.Zero(t, a.overload.ShedLevel())

	require.Eventually(t, func() bool {
		return get("/restaurants/1/menu", time.Second) == http.StatusServiceUnavailable
	}, 10*time.Second, 15*time.Millisecond, "a queue of 1 s sheds reads once the level passes 1")
	assert.GreaterOrEqual(t, a.overload.ShedLevel(), 1.0, "normal is shed only after all of low")
	assert.Equal(t, http.StatusOK, get("/health/live", time.Second), "health probes are never shed")

	require.Eventually(t, func() bool {
		return get("/restaurants/1/menu", 0) == http.StatusOK && a.overload.ShedLevel() == 0
	}, 10*time.Second, 15*time.Millisecond, "no queue: the level falls back to 0")
}

// TestOverloadMaxWait: with -adaptive-max-wait, while the level is above
// 0 but below 1 (only low-priority requests shed by it), a read (normal:
// twice the max wait) that waited longer since its stamp is refused, and
// a read without a stamp is served. (Probes bypass the limiter.)
func TestOverloadMaxWait(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "sqlite")
	cfg.AdaptiveDelayTarget = 50 * time.Millisecond // far above a fresh stamp's wait on a busy machine
	cfg.AdaptiveQueueHeader = "X-Request-Start"
	cfg.AdaptiveMaxWait = 250 * time.Millisecond // reads: 500 ms
	cfg.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
	a := startApp(t, cfg)
	get := func(path string, ago time.Duration) int { return stampedGet(t, a.URL+path, ago) }
	// Reads stamped a second ago raise the level (0.1 a reading at most;
	// probes bypass the limiter, so they take no reading).
	require.Eventually(t, func() bool {
		get("/restaurants/1/menu", time.Second)
		return a.overload.ShedLevel() > 0
	}, 10*time.Second, 11*time.Millisecond, "a standing queue raises the level")
	require.Less(t, a.overload.ShedLevel(), 0.5)
	assert.Equal(t, http.StatusServiceUnavailable, get("/restaurants/1/menu", 2*time.Second), "a read that waited over twice the max wait is refused")
	assert.Less(t, a.overload.ShedLevel(), 1.0, "normal is not shed by the level: the age refused it")
	assert.Equal(t, http.StatusOK, get("/restaurants/1/menu", -1), "no stamp: not refused for its age")
	require.Eventually(t, func() bool {
		return get("/restaurants/1/menu", 0) == http.StatusOK && a.overload.ShedLevel() == 0
	}, 10*time.Second, 15*time.Millisecond, "fresh stamps: the level falls back to 0")
	// (At level 0 nothing is refused for its age — resilience's
	// TestAdaptiveMaxWait, with a fake clock: here an old stamp raises the
	// level in the very reading its own request takes.)
}

// stampedGet GETs url with an X-Request-Start stamp ago in the past (none
// when ago < 0) and returns the status.
func stampedGet(t *testing.T, url string, ago time.Duration) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if ago >= 0 {
		req.Header.Set("X-Request-Start", "t="+strconv.FormatInt(time.Now().Add(-ago).UnixMicro(), 10))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestOverloadNetworkFirst: servio's wiring of -adaptive-network-first 1
// (resilience's tests cover the handoff itself): one request runs at a
// time and eight queue; the next read is refused at once (503, servio's
// body), a probe still passes, and once the running request ends the
// queued ones are all served.
func TestOverloadNetworkFirst(t *testing.T) {
	t.Parallel()
	none := func(string) string { return "" }
	cfg, err := parseConfig("servio", nil, none, io.Discard, nil)
	require.NoError(t, err)
	assert.Zero(t, cfg.AdaptiveNetworkFirst, "off by default")
	cfg, err = parseConfig("servio", nil, func(k string) string {
		return map[string]string{"ADAPTIVE_NETWORK_FIRST": "2"}[k]
	}, io.Discard, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, cfg.AdaptiveNetworkFirst, "ADAPTIVE_NETWORK_FIRST=2")
	_, err = parseConfig("servio", []string{"-adaptive-network-first", "-1"}, none, io.Discard, nil)
	assert.Error(t, err, "a negative count is refused")

	cfg = testConfig(t, "sqlite")
	cfg.AdaptiveNetworkFirst = 1
	a := startApp(t, cfg)
	require.Equal(t, 1, a.overload.Limit(), "the limit is the count")
	held, err := a.overload.Acquire(context.Background(), resilience.PriorityNormal)
	require.NoError(t, err)
	statuses := make(chan int, 8)
	for range 8 {
		go func() {
			req, _ := http.NewRequest("GET", a.URL+"/restaurants/1/menu", nil)
			statuses <- statusOf(req)
		}()
	}
	require.Eventually(t, func() bool { return a.overload.Queued() == 8 }, 10*time.Second, time.Millisecond, "eight reads queue")
	status, body := a.do("GET", "/restaurants/1/menu", "")
	assert.Equal(t, http.StatusServiceUnavailable, status, "the ninth is refused at once: %s", body)
	assert.Contains(t, string(body), "server overloaded (normal priority)")
	status, _ = a.do("GET", "/health/ready", "")
	assert.Equal(t, http.StatusOK, status, "probes are never queued or shed")
	held.Release(nil)
	for range 8 {
		select {
		case s := <-statuses:
			assert.Equal(t, http.StatusOK, s, "a queued read is served")
		case <-time.After(30 * time.Second):
			t.Fatal("a queued read was never served")
		}
	}
	assert.Equal(t, 0, a.overload.InFlight())
	assert.Equal(t, 0, a.overload.Queued())
}

// TestOverloadedBody: the hand-appended refusal is byte for byte what
// encoding/json made of it (and so valid JSON) for every priority and
// retry delay, with Retry-After in whole seconds, at least 1.
func TestOverloadedBody(t *testing.T) {
	t.Parallel()
	prios := []resilience.Priority{resilience.PriorityCritical, resilience.PriorityHigh, resilience.PriorityNormal, resilience.PriorityLow, resilience.Priority(99)}
	w := httptest.NewRecorder()
	overloaded(w, errors.New("not an OverloadError"))
	assert.Equal(t, `{"error":"server overloaded; retry in 1 s","retry_after":1}`+"\n", w.Body.String())
	for _, p := range prios {
		for _, d := range []time.Duration{0, time.Millisecond, 1500 * time.Millisecond, 90 * time.Second} {
			w := httptest.NewRecorder()
			overloaded(w, &resilience.OverloadError{Priority: p, Delay: d})
			secs := max(1, int64((d+time.Second-1)/time.Second))
			want, err := json.Marshal(map[string]any{
				"error":       "server overloaded (" + p.String() + " priority); retry in " + strconv.FormatInt(secs, 10) + " s",
				"retry_after": secs,
			})
			require.NoError(t, err)
			assert.Equal(t, string(want)+"\n", w.Body.String(), "%v %v", p, d)
			assert.Equal(t, http.StatusServiceUnavailable, w.Code)
			assert.Equal(t, strconv.FormatInt(secs, 10), w.Header().Get("Retry-After"))
			assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
		}
	}
}
