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
