package health

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchChecker has four cached checks, as the example service does, and a
// cache that never expires during the benchmark.
func benchChecker(b *testing.B) http.Handler {
	b.Helper()
	var checks []Check
	for _, name := range []string{"db", "redis", "llm", "memory"} {
		checks = append(checks, Check{Name: name, Critical: name != "llm", Run: fixed(Result{
			Measurements: []Measurement{{Name: "responseTime", Value: 1.25, Unit: "ms"}},
		})})
	}
	c := newTest(b, Config{CacheTTL: time.Hour, Checks: checks})
	c.Check(context.Background())
	return c.Handler(HandlerConfig{Authorizer: BearerToken("tok")})
}

// discardWriter is a ResponseWriter that keeps nothing, to measure the
// handler alone.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func BenchmarkHandler(b *testing.B) {
	h := benchChecker(b)
	for _, path := range []string{"/health", "/health/ready", "/health/live", "/health/ready?exclude=llm"} {
		r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil)
		b.Run(path+"/recorder", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
		})
		b.Run(path+"/discard", func(b *testing.B) {
			b.ReportAllocs()
			w := &discardWriter{h: http.Header{}}
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
	r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/health/detailed", nil)
	r.Header.Set("Authorization", "Bearer tok")
	b.Run("/health/detailed/authorized", func(b *testing.B) {
		b.ReportAllocs()
		w := &discardWriter{h: http.Header{}}
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	})
}

// BenchmarkReadyParallel serves /health/ready from all Ps at once and
// reports the p99 latency of one request under that load.
func BenchmarkReadyParallel(b *testing.B) {
	h := benchChecker(b)
	var mu sync.Mutex
	var all []time.Duration
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/health/ready", nil)
		w := &discardWriter{h: http.Header{}}
		lat := make([]time.Duration, 0, 1<<16)
		for pb.Next() {
			t0 := time.Now()
			h.ServeHTTP(w, r)
			if len(lat) < cap(lat) {
				lat = append(lat, time.Since(t0))
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	reportPercentiles(b, all, time.Nanosecond, "ns")
}

// BenchmarkServerLoad serves /health/ready over real loopback HTTP with 4×GOMAXPROCS
// concurrent keep-alive clients and reports p50 and p99 round trips.
func BenchmarkServerLoad(b *testing.B) {
	srv := httptest.NewServer(benchChecker(b))
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := srv.URL + "/health/ready"
	var mu sync.Mutex
	var all []time.Duration
	b.ReportAllocs()
	b.SetParallelism(4) // 4 × GOMAXPROCS clients
	b.RunParallel(func(pb *testing.PB) {
		var lat []time.Duration
		buf := make([]byte, 64)
		for pb.Next() {
			t0 := time.Now()
			resp, err := client.Get(url)
			if err != nil {
				panic(fmt.Sprint("GET: ", err))
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			_ = resp.Body.Close()
			lat = append(lat, time.Since(t0))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	reportPercentiles(b, all, time.Microsecond, "µs")
}

// reportPercentiles reports the p99 and p50 of lat in unit, named p99-<name>
// and p50-<name>.
func reportPercentiles(b *testing.B, lat []time.Duration, unit time.Duration, name string) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100]/unit), "p99-"+name)
	b.ReportMetric(float64(lat[len(lat)/2]/unit), "p50-"+name)
}
