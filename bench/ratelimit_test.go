package bench

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/servio/perfkit/ratelimit"
	"github.com/ulule/limiter/v3"
	ulmemory "github.com/ulule/limiter/v3/drivers/store/memory"
	ulredis "github.com/ulule/limiter/v3/drivers/store/redis"
	"go.opentelemetry.io/otel/metric/noop"
	"golang.org/x/time/rate"
)

// Limits roomy enough that no benchmark is ever denied: every library
// does the work of an allowed decision.
const (
	rlRate   = 1 << 30
	rlPeriod = time.Hour
	rlKey    = "203.0.113.9"
)

// xtimeKeyed is what a service must write around x/time/rate to limit per
// key: a mutex-guarded map of limiters (no eviction).
type xtimeKeyed struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func (x *xtimeKeyed) allow(key string) bool {
	x.mu.Lock()
	l := x.m[key]
	if l == nil {
		l = rate.NewLimiter(rate.Every(rlPeriod/rlRate), rlRate)
		x.m[key] = l
	}
	x.mu.Unlock()
	return l.Allow()
}

// localLimiter is perfkit's in-memory limiter: a Group without Redis.
func localLimiter() (ratelimit.TieredLimiter, error) {
	g, err := ratelimit.NewGroup(ratelimit.Config{MeterProvider: noop.NewMeterProvider()})
	if err != nil {
		return nil, err
	}
	return g.Limiter(ratelimit.Tier{Name: "bench", Limit: ratelimit.Limit{Rate: rlRate, Period: rlPeriod, Burst: rlRate}})
}

// BenchmarkRateLimitLocal: one in-memory decision on a hot key.
func BenchmarkRateLimitLocal(b *testing.B) {
	ctx := context.Background()
	pk, err := localLimiter()
	if err != nil {
		b.Fatal(err)
	}
	single := rate.NewLimiter(rate.Every(rlPeriod/rlRate), rlRate)
	keyed := &xtimeKeyed{m: map[string]*rate.Limiter{}}
	ul := limiter.New(ulmemory.NewStore(), limiter.Rate{Period: rlPeriod, Limit: rlRate})

	b.Run("perfkit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, _ := pk.Allow(ctx, rlKey); !r.Allowed {
				b.Fatal("denied")
			}
		}
	})
	b.Run("x-time-rate-single", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !single.Allow() {
				b.Fatal("denied")
			}
		}
	})
	b.Run("x-time-rate-keyed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !keyed.allow(rlKey) {
				b.Fatal("denied")
			}
		}
	})
	b.Run("ulule-memory", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c, _ := ul.Get(ctx, rlKey); c.Reached {
				b.Fatal("denied")
			}
		}
	})
}

// BenchmarkRateLimitLocalParallel: the same on both cores at once.
func BenchmarkRateLimitLocalParallel(b *testing.B) {
	ctx := context.Background()
	pk, err := localLimiter()
	if err != nil {
		b.Fatal(err)
	}
	keyed := &xtimeKeyed{m: map[string]*rate.Limiter{}}
	ul := limiter.New(ulmemory.NewStore(), limiter.Rate{Period: rlPeriod, Limit: rlRate})
	b.Run("perfkit", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = pk.Allow(ctx, rlKey)
			}
		})
	})
	b.Run("x-time-rate-keyed", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = keyed.allow(rlKey)
			}
		})
	})
	b.Run("ulule-memory", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = ul.Get(ctx, rlKey)
			}
		})
	})
}

// redisPeers is what both Redis benchmarks decide with: a bare EVALSHA of
// a script that only returns four numbers, perfkit's GCRA limiter,
// redis_rate and ulule, each on its own client of the same options.
type redisPeers struct {
	prefix  string
	client  func() *redis.Client
	bare    *redis.Script
	bc      *redis.Client
	pk      *ratelimit.Redis
	rr      *redis_rate.Limiter
	rrLimit redis_rate.Limit
	ul      *limiter.Limiter
}

func newRedisPeers(b *testing.B) *redisPeers {
	b.Helper()
	_, prefix := testenv.Redis(b)
	opt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		b.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	p := &redisPeers{prefix: prefix, bare: redis.NewScript(`return {1, 2, 3, 4}`),
		rrLimit: redis_rate.Limit{Rate: rlRate, Burst: rlRate, Period: rlPeriod}}
	p.client = func() *redis.Client {
		c := redis.NewClient(opt)
		b.Cleanup(func() { _ = c.Close() })
		return c
	}
	p.bc = p.client()
	if err := p.bare.Load(context.Background(), p.bc).Err(); err != nil {
		b.Fatal(err)
	}
	if p.pk, err = p.perfkit("pk:", ratelimit.Tier{Name: "bench", Limit: ratelimit.Limit{Rate: rlRate, Period: rlPeriod, Burst: rlRate}}); err != nil {
		b.Fatal(err)
	}
	p.rr = redis_rate.NewLimiter(p.client())
	ulStore, err := ulredis.NewStoreWithOptions(p.client(), limiter.StoreOptions{Prefix: prefix + "ul"})
	if err != nil {
		b.Fatal(err)
	}
	p.ul = limiter.New(ulStore, limiter.Rate{Period: rlPeriod, Limit: rlRate})
	return p
}

