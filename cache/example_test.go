package cache_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servio/perfkit"
	"github.com/servio/perfkit/cache"
)

type Menu struct {
	Restaurant int
	Items      []string
}

// The Servio menu path: one key per restaurant, read through the cache,
// invalidated on writes. With Redis, pass cache.Config{Redis: rdb,
// KeyPrefix: "servio:"} and the Delete also clears every other instance's L1.
func Example() {
	ctx := context.Background()
	c, err := cache.New(cache.Config{})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	menuKey := func(restaurant int) string { return "menu:" + strconv.Itoa(restaurant) }
	getMenu := cache.Cacheable(c, menuKey, 5*time.Minute, func(ctx context.Context, restaurant int) (Menu, error) {
		fmt.Println("SELECT menu of", restaurant)
		return Menu{Restaurant: restaurant, Items: []string{"pho"}}, nil
	})

	m, _ := getMenu(ctx, 42)
	m, _ = getMenu(ctx, 42) // served from L1
	fmt.Println(m.Items)

	// POST /restaurants/42/menu: write the DB, then invalidate.
	_ = c.Delete(ctx, menuKey(42))
	m, _ = getMenu(ctx, 42)
	fmt.Println(m.Items, c.Stats().L1Hits)
	// Output:
	// SELECT menu of 42
	// [pho]
	// SELECT menu of 42
	// [pho] 1
}

// Orders carry a tag per restaurant, so one call drops every cached order
// of a restaurant, wherever it is cached.
func ExampleGetOrSet() {
	ctx := context.Background()
	c, _ := cache.New(cache.Config{})
	defer c.Close()

	type Order struct {
		ID     int
		Status string
	}
	load := func(ctx context.Context) (Order, error) { return Order{ID: 7, Status: "pending"}, nil }
	o, err := cache.GetOrSet(ctx, c, "order:7", time.Minute, load, cache.WithTags("restaurant:42"))
	fmt.Println(o, err)

	_, _ = c.InvalidateTags(ctx, "restaurant:42")
	_, err = cache.Get[Order](ctx, c, "order:7")
	fmt.Println(err)
	// Output:
	// {7 pending} <nil>
	// cache: miss
}

// LLM answers are expensive: key them by a hash of the prompt and keep
// them for a day.
func ExampleCacheable() {
	ctx := context.Background()
	c, _ := cache.New(cache.Config{})
	defer c.Close()

	promptKey := func(prompt string) string {
		sum := sha256.Sum256([]byte(prompt))
		return "llm:" + hex.EncodeToString(sum[:8])
	}
	ask := cache.Cacheable(c, promptKey, 24*time.Hour, func(ctx context.Context, prompt string) (string, error) {
		fmt.Println("calling the model")
		return "Try the pho.", nil
	})
	a, _ := ask(ctx, "What should I order?")
	a, _ = ask(ctx, "What should I order?")
	fmt.Println(a)
	// Output:
	// calling the model
	// Try the pho.
}

// Pattern invalidation takes a Redis glob; escape key parts that come from
// users.
func ExampleCache_InvalidatePattern() {
	ctx := context.Background()
	c, _ := cache.New(cache.Config{})
	defer c.Close()

	_ = cache.Set(ctx, c, "search:pho*:1", "page 1", 0)
	_ = cache.Set(ctx, c, "search:pho*:2", "page 2", 0)
	_ = cache.Set(ctx, c, "search:phoenix:1", "page 1", 0)
	_, _ = c.InvalidatePattern(ctx, "search:"+cache.EscapePattern("pho*")+":*")

	for _, k := range []string{"search:pho*:1", "search:pho*:2", "search:phoenix:1"} {
		_, err := cache.Get[string](ctx, c, k)
		fmt.Println(k, err == nil)
	}
	// Output:
	// search:pho*:1 false
	// search:pho*:2 false
	// search:phoenix:1 true
}

func ExampleMemoize() {
	ctx := context.Background()
	settings := cache.Memoize(time.Minute, func(ctx context.Context) (map[string]string, error) {
		fmt.Println("loading settings")
		return map[string]string{"currency": "EUR"}, nil
	})
	s, _ := settings(ctx)
	s, _ = settings(ctx)
	fmt.Println(s["currency"])
	// Output:
	// loading settings
	// EUR
}

// Wiring for a service with Redis (REDIS_URL: one URL, or a
// comma-separated list of cluster nodes), with the toolkit's go-redis
// options. Runs against the Redis at 127.0.0.1:6379.
func ExampleNew_redis() {
	redisURL := "redis://127.0.0.1:6379/0"
	var rdb redis.UniversalClient
	if strings.Contains(redisURL, ",") {
		rdb = redis.NewClusterClient(perfkit.RedisClusterOptions(strings.Split(redisURL, ",")...))
	} else {
		opt, err := perfkit.RedisOptions(redisURL) // ContextTimeoutEnabled: RedisTimeout bounds a hung server
		if err != nil {
			panic(err)
		}
		rdb = redis.NewClient(opt)
	}
	defer rdb.Close()

	c, err := cache.New(cache.Config{
		Redis:       rdb,
		KeyPrefix:   "example:cache:",
		StaleFor:    30 * time.Second, // serve stale menus while one refresh runs
		NegativeTTL: 10 * time.Second, // remember "no such order" briefly
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := cache.Set(ctx, c, "menu:42", "soup", time.Minute); err != nil {
		panic(err)
	}
	menu, err := cache.Get[string](ctx, c, "menu:42")
	fmt.Println(menu, err)
	// c.Delete / c.InvalidateTags on one instance also clear every other
	// instance's L1 through pub/sub.
	fmt.Println(c.Delete(ctx, "menu:42"))
	// Output:
	// soup <nil>
	// <nil>
}
