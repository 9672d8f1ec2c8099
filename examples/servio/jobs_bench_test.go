package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkCreateOrderSMS measures POST /orders with a customer_phone
// against a simulated SMS upstream answering in 300 ms: inline in the
// request (-baseline, the "before") against queued on River (perfkit on).
// It reports the request latency's p50 and p99; run with a fixed count,
// e.g. -benchtime=200x.
func BenchmarkCreateOrderSMS(b *testing.B) {
	for _, mode := range []struct {
		name     string
		baseline bool
	}{{"inline-baseline", true}, {"queued", false}} {
		b.Run(mode.name, func(b *testing.B) {
			cfg := testConfig(b, "sqlite")
			cfg.Baseline, cfg.RateLimit, cfg.AdaptiveLimit = mode.baseline, false, false
			cfg.SimSMSLatency = 300 * time.Millisecond
			a := startApp(b, cfg)
			_, err := a.db.Exec("UPDATE inventory_items SET current_quantity = 1000000")
			require.NoError(b, err)
			body := fmt.Sprintf(`{"restaurant_id":1,"customer_phone":%q,"items":[{"menu_item_id":1,"quantity":1}]}`, testPhone)
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				resp, err := http.Post(a.URL+"/orders", "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Fatalf("POST /orders: %d", resp.StatusCode)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
		})
	}
}
