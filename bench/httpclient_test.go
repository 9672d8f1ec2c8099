package bench

import (
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/servio/perfkit/httpclient"
)

// httpConcurrency is the number of goroutines issuing requests.
const httpConcurrency = 50

// loopback is a local HTTP server that counts accepted connections.
type loopback struct {
	*httptest.Server
	conns atomic.Int64
}

func newLoopback(b *testing.B, h http.HandlerFunc) *loopback {
	b.Helper()
	l := &loopback{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			l.conns.Add(1)
		}
	}
	srv.Start()
	b.Cleanup(srv.Close)
	l.Server = srv
	return l
}

// httpPeer issues one GET and reports whether it ended in a 200.
type httpPeer struct {
	name  string
	get   func(url string) (int, error)
	close func()
}

func stdGet(c *http.Client) func(string) (int, error) {
	return func(url string) (int, error) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
}

// httpPeers builds each client with its own defaults, changing only what a
// benchmark needs (retry waits of 1 µs so a storm measures connections, not
// sleeping; 503 as a retry condition where the library does not retry
// statuses by default).
func httpPeers(b *testing.B, retries int) []httpPeer {
	return httpPeersTLS(b, retries, nil)
}

// httpPeersTLS is httpPeers with every client trusting tlsConf's roots
// (nil: plain HTTP).
func httpPeersTLS(b *testing.B, retries int, tlsConf *tls.Config) []httpPeer {
	b.Helper()
	quiet := slog.New(slog.DiscardHandler)

	// retries 0 keeps the default (3 attempts): the retry layer's cost is
	// part of the stack measured.
	attempts := 0
	if retries > 0 {
		attempts = retries + 1
	}
	pk, err := httpclient.New(httpclient.Config{
		TLSClientConfig: tlsConf,
		Logger:          quiet,
		Retry:           httpclient.RetryConfig{MaxAttempts: attempts, BaseDelay: time.Microsecond, MaxDelay: time.Microsecond},
		// The storm is the point of the retry benchmark, not a reason to trip.
		Breaker: httpclient.BreakerConfig{ConsecutiveFailures: 1 << 30},
		// Nor a reason to throttle: the peers have no client-side throttle,
		// and a 50 % 503 storm sits exactly at the throttle's K=2 threshold.
		DisableThrottle: true,
	})
	if err != nil {
		b.Fatal(err)
	}

	defTr := http.DefaultTransport.(*http.Transport).Clone()
	defTr.TLSClientConfig = tlsConf
	def := &http.Client{Transport: defTr}

	rh := retryablehttp.NewClient()
	rh.Logger = nil
	rh.RetryMax = max(retries, 0)
	rh.RetryWaitMin, rh.RetryWaitMax = time.Microsecond, time.Microsecond
	if tlsConf != nil {
		rh.HTTPClient.Transport.(*http.Transport).TLSClientConfig = tlsConf
	}

	rs := resty.New().
		SetRetryCount(max(retries, 0)).
		SetRetryWaitTime(time.Microsecond).
		SetRetryMaxWaitTime(time.Microsecond).
		AddRetryCondition(func(r *resty.Response, _ error) bool { return r.StatusCode() == http.StatusServiceUnavailable })
	if tlsConf != nil {
		rs.SetTLSClientConfig(tlsConf)
	}

	return []httpPeer{
		{"perfkit", stdGet(pk), pk.CloseIdleConnections},
		{"default", stdGet(def), def.CloseIdleConnections},
		{"retryablehttp", func(url string) (int, error) {
			resp, err := rh.Get(url)
			if err != nil {
				return 0, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}, rh.HTTPClient.CloseIdleConnections},
		{"resty", func(url string) (int, error) {
			resp, err := rs.R().Get(url)
			if err != nil {
				return 0, err
			}
			return resp.StatusCode(), nil
		}, rs.GetClient().CloseIdleConnections},
	}
}

// runHTTP drives get at httpConcurrency goroutines and reports connections
// opened in total ("conns", warm-up included) and new connections per 1,000
// requests once warm (after httpConcurrency×20 warm-up requests).
func runHTTP(b *testing.B, srv *loopback, p httpPeer) {
	b.Cleanup(p.close)
	url := srv.URL + "/v1/items/1"
	srv.conns.Store(0)
	warm(func() { _, _ = p.get(url) })
	warmConns := srv.conns.Load()
	var failed atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(max(1, httpConcurrency/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			code, err := p.get(url)
			if err != nil || code != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	total := srv.conns.Load()
	b.ReportMetric(float64(total), "conns")
	b.ReportMetric(float64(total-warmConns)*1000/float64(b.N), "warm-conns/1k-req")
	b.ReportMetric(float64(failed.Load())*100/float64(b.N), "%failed")
}

// BenchmarkHTTPClientGet: 50 goroutines GET a small JSON body from one
// loopback host, each client with its library defaults.
func BenchmarkHTTPClientGet(b *testing.B) {
	for _, p := range httpPeers(b, 0) {
		b.Run(p.name, func(b *testing.B) {
			srv := newLoopback(b, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":1,"name":"margherita","price":950}`)
			})
			runHTTP(b, srv, p)
		})
	}
}

// BenchmarkHTTPClientGetTLS is BenchmarkHTTPClientGet over HTTPS (HTTP/1.1,
// as many webhook receivers and API gateways speak it): every connection a
// client fails to keep costs a TLS handshake, as it does against a real
// upstream. Over HTTP/2 every client multiplexes on one connection and the
// idle pool stops mattering.
func BenchmarkHTTPClientGetTLS(b *testing.B) {
	l := &loopback{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":1,"name":"margherita","price":950}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			l.conns.Add(1)
		}
	}
	// Clients that drop connections mid-handshake make the server log; keep
	// the benchmark output parseable.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	b.Cleanup(srv.Close)
	l.Server = srv
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	for _, p := range httpPeersTLS(b, 0, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}) {
		b.Run(p.name, func(b *testing.B) { runHTTP(b, l, p) })
	}
}

// BenchmarkHTTPClient503Storm: the server answers a random half of the
// requests with 503 and an 8 KiB error page (a proxy's HTML page), so a
// logical request takes two attempts on average; every retrying client gets 10 retries with
// 1 µs waits (a request fails only after 11 straight 503s, ~0.05%). Counts show which clients keep their connections
// through the storm. "default" does not retry and is left out.
func BenchmarkHTTPClient503Storm(b *testing.B) {
	page := strings.Repeat("x", 8<<10)
	for _, p := range httpPeers(b, 10) {
		if p.name == "default" {
			continue
		}
		b.Run(p.name, func(b *testing.B) {
			srv := newLoopback(b, func(w http.ResponseWriter, _ *http.Request) {
				if rand.IntN(2) == 0 {
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = io.WriteString(w, page)
					return
				}
				_, _ = io.WriteString(w, `{"ok":true}`)
			})
			runHTTP(b, srv, p)
		})
	}
}

// warm runs do httpConcurrency×20 times from httpConcurrency goroutines.
func warm(do func()) {
	var wg sync.WaitGroup
	for range httpConcurrency {
		wg.Go(func() {
			for range 20 {
				do()
			}
		})
	}
	wg.Wait()
}
