package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	gocache "github.com/go-redis/cache/v9"
	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"

	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/internal/benchcpu"
	"github.com/servio/perfkit/internal/testenv"
)

type cacheMenu struct {
	Restaurant int      `json:"restaurant"`
	Items      []string `json:"items"`
	Prices     []int    `json:"prices"`
}

var cacheSample = cacheMenu{
	Restaurant: 42,
	Items:      []string{"pho", "banh mi", "bun cha", "goi cuon", "com tam", "cao lau", "mi quang", "che"},
	Prices:     []int{1200, 800, 1100, 600, 1000, 1300, 1250, 500},
}

func loadCacheSample(context.Context) (cacheMenu, error) { return cacheSample, nil }

func newPerfkitCache(b *testing.B, cfg cache.Config) *cache.Cache {
	b.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := cache.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

func newRistretto(b *testing.B, entries int64) *ristretto.Cache[string, cacheMenu] {
	b.Helper()
	r, err := ristretto.NewCache(&ristretto.Config[string, cacheMenu]{
		NumCounters: entries * 10, MaxCost: entries, BufferItems: 64, IgnoreInternalCost: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	return r
}

// BenchmarkCacheL1Hit: an in-process hit on one key, perfkit's GetOrSet
// beside raw ristretto v2 Get (perfkit's own L1), otter v2 and
// go-redis/cache's local TinyLFU hit (which decodes msgpack every time).
func BenchmarkCacheL1Hit(b *testing.B) {
	ctx := context.Background()
	const key = "menu:42"
	b.Run("perfkit", func(b *testing.B) {
		c := newPerfkitCache(b, cache.Config{})
		if _, err := cache.GetOrSet(ctx, c, key, 0, loadCacheSample); err != nil {
			b.Fatal(err)
		}
		benchcpu.Loop(b, func() {
			if _, err := cache.GetOrSet(ctx, c, key, 0, loadCacheSample); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("ristretto", func(b *testing.B) {
		// With a TTL, as perfkit's L1 entries have (ristretto then reads
		// the clock on every Get).
		r := newRistretto(b, 100_000)
		r.SetWithTTL(key, cacheSample, 1, time.Minute)
		r.Wait()
		benchcpu.Loop(b, func() {
			if _, ok := r.Get(key); !ok {
				b.Fatal("miss")
			}
		})
	})
	b.Run("ristretto-noTTL", func(b *testing.B) {
		r := newRistretto(b, 100_000)
		r.Set(key, cacheSample, 1)
		r.Wait()
		benchcpu.Loop(b, func() {
			if _, ok := r.Get(key); !ok {
				b.Fatal("miss")
			}
		})
	})
	b.Run("otter", func(b *testing.B) {
		o, err := otter.New(&otter.Options[string, cacheMenu]{MaximumSize: 100_000})
		if err != nil {
			b.Fatal(err)
		}
		o.Set(key, cacheSample)
		benchcpu.Loop(b, func() {
			if _, ok := o.GetIfPresent(key); !ok {
				b.Fatal("miss")
			}
		})
	})
	b.Run("go-redis-cache", func(b *testing.B) {
		rdb, prefix := testenv.Redis(b)
		gc := gocache.New(&gocache.Options{Redis: rdb, LocalCache: gocache.NewTinyLFU(100_000, time.Minute)})
		if err := gc.Set(&gocache.Item{Ctx: ctx, Key: prefix + key, Value: cacheSample, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
		benchcpu.Loop(b, func() {
			var m cacheMenu
			if err := gc.Get(ctx, prefix+key, &m); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkCacheL2Hit: a Redis hit. perfkit runs with L1 effectively off
// (L1TTL 1 ns) so every read is GET + header check + decode + L1 fill;
// the baseline is a raw go-redis GET + json.Unmarshal of the same value.
func BenchmarkCacheL2Hit(b *testing.B) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(b)
	const key = "menu:42"
	c := newPerfkitCache(b, cache.Config{Redis: rdb, KeyPrefix: prefix, L1TTL: time.Nanosecond, TTLJitter: -1, DisablePubSub: true})
	if err := cache.Set(ctx, c, key, cacheSample, time.Hour); err != nil {
		b.Fatal(err)
	}
	raw, _ := json.Marshal(cacheSample)
	if err := rdb.Set(ctx, prefix+"raw:"+key, raw, time.Hour).Err(); err != nil {
		b.Fatal(err)
	}
	gc := gocache.New(&gocache.Options{Redis: rdb})
	if err := gc.Set(&gocache.Item{Ctx: ctx, Key: prefix + "gc:" + key, Value: cacheSample, TTL: time.Hour}); err != nil {
		b.Fatal(err)
	}
	b.Run("perfkit-GetOrSet", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			if _, err := cache.GetOrSet(ctx, c, key, time.Hour, loadCacheSample); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("perfkit-Get", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			if _, err := cache.Get[cacheMenu](ctx, c, key); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("go-redis-GET+json", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			bs, err := rdb.Get(ctx, prefix+"raw:"+key).Bytes()
			if err != nil {
				b.Fatal(err)
			}
			var m cacheMenu
			if err := json.Unmarshal(bs, &m); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("go-redis-cache", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			var m cacheMenu
			if err := gc.Get(ctx, prefix+"gc:"+key, &m); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkCacheGetMany100: 100 keys from Redis, perfkit's GetMany (one
// pipeline, L1 off) beside 100 sequential GETs and a raw pipeline, all
// decoding JSON.
func BenchmarkCacheGetMany100(b *testing.B) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(b)
	c := newPerfkitCache(b, cache.Config{Redis: rdb, KeyPrefix: prefix, L1TTL: time.Nanosecond, TTLJitter: -1, DisablePubSub: true})
	items := make(map[string]cacheMenu, 100)
	keys := make([]string, 0, 100)
	raw, _ := json.Marshal(cacheSample)
	for i := range 100 {
		k := fmt.Sprint("menu:", i)
		items[k] = cacheSample
		keys = append(keys, k)
		if err := rdb.Set(ctx, prefix+"raw:"+k, raw, time.Hour).Err(); err != nil {
			b.Fatal(err)
		}
	}
	if err := cache.SetMany(ctx, c, items, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Run("perfkit", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			if got, err := cache.GetMany[cacheMenu](ctx, c, keys); err != nil || len(got) != 100 {
				b.Fatal(err, len(got))
			}
		})
	})
	b.Run("sequential-GET", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			for _, k := range keys {
				bs, err := rdb.Get(ctx, prefix+"raw:"+k).Bytes()
				if err != nil {
					b.Fatal(err)
				}
				var m cacheMenu
				if err := json.Unmarshal(bs, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("raw-pipeline", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Get(ctx, prefix+"raw:"+k)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			for _, cmd := range cmds {
				var m cacheMenu
				if err := json.Unmarshal([]byte(cmd.(*redis.StringCmd).Val()), &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	rawKeys := make([]string, len(keys))
	for i, k := range keys {
		rawKeys[i] = prefix + "raw:" + k
	}
	b.Run("raw-MGET", func(b *testing.B) {
		benchcpu.Loop(b, func() {
			vals, err := rdb.MGet(ctx, rawKeys...).Result()
			if err != nil {
				b.Fatal(err)
			}
			for _, v := range vals {
				var m cacheMenu
				if err := json.Unmarshal([]byte(v.(string)), &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("decode-only", func(b *testing.B) { // the JSON share of every row above
		benchcpu.Loop(b, func() {
			for range keys {
				var m cacheMenu
				if err := json.Unmarshal(raw, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkCacheZipf replays a Zipf-skewed stream over 1M keys against an
// L1 of 10k entries and reports the hit ratio (hit%), perfkit (L1-only
// GetOrSet) beside raw ristretto v2 with the same capacity (Get, Set on a
// miss).
func BenchmarkCacheZipf(b *testing.B) {
	const keySpace, capacity, draws = 1_000_000, 10_000, 1 << 21
	keys := make([]string, keySpace)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.01, 1, keySpace-1)
	stream := make([]int32, draws)
	for i := range stream {
		stream[i] = int32(z.Uint64())
	}
	ctx := context.Background()
	b.Run("perfkit", func(b *testing.B) {
		c := newPerfkitCache(b, cache.Config{MaxEntries: capacity, TTLJitter: -1})
		load := func(context.Context) (int, error) { return 1, nil }
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_, _ = cache.GetOrSet(ctx, c, keys[stream[i%draws]], 0, load)
			i++
		}
		st := c.Stats()
		b.ReportMetric(100*float64(st.L1Hits)/float64(i), "hit%")
	})
	b.Run("ristretto", func(b *testing.B) {
		r, err := ristretto.NewCache(&ristretto.Config[string, int]{
			NumCounters: capacity * 10, MaxCost: capacity, BufferItems: 64, IgnoreInternalCost: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		b.ReportAllocs()
		i, hits := 0, 0
		for b.Loop() {
			k := keys[stream[i%draws]]
			if _, ok := r.Get(k); ok {
				hits++
			} else {
				r.SetWithTTL(k, 1, 1, time.Minute)
			}
			i++
		}
		b.ReportMetric(100*float64(hits)/float64(i), "hit%")
	})
}
