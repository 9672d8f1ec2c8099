package main

import (
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentOrdersNeverOversell races 12 one-portion orders for an item
// with 5 in stock: exactly 5 succeed, the rest get 409, stock ends at 0.
func TestConcurrentOrdersNeverOversell(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()
			var item struct{ ID int64 }
			a.doJSON("POST", "/restaurants/3/menu", `{"name":"Churros","price_cents":400,"stock":5,"reorder_point":1}`, http.StatusCreated, &item)
			body := `{"restaurant_id":3,"items":[{"menu_item_id":` + itoa(item.ID) + `,"quantity":1},{"menu_item_id":10,"quantity":1}]}`
			var wg sync.WaitGroup
			codes := make([]int, 12)
			for i := range codes {
				wg.Go(func() {
					resp, err := http.Post(a.URL+"/orders", "application/json", stringsReader(body))
					if err == nil {
						codes[i] = resp.StatusCode
						resp.Body.Close()
					}
				})
			}
			wg.Wait()
			count := map[int]int{}
			for _, c := range codes {
				count[c]++
			}
			assert.Equal(t, map[int]int{http.StatusCreated: 5, http.StatusConflict: 7}, count)
			var stock int
			require.NoError(t, a.db.QueryRow(rebindTest(a, "SELECT current_quantity FROM inventory_items WHERE menu_item_id = ?"), item.ID).Scan(&stock))
			assert.Zero(t, stock)
		})
	}
}
