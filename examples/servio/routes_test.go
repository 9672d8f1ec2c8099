package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The demo data: restaurant 1 (Trattoria Roma) has menu items 1..5;
// item 3 (Lasagne) has 6 in stock and a reorder point of 8.

func TestMenuRoutes(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()
			var menu menuResponse
			a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, &menu)
			require.Len(t, menu.Items, 5)
			assert.Equal(t, "Diavola", menu.Items[0].Name, "menu is ordered by name")

			var added store.MenuItem
			a.doJSON("POST", "/restaurants/1/menu", `{"name":"Calzone","description":"Folded","price_cents":1250,"stock":3,"reorder_point":5}`, http.StatusCreated, &added)
			assert.Equal(t, int64(1250), added.PriceCents)
			a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, &menu)
			assert.Len(t, menu.Items, 6, "adding an item invalidates the menu")

			var patched store.MenuItem
			a.doJSON("PATCH", fmt.Sprintf("/menu-items/%d", added.ID), `{"price_cents":1300}`, http.StatusOK, &patched)
			assert.Equal(t, int64(1300), patched.PriceCents)
			a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, &menu)
			assert.Contains(t, menu.Items, patched, "a price change shows on the menu at once")

			a.doJSON("PATCH", fmt.Sprintf("/menu-items/%d", added.ID), `{"is_available":false}`, http.StatusOK, &patched)
			a.doJSON("GET", "/restaurants/1/menu", "", http.StatusOK, &menu)
			assert.Len(t, menu.Items, 5, "an unavailable item leaves the menu")

			var low lowStockResponse
			a.doJSON("GET", "/restaurants/1/inventory/low-stock", "", http.StatusOK, &low)
			names := []string{}
			for _, it := range low.Items {
				names = append(names, it.Name)
			}
			assert.Equal(t, []string{"Calzone", "Lasagne"}, names, "low stock, emptiest first")

			a.doJSON("GET", "/restaurants/999/menu", "", http.StatusNotFound, nil)
			a.doJSON("GET", "/restaurants/999/inventory/low-stock", "", http.StatusNotFound, nil)
			a.doJSON("POST", "/restaurants/999/menu", `{"name":"X","price_cents":1}`, http.StatusNotFound, nil)
			a.doJSON("PATCH", "/menu-items/999", `{"price_cents":1}`, http.StatusNotFound, nil)
		})
	}
}

