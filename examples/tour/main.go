// Command tour is the README's 30-second tour of perfkit, runnable: one
// service method wrapped the way Servio's TypeScript decorators wrapped it
// (@Track, @Cacheable, @Retry, @Timeout, @RateLimit, @Memoize), here as
// generic Go wrappers that compose by nesting.
//
//	go run ./examples/tour
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/metrics"
	"github.com/servio/perfkit/ratelimit"
	"github.com/servio/perfkit/resilience"
)

// Menu is what the service method returns.
type Menu struct {
	Restaurant int      `json:"restaurant"`
	Dishes     []string `json:"dishes"`
}

func main() {
	if err := tour(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func tour(ctx context.Context) error {
	loads := 0
	// The method to speed up and protect: in Servio, a database query.
	loadMenu := func(ctx context.Context, restaurant int) (Menu, error) {
		loads++
		return Menu{Restaurant: restaurant, Dishes: []string{"Margherita", "Tiramisu"}}, nil
	}

	// An L1-only cache; give Config.Redis a go-redis client for the shared L2.
	c, err := cache.New(cache.Config{})
	if err != nil {
		return err
	}
	defer c.Close()
	// A rate-limit group without Redis keeps its limiters in memory; give
	// Config.Redis a go-redis client to share limits across instances.
	rl, err := ratelimit.NewGroup(ratelimit.Config{})
	if err != nil {
		return err
	}
	limiter, err := rl.Limiter(ratelimit.Tiers().API) // 60/min per key
	if err != nil {
		return err
	}

	// Innermost first: retry the load, bound it in time, cache it, limit
	// callers per restaurant, and track every call (duration + errors).
	getMenu := resilience.Retry1(resilience.RetryConfig{MaxAttempts: 3}, loadMenu)
	getMenu = resilience.Timeout1(2*time.Second, getMenu)
	getMenu = cache.Cacheable(c, func(r int) string { return fmt.Sprint("menu:", r) }, 5*time.Minute, getMenu)
	getMenu = ratelimit.Wrap1(limiter, func(r int) string { return fmt.Sprint("restaurant:", r) }, getMenu)
	getMenu = metrics.Track1("menu.get", getMenu)

	for range 3 {
		m, err := getMenu(ctx, 42)
		if err != nil {
			return err
		}
		fmt.Println(m.Restaurant, m.Dishes)
	}
	fmt.Println("loads:", loads) // 1: the other two calls were L1 hits

	// @Memoize: a process-local memo of a function with no arguments.
	version := cache.Memoize(time.Minute, func(context.Context) (string, error) { return "v1", nil })
	v, err := version(ctx)
	fmt.Println("version:", v)
	return err
}
