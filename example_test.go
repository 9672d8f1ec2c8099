package perfkit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servio/perfkit"
	"github.com/servio/perfkit/cache"
)

// One Redis client with the toolkit's options, shared by the cache (and the
// rate limiter and health checks) of a service. Runs against the Redis at
// 127.0.0.1:6379.
func ExampleRedisOptions() {
	opt, err := perfkit.RedisOptions("redis://127.0.0.1:6379/0")
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	c, err := cache.New(cache.Config{Redis: rdb, KeyPrefix: "example:perfkit:", DisablePubSub: true})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	n, err := cache.GetOrSet(ctx, c, "answer", time.Minute, func(context.Context) (int, error) { return 42, nil })
	fmt.Println(n, err, opt.ContextTimeoutEnabled, opt.DialerRetries)
	_ = c.Delete(ctx, "answer")
	// Output: 42 <nil> true 2
}

// Options for a Redis Cluster, given its seed nodes.
func ExampleRedisClusterOptions() {
	opt := perfkit.RedisClusterOptions("10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379")
	opt.Password = "from-a-secret-store"
	rdb := redis.NewClusterClient(opt)
	defer rdb.Close()
	fmt.Println(len(opt.Addrs), opt.ContextTimeoutEnabled, opt.DialTimeout)
	// Output: 3 true 2s
}
