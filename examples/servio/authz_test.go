package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The callers of the authorization table, in its columns' order.
const (
	anonymous = iota
	guestToken
	staffHere
	staffElsewhere
	managerHere
	expiredToken
	callers
)

var callerNames = [callers]string{"anonymous", "guest-order token", "staff of the restaurant", "staff of another restaurant", "manager", "expired token"}

// authCell is what one table cell works on: a fresh pending order of
// restaurant 1 and that order's guest token.
type authCell struct {
	orderID int64
	guest   string
}

// placeGuestOrder places an order for one espresso (item 5, restaurant 1)
// as a guest and returns it with its token.
func placeGuestOrder(t *testing.T, a *testApp) authCell {
	t.Helper()
	var o createdOrder
	a.as("").doJSON("POST", "/orders", `{"restaurant_id":1,"customer_name":"Guest","items":[{"menu_item_id":5,"quantity":1}]}`, http.StatusCreated, &o)
	require.NotEmpty(t, o.OrderToken, "POST /orders returns an order token")
	return authCell{orderID: o.ID, guest: o.OrderToken}
}

// TestAuthorizationTable: every route × {anonymous, guest-order token,
// staff of the restaurant, staff of another restaurant, manager, expired
// token} → the status DESIGN.md's rules give; every refusal is a JSON
// error, 401s carry WWW-Authenticate. Each cell gets a fresh order of
// restaurant 1 and that order's guest token.
func TestAuthorizationTable(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, dialect)
			cfg.RateLimit = false // the table sends more logins than the Auth tier admits
			a := startApp(t, cfg)
			expired := &tokenSigner{key: a.tokens.key, ttl: time.Hour, now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}
			u, err := a.st.UserByEmail(t.Context(), "staff@servio.dev")
			require.NoError(t, err)
			expiredTok, _, err := expired.issue(u)
			require.NoError(t, err)
			staff, other, manager := a.tokenFor("staff@servio.dev"), a.tokenFor("staff2@servio.dev"), a.tokenFor("manager@servio.dev")

			order := func(c authCell) string { return fmt.Sprintf("/orders/%d", c.orderID) }
			fixed := func(p string) func(authCell) string { return func(authCell) string { return p } }
			routes := []struct {
				method string
				path   func(authCell) string
				body   string
				want   [callers]int
			}{
				{"GET", fixed("/restaurants/1/menu"), "", [callers]int{200, 200, 200, 200, 200, 200}},
				{"POST", fixed("/restaurants/1/menu"), `{"name":"Calzone","price_cents":1250}`, [callers]int{401, 403, 403, 403, 201, 401}},
				{"PATCH", fixed("/menu-items/1"), `{"is_available":true}`, [callers]int{401, 403, 403, 403, 200, 401}},
				{"GET", order, "", [callers]int{401, 200, 200, 403, 200, 401}},
				{"PATCH", order, `{"status":"cancelled"}`, [callers]int{401, 200, 200, 403, 200, 401}},
				{"PATCH", order, `{"status":"preparing"}`, [callers]int{401, 403, 200, 403, 200, 401}},
				{"GET", fixed("/restaurants/1/orders"), "", [callers]int{401, 403, 200, 403, 200, 401}},
				{"GET", fixed("/restaurants/1/orders/export"), "", [callers]int{401, 403, 200, 403, 200, 401}},
				{"GET", fixed("/restaurants/1/orders/export?format=csv"), "", [callers]int{401, 403, 200, 403, 200, 401}},
				{"POST", fixed("/orders"), `{"restaurant_id":1,"items":[{"menu_item_id":5,"quantity":1}]}`, [callers]int{201, 201, 201, 201, 201, 201}},
				{"GET", fixed("/restaurants/1/inventory/low-stock"), "", [callers]int{401, 403, 200, 403, 200, 401}},
				{"POST", fixed("/auth/login"), `{"email":"staff@servio.dev","password":"servio-demo"}`, [callers]int{200, 200, 200, 200, 200, 200}},
				{"POST", fixed("/assistant/query"), `{"restaurant_id":1,"question":"What is cheapest?"}`, [callers]int{200, 200, 200, 200, 200, 200}},
				{"POST", fixed("/uploads"), "hello servio\n", [callers]int{401, 403, 201, 201, 201, 401}},
				{"GET", fixed("/health"), "", [callers]int{200, 200, 200, 200, 200, 200}},
				{"GET", fixed("/health/live"), "", [callers]int{200, 200, 200, 200, 200, 200}},
				{"GET", fixed("/health/ready"), "", [callers]int{200, 200, 200, 200, 200, 200}},
				// Loopback: today's rule (private networks see details) holds.
				{"GET", fixed("/health/detailed"), "", [callers]int{200, 200, 200, 200, 200, 200}},
				{"GET", fixed("/health/metrics"), "", [callers]int{200, 200, 200, 200, 200, 200}},
			}
			for _, rt := range routes {
				for who := range callers {
					cell := placeGuestOrder(t, a)
					tokens := [callers]string{"", cell.guest, staff, other, manager, expiredTok}
					path := rt.path(cell)
					req, err := http.NewRequest(rt.method, a.URL+path, strings.NewReader(rt.body))
					require.NoError(t, err)
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+tokens[who])
					resp, err := http.DefaultClient.Do(req)
					require.NoError(t, err)
					var body map[string]any
					decErr := json.NewDecoder(resp.Body).Decode(&body)
					resp.Body.Close()
					assert.Equal(t, rt.want[who], resp.StatusCode, "%s %s as %s: %v", rt.method, path, callerNames[who], body)
					if resp.StatusCode >= 400 {
						assert.NoError(t, decErr, "%s %s as %s: a JSON error body", rt.method, path, callerNames[who])
						assert.NotEmpty(t, body["error"], "%s %s as %s: the error says why", rt.method, path, callerNames[who])
					}
					if resp.StatusCode == http.StatusUnauthorized {
						assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer", "%s %s as %s", rt.method, path, callerNames[who])
					}
				}
			}
		})
	}
}

