package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// twoInstances starts two servio instances on one PostgreSQL schema and one
// Redis (under this test's key prefix), as in a deployment of two replicas.
func twoInstances(t *testing.T, rateLimit bool) (*testApp, *testApp) {
	t.Helper()
	_, prefix := testenv.Redis(t)
	cfg := testConfig(t, "postgres")
	cfg.RedisURL, cfg.RedisPrefix, cfg.RateLimit = testenv.RedisURL(), prefix, rateLimit
	a := startApp(t, cfg).admin()
	cfg.DataDir = t.TempDir()
	b := startApp(t, cfg).admin()
	return a, b
}

// TestInvalidationAcrossInstances: a write on A is served by B as soon as
// the pub/sub invalidation arrives, though B had the old value in its L1.
// Delivery takes milliseconds; the polls allow 10 s so a loaded CI machine
// cannot fail them, which still proves the invalidation: without it B would
// serve its L1 copy for the L1 TTL, 60 s. Rate limits are off so the
// polling is not throttled.
func TestInvalidationAcrossInstances(t *testing.T) {
	t.Parallel()
	a, b := twoInstances(t, false)
	var menu menuResponse
	a.doJSON("GET", "/restaurants/2/menu", "", http.StatusOK, &menu)
	b.doJSON("GET", "/restaurants/2/menu", "", http.StatusOK, &menu)
	b.doJSON("GET", "/restaurants/2/menu", "", http.StatusOK, &menu) // now an L1 hit on B
	require.NotEmpty(t, menu.Items)
	item := menu.Items[0]

	a.doJSON("PATCH", fmt.Sprintf("/menu-items/%d", item.ID), `{"price_cents":12345}`, http.StatusOK, nil)
	priceOnB := func() int64 {
		var m menuResponse
		b.doJSON("GET", "/restaurants/2/menu", "", http.StatusOK, &m)
		for _, it := range m.Items {
			if it.ID == item.ID {
				return it.PriceCents
			}
		}
		return -1
	}
	require.Eventually(t, func() bool { return priceOnB() == 12345 }, invalidationWait, 5*time.Millisecond,
		"B must serve the price A wrote")

	var o store.Order
	b.doJSON("GET", "/orders/10", "", http.StatusOK, &o)
	a.doJSON("GET", "/orders/10", "", http.StatusOK, &o)
	b.doJSON("PATCH", "/orders/10", `{"status":"preparing"}`, http.StatusOK, nil)
	require.Eventually(t, func() bool {
		var got store.Order
		a.doJSON("GET", "/orders/10", "", http.StatusOK, &got)
		return got.Status == store.StatusPreparing
	}, invalidationWait, 5*time.Millisecond, "A must serve the status B wrote")
}

// invalidationWait bounds the wait for a cross-instance invalidation: far
// above pub/sub's milliseconds, far below the 60 s L1 TTL it must beat.
const invalidationWait = 10 * time.Second

// TestAuthTierAcrossInstances: the Auth tier (5 per 15 minutes) holds
// across instances sharing Redis: the 6th login gets 429 with Retry-After.
func TestAuthTierAcrossInstances(t *testing.T) {
	t.Parallel()
	a, b := twoInstances(t, true)
	login := `{"email":"staff@servio.dev","password":"servio-demo"}`
	for i := range 5 {
		inst := []*testApp{a, b}[i%2]
		inst.doJSON("POST", "/auth/login", login, http.StatusOK, nil)
	}
	resp, err := http.Post(b.URL+"/auth/login", "application/json", stringsReader(login))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", resp.Header.Get("Retry-After"))
	assert.Positive(t, secs)
	assert.Contains(t, resp.Header.Get("RateLimit-Policy"), "auth")
	var body struct {
		Error      string `json:"error"`
		RetryAfter int    `json:"retry_after"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body), "a denial is servio's JSON error")
	assert.Contains(t, body.Error, "auth tier")
	assert.Equal(t, secs, body.RetryAfter)

	// Other tiers are separate: the menu still answers.
	a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, nil)
}

// TestAPITierPerUser: with a valid token the API tier (60/min) counts per
// user, so one user using up the budget does not limit another user or an
// anonymous caller on the same address.
func TestAPITierPerUser(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	token := func(email string) string {
		var res loginResponse
		a.doJSON("POST", "/auth/login", `{"email":"`+email+`","password":"servio-demo"}`, http.StatusOK, &res)
		return res.Token
	}
	manager, staff := token("manager@servio.dev"), token("staff@servio.dev")
	get := func(tok string) *http.Response {
		req, err := http.NewRequest("GET", a.URL+"/restaurants/1/menu", nil)
		require.NoError(t, err)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	// The tier refills one request a second, so on a slow machine more than
	// 60 may pass before the first 429; count them instead of expecting
	// the 61st to fail. 90 keeps the address under the Global tier's 100.
	allowed := 0
	var denied *http.Response
	for range 90 {
		resp := get(manager)
		if resp.StatusCode != http.StatusOK {
			denied = resp
			break
		}
		allowed++
	}
	require.NotNil(t, denied, "the manager was never limited")
	assert.Equal(t, http.StatusTooManyRequests, denied.StatusCode)
	assert.Contains(t, denied.Header.Get("RateLimit-Policy"), "api", "the API tier, not Global, limits the manager")
	assert.GreaterOrEqual(t, allowed, 60, "the manager's 60 requests a minute are honoured")
	assert.Equal(t, http.StatusOK, get(staff).StatusCode, "another user has a budget of their own")
	assert.Equal(t, http.StatusOK, get("").StatusCode, "so does the anonymous caller on the same address")
	assert.Equal(t, http.StatusOK, get("forged.token").StatusCode, "a token that does not verify counts as anonymous")
}
