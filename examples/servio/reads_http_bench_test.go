package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkReadRoutes: what each read of the overload benchmark's mix
// (scripts/bench-overload's reads: the menu, an order, a page of a
// restaurant's orders, its low stock) costs servio's handler chain in
// process, with an admin's token on the staff routes as loadgen sends
// it (not on the menu), on the embedded SQLite with the demo data (the
// script seeds more: 50 restaurants, 20,000 orders, so its order pages
// may cost more). Its allocations per request decide how often the
// collector runs under load; it leaves out net/http's reading, parsing
// and writing.
func BenchmarkReadRoutes(b *testing.B) {
	cfg := testConfig(b, "sqlite")
	cfg.RateLimit = false
	a := startApp(b, cfg).admin()
	h := a.Handler()
	for _, tc := range []struct {
		name, path string
		staff      bool
	}{
		{"menu", "/restaurants/1/menu", false},
		{"order", "/orders/3", true},
		{"orders-page", "/restaurants/1/orders?limit=20", true},
		{"low-stock", "/restaurants/1/inventory/low-stock", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.staff {
				req.Header.Set("Authorization", "Bearer "+a.token)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := &countingWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("%s: status %d, want 200", tc.path, w.status)
				}
			}
		})
	}
}
