package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var badInputs = []struct {
	name, method, path, body string
	want                     int
}{
	{"malformed JSON", "POST", "/orders", `{"restaurant_id":1,`, http.StatusBadRequest},
	{"not JSON", "POST", "/orders", `hello`, http.StatusBadRequest},
	{"empty body", "POST", "/orders", ``, http.StatusBadRequest},
	{"array body", "POST", "/orders", `[1,2]`, http.StatusBadRequest},
	{"two objects", "POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":1,"quantity":1}]}{}`, http.StatusBadRequest},
	{"invalid UTF-8", "POST", "/orders", "{\"restaurant_id\":1,\"customer_name\":\"\xff\xfe\",\"items\":[{\"menu_item_id\":1,\"quantity\":1}]}", http.StatusBadRequest},
	{"deep JSON", "POST", "/orders", strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), http.StatusBadRequest},
	{"unknown field", "POST", "/orders", `{"restaurant_id":1,"itemz":[]}`, http.StatusBadRequest},
	{"no items", "POST", "/orders", `{"restaurant_id":1,"items":[]}`, http.StatusBadRequest},
	{"zero quantity", "POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":1,"quantity":0}]}`, http.StatusBadRequest},
	{"negative quantity", "POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":1,"quantity":-3}]}`, http.StatusBadRequest},
	{"huge quantity", "POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":1,"quantity":1000000}]}`, http.StatusBadRequest},
	{"quantity overflow", "POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":1,"quantity":99999999999999999999999}]}`, http.StatusBadRequest},
	{"fractional quantity", "POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":1,"quantity":1.5}]}`, http.StatusBadRequest},
	{"string quantity", "POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":1,"quantity":"2"}]}`, http.StatusBadRequest},
	{"negative restaurant", "POST", "/orders", `{"restaurant_id":-1,"items":[{"menu_item_id":1,"quantity":1}]}`, http.StatusBadRequest},
	{"unknown restaurant", "POST", "/orders", `{"restaurant_id":424242,"items":[{"menu_item_id":1,"quantity":1}]}`, http.StatusNotFound},
	{"unknown menu item", "POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":424242,"quantity":1}]}`, http.StatusNotFound},
	{"too many lines", "POST", "/orders", `{"restaurant_id":1,"items":[` + strings.TrimSuffix(strings.Repeat(`{"menu_item_id":1,"quantity":1},`, 51), ",") + `]}`, http.StatusBadRequest},
	{"oversized body", "POST", "/orders", `{"customer_name":"` + strings.Repeat("x", 70<<10) + `"}`, http.StatusRequestEntityTooLarge},
	{"negative price", "POST", "/restaurants/1/menu", `{"name":"X","price_cents":-1}`, http.StatusBadRequest},
	{"price overflow", "POST", "/restaurants/1/menu", `{"name":"X","price_cents":1e30}`, http.StatusBadRequest},
	{"missing price", "POST", "/restaurants/1/menu", `{"name":"X"}`, http.StatusBadRequest},
	{"blank name", "POST", "/restaurants/1/menu", `{"name":"  ","price_cents":100}`, http.StatusBadRequest},
	{"negative stock", "POST", "/restaurants/1/menu", `{"name":"X","price_cents":100,"stock":-1}`, http.StatusBadRequest},
	{"empty patch", "PATCH", "/menu-items/1", `{}`, http.StatusBadRequest},
	{"null patch", "PATCH", "/menu-items/1", `null`, http.StatusBadRequest},
	{"bool as string", "PATCH", "/menu-items/1", `{"is_available":"yes"}`, http.StatusBadRequest},
	{"bad status", "PATCH", "/orders/1", `{"status":"eaten"}`, http.StatusBadRequest},
	{"non-numeric id", "GET", "/orders/abc", ``, http.StatusBadRequest},
	{"zero id", "GET", "/restaurants/0/menu", ``, http.StatusBadRequest},
	{"id overflow", "GET", "/orders/99999999999999999999", ``, http.StatusBadRequest},
	{"unknown order", "GET", "/orders/424242", ``, http.StatusNotFound},
	{"bad limit", "GET", "/restaurants/1/orders?limit=-5", ``, http.StatusBadRequest},
	{"bad status filter", "GET", "/restaurants/1/orders?status=nope", ``, http.StatusBadRequest},
	{"bad cursor", "GET", "/restaurants/1/orders?cursor=!!!", ``, http.StatusBadRequest},
	{"bad query string", "GET", "/restaurants/1/orders?cursor=%%%", ``, http.StatusBadRequest},
	{"forged cursor", "GET", "/restaurants/1/orders?cursor=bm90LWEtY3Vyc29y", ``, http.StatusBadRequest},
	{"login missing password", "POST", "/auth/login", `{"email":"manager@servio.dev"}`, http.StatusBadRequest},
	{"login unknown field", "POST", "/auth/login", `{"email":"a","password":"b","admin":true}`, http.StatusBadRequest},
	{"empty question", "POST", "/assistant/query", `{"question":"   "}`, http.StatusBadRequest},
	{"long question", "POST", "/assistant/query", `{"question":"` + strings.Repeat("q", 2001) + `"}`, http.StatusBadRequest},
	{"unknown route", "GET", "/nope", ``, http.StatusNotFound},
	{"wrong method", "DELETE", "/orders/1", ``, http.StatusMethodNotAllowed},
	// Control characters: PostgreSQL refuses NUL (a 500 before), SQLite
	// stored it; both now answer 400 for every string field.
	{"NUL in customer_name", "POST", "/orders", `{"restaurant_id":1,"customer_name":"a\u0000b","items":[{"menu_item_id":1,"quantity":1}]}`, http.StatusBadRequest},
	{"escape in customer_name", "POST", "/orders", `{"restaurant_id":1,"customer_name":"a\u001b[31m","items":[{"menu_item_id":1,"quantity":1}]}`, http.StatusBadRequest},
	{"C1 control in customer_name", "POST", "/orders", `{"restaurant_id":1,"customer_name":"a\u0085","items":[{"menu_item_id":1,"quantity":1}]}`, http.StatusBadRequest},
	{"NUL in menu name", "POST", "/restaurants/1/menu", `{"name":"X\u0000","price_cents":100}`, http.StatusBadRequest},
	{"newline in menu name", "POST", "/restaurants/1/menu", `{"name":"X\nY","price_cents":100}`, http.StatusBadRequest},
	{"NUL in description", "POST", "/restaurants/1/menu", `{"name":"X","description":"\u0000","price_cents":100}`, http.StatusBadRequest},
	{"NUL in login email", "POST", "/auth/login", `{"email":"manager@servio.dev\u0000","password":"servio-demo"}`, http.StatusBadRequest},
	{"NUL in password", "POST", "/auth/login", `{"email":"manager@servio.dev","password":"servio-demo\u0000"}`, http.StatusBadRequest},
	{"NUL in question", "POST", "/assistant/query", `{"question":"menu\u0000"}`, http.StatusBadRequest},
	{"NUL in status", "PATCH", "/orders/1", `{"status":"ready\u0000"}`, http.StatusBadRequest},
	// The per-item cap holds over repeated lines of one item.
	{"cap over repeated lines", "POST", "/orders", `{"restaurant_id":1,"items":[` + strings.TrimSuffix(strings.Repeat(`{"menu_item_id":5,"quantity":1000},`, 2), ",") + `]}`, http.StatusBadRequest},
	{"limit zero", "GET", "/restaurants/1/orders?limit=0", ``, http.StatusBadRequest},
	{"limit above 100", "GET", "/restaurants/1/orders?limit=101", ``, http.StatusBadRequest},
	{"limit 1000", "GET", "/restaurants/1/orders?limit=1000", ``, http.StatusBadRequest},
	// Errors the mux and the health handler answer are JSON too.
	{"unknown health path", "GET", "/health/nope", ``, http.StatusNotFound},
	{"DELETE on metrics", "DELETE", "/health/metrics", ``, http.StatusMethodNotAllowed},
	{"POST on health", "POST", "/health", `{}`, http.StatusMethodNotAllowed},
	{"DELETE on a menu", "DELETE", "/restaurants/1/menu", ``, http.StatusMethodNotAllowed},
	{"DELETE on low stock", "DELETE", "/restaurants/1/inventory/low-stock", ``, http.StatusMethodNotAllowed},
	{"unknown route under a known one", "GET", "/orders/1/items", ``, http.StatusNotFound},
}

