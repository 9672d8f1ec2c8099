package cache_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/internal/testenv"
)

type benchMenu struct {
	Restaurant int      `json:"restaurant"`
	Items      []string `json:"items"`
	Prices     []int    `json:"prices"`
}

var sampleMenu = benchMenu{
	Restaurant: 42,
	Items:      []string{"pho", "banh mi", "bun cha", "goi cuon", "com tam", "cao lau", "mi quang", "che"},
	Prices:     []int{1200, 800, 1100, 600, 1000, 1300, 1250, 500},
}

func loadSample(context.Context) (benchMenu, error) { return sampleMenu, nil }

func benchCache(b *testing.B, cfg cache.Config) *cache.Cache {
	b.Helper()
	cfg.Logger = quiet
	c, err := cache.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// BenchmarkGetOrSetL1Hit is the hot path: 0 allocs/op.
func BenchmarkGetOrSetL1Hit(b *testing.B) {
	c := benchCache(b, cache.Config{})
	ctx := context.Background()
	if _, err := cache.GetOrSet(ctx, c, "menu:42", 0, loadSample); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cache.GetOrSet(ctx, c, "menu:42", 0, loadSample); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetOrSetL1HitParallel(b *testing.B) {
	c := benchCache(b, cache.Config{})
	ctx := context.Background()
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "menu:" + strconv.Itoa(i)
		_ = cache.Set(ctx, c, keys[i], sampleMenu, 0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _ = cache.GetOrSet(ctx, c, keys[i&63], 0, loadSample)
			i++
		}
	})
}

func BenchmarkCacheableL1Hit(b *testing.B) {
	c := benchCache(b, cache.Config{})
	ctx := context.Background()
	keys := map[int]string{42: "menu:42"}
	get := cache.Cacheable(c, func(id int) string { return keys[id] }, 0,
		func(_ context.Context, id int) (benchMenu, error) { return sampleMenu, nil })
	_, _ = get(ctx, 42)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := get(ctx, 42); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetOrSetMiss measures the miss path of an L1-only cache: the
// singleflight goroutine, the loader and the L1 fill.
func BenchmarkGetOrSetMiss(b *testing.B) {
	c := benchCache(b, cache.Config{MaxEntries: 1 << 20})
	ctx := context.Background()
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = cache.GetOrSet(ctx, c, keys[i%len(keys)], 0, loadSample)
		i++
	}
}

// BenchmarkL2Hit runs against the shared Redis with L1 effectively off
// (L1TTL 1 ns), so every read is one GET + decode + L1 fill.
func BenchmarkL2Hit(b *testing.B) {
	rdb, prefix := testenv.Redis(b)
	c := benchCache(b, cache.Config{Redis: rdb, KeyPrefix: prefix, L1TTL: time.Nanosecond, TTLJitter: -1, DisablePubSub: true})
	ctx := context.Background()
	if err := cache.Set(ctx, c, "menu:42", sampleMenu, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Run("GetOrSet", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cache.GetOrSet(ctx, c, "menu:42", time.Hour, loadSample); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cache.Get[benchMenu](ctx, c, "menu:42"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGetMany100(b *testing.B) {
	rdb, prefix := testenv.Redis(b)
	c := benchCache(b, cache.Config{Redis: rdb, KeyPrefix: prefix, L1TTL: time.Nanosecond, TTLJitter: -1, DisablePubSub: true})
	ctx := context.Background()
	items := make(map[string]benchMenu, 100)
	keys := make([]string, 0, 100)
	for i := range 100 {
		k := fmt.Sprint("menu:", i)
		items[k] = sampleMenu
		keys = append(keys, k)
	}
	if err := cache.SetMany(ctx, c, items, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := cache.GetMany[benchMenu](ctx, c, keys)
		if err != nil || len(got) != 100 {
			b.Fatal(err, len(got))
		}
	}
}

func BenchmarkSet(b *testing.B) {
	c := benchCache(b, cache.Config{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = cache.Set(ctx, c, "menu:42", sampleMenu, 0)
	}
}