func TestOrderRoutes(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()

			var o store.Order
			a.doJSON("POST", "/orders", `{"restaurant_id":1,"customer_name":"Zoe","items":[{"menu_item_id":3,"quantity":2},{"menu_item_id":1,"quantity":1},{"menu_item_id":3,"quantity":1}]}`, http.StatusCreated, &o)
			assert.Equal(t, store.StatusPending, o.Status)
			assert.Equal(t, int64(3*1490+1150), o.TotalCents)
			require.Len(t, o.Items, 2, "repeated items are merged")

			var got store.Order
			a.doJSON("GET", fmt.Sprintf("/orders/%d", o.ID), "", http.StatusOK, &got)
			assert.Equal(t, o, got)

			// Lasagne had 6, 3 were taken: 4 more is out of stock and writes nothing.
			code, body := a.do("POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":1,"quantity":1},{"menu_item_id":3,"quantity":4}]}`)
			assert.Equal(t, http.StatusConflict, code, "%s", body)
			assert.Contains(t, string(body), "4 asked, 3 left")
			var low lowStockResponse
			a.doJSON("GET", "/restaurants/1/inventory/low-stock", "", http.StatusOK, &low)
			require.NotEmpty(t, low.Items)
			assert.Equal(t, 3, low.Items[0].CurrentQuantity, "a refused order takes no stock")
			var page store.OrderPage
			a.doJSON("GET", "/restaurants/1/orders?limit=100", "", http.StatusOK, &page)
			assert.Len(t, page.Orders, 6, "5 demo orders + 1; the refused one is not written")
			assert.Equal(t, o.ID, page.Orders[0].ID, "newest first")

			a.doJSON("PATCH", fmt.Sprintf("/orders/%d", o.ID), `{"status":"preparing"}`, http.StatusOK, &got)
			assert.Equal(t, store.StatusPreparing, got.Status)
			a.doJSON("GET", fmt.Sprintf("/orders/%d", o.ID), "", http.StatusOK, &got)
			assert.Equal(t, store.StatusPreparing, got.Status, "a status change invalidates the cached order")
			a.doJSON("PATCH", fmt.Sprintf("/orders/%d", o.ID), `{"status":"cancelled"}`, http.StatusOK, &got)
			a.doJSON("GET", "/restaurants/1/inventory/low-stock", "", http.StatusOK, &low)
			assert.Equal(t, 6, low.Items[0].CurrentQuantity, "cancelling returns the stock")
			a.doJSON("PATCH", fmt.Sprintf("/orders/%d", o.ID), `{"status":"ready"}`, http.StatusConflict, nil)

			a.doJSON("GET", "/orders/99999", "", http.StatusNotFound, nil)
			a.doJSON("PATCH", "/orders/99999", `{"status":"ready"}`, http.StatusNotFound, nil)
			a.doJSON("POST", "/orders", `{"restaurant_id":999,"items":[{"menu_item_id":1,"quantity":1}]}`, http.StatusNotFound, nil)
			a.doJSON("POST", "/orders", `{"restaurant_id":1,"items":[{"menu_item_id":6,"quantity":1}]}`, http.StatusNotFound, nil)
			a.doJSON("GET", "/restaurants/999/orders", "", http.StatusNotFound, nil)
		})
	}
}

func TestOrdersPagination(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()
			for range 7 {
				a.doJSON("POST", "/orders", `{"restaurant_id":2,"items":[{"menu_item_id":8,"quantity":1}]}`, http.StatusCreated, nil)
			}
			seen := map[int64]bool{}
			cursor, pages := "", 0
			for {
				var page store.OrderPage
				a.doJSON("GET", "/restaurants/2/orders?limit=5&cursor="+cursor, "", http.StatusOK, &page)
				pages++
				for _, o := range page.Orders {
					assert.False(t, seen[o.ID], "order %d on two pages", o.ID)
					seen[o.ID] = true
					assert.NotEmpty(t, o.Items)
				}
				if page.NextCursor == "" {
					break
				}
				cursor = page.NextCursor
			}
			assert.Len(t, seen, 12, "5 demo orders + 7 new, each once")
			assert.Equal(t, 3, pages)

			var pending store.OrderPage
			a.doJSON("GET", "/restaurants/2/orders?status=pending&limit=100", "", http.StatusOK, &pending)
			assert.Len(t, pending.Orders, 8)
			a.doJSON("GET", "/restaurants/2/orders?limit=101", "", http.StatusBadRequest, nil)
		})
	}
}

func TestAuthLogin(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()
			var res loginResponse
			a.doJSON("POST", "/auth/login", `{"email":"Manager@servio.dev","password":"servio-demo"}`, http.StatusOK, &res)
			claims, err := a.tokens.verify(res.Token)
			require.NoError(t, err)
			assert.Equal(t, "manager@servio.dev", claims.Email)
			a.doJSON("POST", "/auth/login", `{"email":"manager@servio.dev","password":"wrong"}`, http.StatusUnauthorized, nil)
			a.doJSON("POST", "/auth/login", `{"email":"nobody@servio.dev","password":"servio-demo"}`, http.StatusUnauthorized, nil)
		})
	}
}

// TestLoginHashGate: password checks run in a bulkhead; when it is full a
// login gets a quick 503 with Retry-After instead of another core's worth
// of hashing, and logins work again once a slot frees.
func TestLoginHashGate(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	require.NotNil(t, a.hashGate, "perfkit mode gates password checks")
	gate, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "test-hash", MaxConcurrent: 1})
	require.NoError(t, err)
	a.hashGate = gate // before any request: no race with handlers
	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = gate.Do(context.Background(), func(context.Context) error { close(held); <-hold; return nil })
	}()
	<-held
	login := `{"email":"manager@servio.dev","password":"servio-demo"}`
	resp, err := http.Post(a.URL+"/auth/login", "application/json", strings.NewReader(login))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Contains(t, string(body), "retry shortly")
	close(hold)
	require.Eventually(t, func() bool { return gate.InFlight() == 0 }, 5*time.Second, time.Millisecond)
	a.doJSON("POST", "/auth/login", login, http.StatusOK, nil)
}

func TestAssistantAndUploadAndHealth(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()
			var ans assistantResponse
			a.doJSON("POST", "/assistant/query", `{"question":"Which dishes are vegan?"}`, http.StatusOK, &ans)
			assert.True(t, ans.Simulated)
			assert.Contains(t, ans.Answer, "which dishes are vegan")

			var up uploadResponse
			a.doJSON("POST", "/uploads", "hello servio\n", http.StatusCreated, &up)
			assert.Equal(t, "text/plain; charset=utf-8", up.ContentType)
			b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, "uploads", up.ID))
			require.NoError(t, err)
			assert.Equal(t, "hello servio\n", string(b))

			for _, p := range []string{"/health", "/health/live", "/health/ready", "/health/detailed", "/health/metrics"} {
				code, body := a.do("GET", p, "")
				assert.Equal(t, http.StatusOK, code, "GET %s: %s", p, body)
			}
		})
	}
}