// TestBadInput checks that bad requests get a 4xx with a JSON error and
// change nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()
			_, before := a.do("GET", "/restaurants/1/orders?limit=100", "")
			_, menuBefore := a.do("GET", "/restaurants/1/menu", "")
			for _, tc := range badInputs {
				code, body := a.do(tc.method, tc.path, tc.body)
				assert.Equal(t, tc.want, code, "%s: %s %s -> %s", tc.name, tc.method, tc.path, body)
				var e map[string]string
				if assert.NoError(t, json.Unmarshal(body, &e), "%s: error body must be JSON: %s", tc.name, body) {
					assert.NotEmpty(t, e["error"], "%s: error body %s", tc.name, body)
				}
			}
			_, after := a.do("GET", "/restaurants/1/orders?limit=100", "")
			_, menuAfter := a.do("GET", "/restaurants/1/menu", "")
			require.JSONEq(t, string(before), string(after), "bad input must write no order")
			require.JSONEq(t, string(menuBefore), string(menuAfter), "bad input must change no menu")
		})
	}
}

// TestErrorsAreJSON: answers servio's handlers do not write themselves —
// net/http's path-cleaning redirect, oversized headers (431) — are JSON
// too, and a refused order says how much stock is left.
func TestErrorsAreJSON(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(req *http.Request) (int, string, map[string]string) {
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var e map[string]string
		assert.NoError(t, json.NewDecoder(resp.Body).Decode(&e), "%s %s: JSON body", req.Method, req.URL)
		return resp.StatusCode, resp.Header.Get("Content-Type"), e
	}
	req, _ := http.NewRequest("GET", a.URL+"/orders/../health", nil)
	req.URL.Opaque = "/orders/../health" // sent as is, not cleaned by the client
	code, ctype, e := send(req)
	assert.Equal(t, 3, code/100, "a redirect to the cleaned path")
	assert.Equal(t, "application/json", ctype)
	assert.Equal(t, "/health", e["location"])

	req, _ = http.NewRequest("GET", a.URL+"/restaurants/1/menu", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 70<<10))
	code, ctype, e = send(req)
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, code)
	assert.Equal(t, "application/json", ctype)
	assert.NotEmpty(t, e["error"])

	// Lasagne (item 3) has 6: asking 50 says 6 are left.
	code, body := a.do("POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":3,"quantity":50}]}`)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, string(body), "50 asked, 6 left")
}

// FuzzCreateOrder throws arbitrary bodies at POST /orders: the answer is
// always JSON and never a 5xx.
func FuzzCreateOrder(f *testing.F) {
	for _, tc := range badInputs {
		if tc.path == "/orders" {
			f.Add(tc.body)
		}
	}
	f.Add(`{"restaurant_id":1,"items":[{"menu_item_id":1,"quantity":1}]}`)
	a := newTestApp(f, "sqlite").admin()
	f.Fuzz(func(t *testing.T, body string) {
		resp, err := http.Post(a.URL+"/orders", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Less(t, resp.StatusCode, 500, "body %q", body)
		var e map[string]any
		assert.NoError(t, json.NewDecoder(resp.Body).Decode(&e), "body %q", body)
	})
}