// TestGuestOrderToken: an order token reads and cancels its own order
// while it is pending, and nothing else: not another order, not after the
// kitchen started; and the stock comes back once.
func TestGuestOrderToken(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite")
	mine, theirs := placeGuestOrder(t, a), placeGuestOrder(t, a)
	guest := a.as(mine.guest)
	guest.doJSON("GET", fmt.Sprintf("/orders/%d", theirs.orderID), "", http.StatusForbidden, nil)
	guest.doJSON("PATCH", fmt.Sprintf("/orders/%d", theirs.orderID), `{"status":"cancelled"}`, http.StatusForbidden, nil)
	guest.doJSON("GET", "/restaurants/1/orders", "", http.StatusForbidden, nil)

	staff := a.as(a.tokenFor("staff@servio.dev"))
	staff.doJSON("PATCH", fmt.Sprintf("/orders/%d", theirs.orderID), `{"status":"preparing"}`, http.StatusOK, nil)
	code, body := a.as(theirs.guest).do("PATCH", fmt.Sprintf("/orders/%d", theirs.orderID), `{"status":"cancelled"}`)
	assert.Equal(t, http.StatusConflict, code, "a guest cannot cancel once the kitchen started: %s", body)
	assert.Contains(t, string(body), "preparing")

	var got store.Order
	guest.doJSON("PATCH", fmt.Sprintf("/orders/%d", mine.orderID), `{"status":"cancelled"}`, http.StatusOK, &got)
	assert.Equal(t, store.StatusCancelled, got.Status)
	guest.doJSON("GET", fmt.Sprintf("/orders/%d", mine.orderID), "", http.StatusOK, &got)
	assert.Equal(t, "Guest", got.CustomerName)
}

// TestCachedOrderAuthorized: an order cached for its restaurant's staff is
// never served to another restaurant's staff or another order's guest.
func TestCachedOrderAuthorized(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite")
	cell, other := placeGuestOrder(t, a), placeGuestOrder(t, a)
	path := fmt.Sprintf("/orders/%d", cell.orderID)
	for range 2 { // the second read is a cache hit
		a.as(a.tokenFor("staff@servio.dev")).doJSON("GET", path, "", http.StatusOK, nil)
	}
	code, body := a.as(a.tokenFor("staff2@servio.dev")).do("GET", path, "")
	assert.Equal(t, http.StatusForbidden, code)
	assert.NotContains(t, string(body), "Guest", "no part of the cached order leaks")
	code, body = a.as(other.guest).do("GET", path, "")
	assert.Equal(t, http.StatusForbidden, code)
	assert.NotContains(t, string(body), "Guest")
}

// TestUserWithoutRestaurantReachesNone: a manager or staff token without a
// restaurant (a user created before users had one) reaches no restaurant.
func TestUserWithoutRestaurantReachesNone(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite")
	tok, _, err := a.tokens.issue(store.User{ID: 99, Email: "old@servio.dev", Role: store.RoleManager})
	require.NoError(t, err)
	a.as(tok).doJSON("GET", "/restaurants/1/orders", "", http.StatusForbidden, nil)
	a.as(tok).doJSON("POST", "/restaurants/1/menu", `{"name":"X","price_cents":1}`, http.StatusForbidden, nil)
}
