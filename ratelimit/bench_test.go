package ratelimit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/ratelimit"
	"go.opentelemetry.io/otel/metric/noop"
)

// roomy never denies in a benchmark: a million a second, bursts of a billion.
var roomy = ratelimit.Tier{Name: "bench", Limit: ratelimit.Limit{Rate: 1_000_000, Period: time.Second, Burst: 1 << 30}}

func BenchmarkLocalAllow(b *testing.B) {
	l, err := ratelimit.NewInMemory(roomy, 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("hot-key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, _ := l.Allow(ctx, "203.0.113.9"); !r.Allowed {
				b.Fatal("denied")
			}
		}
	})
	b.Run("hot-key-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = l.Allow(ctx, "203.0.113.9")
			}
		})
	})
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
	}
	b.Run("4k-keys-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				_, _ = l.Allow(ctx, keys[i&4095])
				i++
			}
		})
	})
	deny, _ := ratelimit.NewInMemory(ratelimit.Tier{Name: "d", Limit: ratelimit.PerHour(1)}, 0)
	_, _ = deny.Allow(ctx, "k")
	b.Run("denied", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = deny.Allow(ctx, "k")
		}
	})
}

// benchWriter is a reusable ResponseWriter, so the benchmark measures the
// middleware, not a recorder.
type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(int)             {}

