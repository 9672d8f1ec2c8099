package httpclient

import (
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

const benchConcurrency = 50

func benchServer(b *testing.B) *countingServer {
	return newCountingServer(b, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
}

func doGet(b *testing.B, c *http.Client, req *http.Request) {
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
	}
}

// runParallel drives c at benchConcurrency goroutines and reports the
// connections the server accepted in total ("conns", warm-up included) and
// per 1,000 requests after benchConcurrency×20 warm-up requests.
func runParallel(b *testing.B, srv *countingServer, c *http.Client) {
	b.Helper()
	b.Cleanup(c.CloseIdleConnections)
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/items/1", nil)
	if err != nil {
		b.Fatal(err)
	}
	req = req.WithContext(WithRoute(req.Context(), "/v1/items/{id}"))
	srv.conns.Store(0)
	var wg sync.WaitGroup
	for range benchConcurrency {
		wg.Go(func() {
			for range 20 {
				doGet(b, c, req)
			}
		})
	}
	wg.Wait()
	warmConns := srv.conns.Load()
	b.ReportAllocs()
	b.SetParallelism(max(1, benchConcurrency/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			doGet(b, c, req)
		}
	})
	b.StopTimer()
	total := srv.conns.Load()
	b.ReportMetric(float64(total), "conns")
	b.ReportMetric(float64(total-warmConns)*1000/float64(b.N), "warm-conns/1k-req")
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

type middlewareCase struct {
	name   string
	client func(testing.TB) *http.Client
}

// middlewareCases are the bare tuned transport as a caller would use it
// (http.Client.Timeout 30 s over Transport(Config{})) and New's full stack
// with a no-op and with a real SDK meter provider.
func middlewareCases() []middlewareCase {
	stack := func(mp metric.MeterProvider) func(testing.TB) *http.Client {
		return func(tb testing.TB) *http.Client {
			c, err := New(Config{MeterProvider: mp, Logger: quiet()})
			if err != nil {
				tb.Fatal(err)
			}
			return c
		}
	}
	return []middlewareCase{
		{"bare", func(testing.TB) *http.Client {
			return &http.Client{Transport: Transport(Config{}), Timeout: DefaultTimeout}
		}},
		{"stack-noop", stack(noop.NewMeterProvider())},
		{"stack-sdk", stack(sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())))},
	}
}

// BenchmarkMiddleware compares the full stack (retry, metrics, breaker) with
// the bare tuned transport at concurrency 50; "stack-sdk" records into a
// real OpenTelemetry SDK meter provider.
func BenchmarkMiddleware(b *testing.B) {
	for _, tc := range middlewareCases() {
		b.Run(tc.name, func(b *testing.B) {
			srv := benchServer(b)
			c := tc.client(b)
			runParallel(b, srv, c)
		})
	}
}

// BenchmarkMiddlewareSerial measures the same stacks one request at a time,
// where allocs/op are exact per request.
func BenchmarkMiddlewareSerial(b *testing.B) {
	for _, tc := range middlewareCases() {
		b.Run(tc.name, func(b *testing.B) {
			srv := benchServer(b)
			c := tc.client(b)
			b.Cleanup(c.CloseIdleConnections)
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/items/1", nil)
			if err != nil {
				b.Fatal(err)
			}
			req = req.WithContext(WithRoute(req.Context(), "/v1/items/{id}"))
			b.ReportAllocs()
			for b.Loop() {
				doGet(b, c, req)
			}
		})
	}
}

// BenchmarkIdlePool shows why MaxIdleConnsPerHost defaults to
// MaxConnsPerHost: at concurrency 50 a smaller idle pool closes the
// connections it cannot keep after each burst and dials them again.
func BenchmarkIdlePool(b *testing.B) {
	for _, idle := range []int{2, 10, 32, 50} {
		b.Run("idle="+strconv.Itoa(idle), func(b *testing.B) {
			srv := benchServer(b)
			c, err := New(Config{MaxIdleConnsPerHost: idle, DisableRetry: true, DisableBreaker: true, DisableMetrics: true})
			if err != nil {
				b.Fatal(err)
			}
			runParallel(b, srv, c)
		})
	}
}

// BenchmarkLayers measures the middleware alone over an in-memory
// RoundTripper that answers 200 at once, so the cost of the layers is not
// lost in loopback noise. "none" is the fake transport by itself.
func BenchmarkLayers(b *testing.B) {
	fake := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
	})
	sdk := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	build := func(timeout time.Duration, mp metric.MeterProvider) http.RoundTripper {
		c, err := New(Config{Base: fake, Timeout: timeout, MeterProvider: mp, Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		return c.Transport
	}
	cases := []struct {
		name string
		rt   http.RoundTripper
	}{
		{"none", fake},
		{"stack-noop", build(-1, noop.NewMeterProvider())},
		{"stack-sdk", build(-1, sdk)},
		{"stack-sdk+timeout", build(0, sdk)},
	}
	req, err := http.NewRequest(http.MethodGet, "http://api.example.com/v1/items/1", nil)
	if err != nil {
		b.Fatal(err)
	}
	req = req.WithContext(WithRoute(req.Context(), "/v1/items/{id}"))
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := tc.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