// perfkit returns a perfkit limiter of tier on a client of its own, its
// keys under the benchmark's prefix + sub.
func (p *redisPeers) perfkit(sub string, tier ratelimit.Tier) (*ratelimit.Redis, error) {
	return ratelimit.NewRedis(ratelimit.Config{Redis: p.client(), KeyPrefix: p.prefix + sub, RedisTimeout: time.Second,
		Logger: slog.New(slog.DiscardHandler), MeterProvider: noop.NewMeterProvider()}, tier)
}

// BenchmarkRateLimitRedis: one decision on the shared Redis, each library
// with its own client of the same options, against a bare EVALSHA of a
// script that only returns four numbers.
func BenchmarkRateLimitRedis(b *testing.B) {
	p := newRedisPeers(b)
	ctx, prefix, bare, bc, pk, rr, rrLimit, ul := context.Background(), p.prefix, p.bare, p.bc, p.pk, p.rr, p.rrLimit, p.ul
	pkSliding, err := p.perfkit("pks:", ratelimit.Tier{Name: "bench", Limit: ratelimit.Limit{Rate: rlRate, Period: rlPeriod}, Algorithm: ratelimit.SlidingWindow})
	if err != nil {
		b.Fatal(err)
	}

	b.Run("bare-evalsha", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := bare.EvalSha(ctx, bc, []string{prefix + "bare"}, 1, 1000, 100).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("perfkit-gcra", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, err := pk.Allow(ctx, rlKey); err != nil || !r.Allowed {
				b.Fatal(r, err)
			}
		}
	})
	b.Run("perfkit-sliding", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, err := pkSliding.Allow(ctx, rlKey); err != nil || !r.Allowed {
				b.Fatal(r, err)
			}
		}
	})
	b.Run("redis_rate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, err := rr.Allow(ctx, prefix+"rr:"+rlKey, rrLimit); err != nil || r.Allowed == 0 {
				b.Fatal(r, err)
			}
		}
	})
	b.Run("ulule-redis", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c, err := ul.Get(ctx, rlKey); err != nil || c.Reached {
				b.Fatal(c, err)
			}
		}
	})
}

// BenchmarkRateLimitRedisPaired interleaves the libraries op by op (bare
// EVALSHA, perfkit GCRA, redis_rate, ulule) so that all see the same load on
// a shared machine, and reports each one's median round trip and perfkit's
// ratio to the others. ns/op is the time of all four together.
func BenchmarkRateLimitRedisPaired(b *testing.B) {
	p := newRedisPeers(b)
	ctx, prefix, bare, bc, pk, rr, rrLimit, ul := context.Background(), p.prefix, p.bare, p.bc, p.pk, p.rr, p.rrLimit, p.ul
	ops := []struct {
		name string
		do   func() error
	}{
		{"bare-evalsha", func() error { return bare.EvalSha(ctx, bc, []string{prefix + "bare"}, 1, 1000, 100).Err() }},
		{"perfkit-gcra", func() error { _, err := pk.Allow(ctx, rlKey); return err }},
		{"redis_rate", func() error { _, err := rr.Allow(ctx, prefix+"rr:"+rlKey, rrLimit); return err }},
		{"ulule-redis", func() error { _, err := ul.Get(ctx, rlKey); return err }},
	}
	times := make([][]time.Duration, len(ops))
	b.ReportAllocs()
	for b.Loop() {
		for i, op := range ops {
			start := time.Now()
			if err := op.do(); err != nil {
				b.Fatal(op.name, err)
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	med := make([]float64, len(ops))
	for i, ts := range times {
		slices.Sort(ts)
		med[i] = float64(ts[len(ts)/2].Nanoseconds())
		b.ReportMetric(med[i], op50(ops[i].name))
	}
	b.ReportMetric(med[1]/med[0], "perfkit/bare")
	b.ReportMetric(med[1]/med[2], "perfkit/redis_rate")
	b.ReportMetric(med[1]/med[3], "perfkit/ulule")
}

func op50(name string) string { return name + "-p50-ns" }