func BenchmarkMiddlewareAllow(b *testing.B) {
	for _, legacy := range []bool{false, true} {
		name := "ietf-headers"
		if legacy {
			name = "ietf+legacy-headers"
		}
		b.Run(name, func(b *testing.B) {
			l, err := ratelimit.NewInMemory(roomy, 0)
			if err != nil {
				b.Fatal(err)
			}
			mw, err := ratelimit.Middleware(l, ratelimit.MiddlewareConfig{LegacyHeaders: legacy, MeterProvider: noop.NewMeterProvider()})
			if err != nil {
				b.Fatal(err)
			}
			h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			r := httptest.NewRequest(http.MethodGet, "/orders/1", nil)
			r.RemoteAddr = "203.0.113.9:41234"
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkRedisDecision compares one GCRA decision with a bare EVALSHA of
// a script that only returns four numbers, on the same client.
func BenchmarkRedisDecision(b *testing.B) {
	c, prefix := sharedRedis(b)
	ctx := context.Background()
	b.Run("bare-evalsha", func(b *testing.B) {
		s := redis.NewScript(`return {1, 2, 3, 4}`)
		if err := s.Load(ctx, c).Err(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.EvalSha(ctx, c, []string{prefix + "bare"}, 1, 1000, 100).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, algo := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow, ratelimit.FixedWindow} {
		b.Run(algo.String(), func(b *testing.B) {
			t := roomy
			t.Name, t.Algorithm = "bench-"+algo.String(), algo
			t.Limit = ratelimit.Limit{Rate: 1 << 30, Period: time.Hour, Burst: 1 << 30}
			l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, KeyPrefix: prefix, RedisTimeout: time.Second, Logger: quiet(), MeterProvider: noop.NewMeterProvider()}, t)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if r, err := l.Allow(ctx, "203.0.113.9"); err != nil || !r.Allowed {
					b.Fatal(r, err)
				}
			}
		})
	}
	b.Run("gcra-2-tiers", func(b *testing.B) {
		t1, t2 := roomy, roomy
		t1.Name, t2.Name = "bench-2t-a", "bench-2t-b"
		l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, KeyPrefix: prefix, RedisTimeout: time.Second, Logger: quiet(), MeterProvider: noop.NewMeterProvider()}, t1, t2)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Allow(ctx, "203.0.113.9"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRedisPaired interleaves, op by op, a bare EVALSHA of a script
// that only returns four numbers, a bare EVALSHA of the GCRA script itself
// (same keys and arguments as a decision) and a full perfkit decision, so
// all three see the same machine load. It reports each one's median and
// the decision's ratio to both bare calls.
func BenchmarkRedisPaired(b *testing.B) {
	c, prefix := sharedRedis(b)
	ctx := context.Background()
	noopScript := redis.NewScript(`return {1, 2, 3, 4}`)
	gcra := redis.NewScript(ratelimit.DecideScript)
	for _, s := range []*redis.Script{noopScript, gcra} {
		if err := s.Load(ctx, c).Err(); err != nil {
			b.Fatal(err)
		}
	}
	t := roomy
	t.Limit = ratelimit.Limit{Rate: 1 << 30, Period: time.Hour, Burst: 1 << 30}
	l, err := ratelimit.NewRedis(ratelimit.Config{Redis: c, KeyPrefix: prefix, RedisTimeout: time.Second, Logger: quiet(), MeterProvider: noop.NewMeterProvider()}, t)
	if err != nil {
		b.Fatal(err)
	}
	em := float64(t.Limit.Period/time.Duration(t.Limit.Rate)) / float64(time.Microsecond)
	ops := []func() error{
		func() error { return noopScript.EvalSha(ctx, c, []string{prefix + "noop"}, 1, em, 1<<30).Err() },
		func() error { return gcra.EvalSha(ctx, c, []string{prefix + "{bare}:bench"}, 1, 0, em, 1<<30).Err() },
		func() error { _, err := l.Allow(ctx, "203.0.113.9"); return err },
	}
	times := make([][]time.Duration, len(ops))
	b.ReportAllocs()
	for b.Loop() {
		for i, op := range ops {
			start := time.Now()
			if err := op(); err != nil {
				b.Fatal(err)
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	med := make([]float64, len(ops))
	for i, ts := range times {
		slices.Sort(ts)
		med[i] = float64(ts[len(ts)/2].Nanoseconds())
	}
	b.ReportMetric(med[0], "noop-evalsha-p50-ns")
	b.ReportMetric(med[1], "gcra-evalsha-p50-ns")
	b.ReportMetric(med[2], "decision-p50-ns")
	b.ReportMetric(med[2]/med[1], "decision/gcra-evalsha")
	b.ReportMetric(med[2]/med[0], "decision/noop-evalsha")
}

// BenchmarkRedisDeadlineUnderLoad runs decisions (Global + API, as on
// Servio's API routes) from 64 goroutines at once, the load generator's
// default in-flight count, on the shared loopback Redis with the default
// Config.RedisTimeout. It reports the latency quantiles of a decision and how
// many ran out of the deadline (timeouts, which should stay 0): the figures
// DefaultRedisTimeout is sized from.
func BenchmarkRedisDeadlineUnderLoad(b *testing.B) {
	c, prefix := sharedRedis(b)
	g, err := ratelimit.NewGroup(ratelimit.Config{Redis: c, KeyPrefix: prefix, Logger: quiet(), MeterProvider: noop.NewMeterProvider()})
	if err != nil {
		b.Fatal(err)
	}
	global, api := ratelimit.Tiers().Global, ratelimit.Tiers().API
	global.Limit, api.Limit = roomy.Limit, roomy.Limit
	l, err := g.Limiter(global, api)
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism(max(64/runtime.GOMAXPROCS(0), 1))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ds []time.Duration
		for i := 0; pb.Next(); i++ {
			start := time.Now()
			if _, err := l.Allow(context.Background(), "10.0.0."+strconv.Itoa(i%200)); err != nil {
				b.Error(err)
			}
			ds = append(ds, time.Since(start))
		}
		mu.Lock()
		all = append(all, ds...)
		mu.Unlock()
	})
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) }
	b.ReportMetric(q(.5), "p50-ns")
	b.ReportMetric(q(.99), "p99-ns")
	b.ReportMetric(q(.999), "p99.9-ns")
	b.ReportMetric(q(1), "max-ns")
	b.ReportMetric(float64(g.Stats().Timeouts), "timeouts")
}
