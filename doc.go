// Package perfkit is the root of a toolkit that makes a Go service fast and
// hard to knock over; its one helper builds the Redis clients the other
// packages share:
//
//	opt, err := perfkit.RedisOptions(os.Getenv("REDIS_URL")) // redis://host:6379/0
//	if err != nil {
//		return err
//	}
//	rdb := redis.NewClient(opt)
//	c, err := cache.New(cache.Config{Redis: rdb, KeyPrefix: "servio:"})
//	// ...
//	limits, err := ratelimit.NewGroup(ratelimit.Config{Redis: rdb})
//	// ...
//	hc, err := health.New(health.Config{Checks: []health.Check{
//		{Name: "redis", Critical: true, Run: health.Redis(rdb)},
//	}})
//
// The packages, each usable alone:
//
//   - cache: two-tier read-through cache (in-process L1, Redis L2);
//   - httpclient: a pooled *http.Client with retry, breaker and metrics;
//   - resilience: retry, circuit breaker, timeout, bulkhead, rate limit and
//     fallback as generic wrappers;
//   - ratelimit: tiered rate limits, exact across instances on Redis;
//   - metrics: OpenTelemetry setup and call tracking;
//   - health: health checks served as Kubernetes-style probes;
//   - dbpool: a tuned and watched database/sql pool.
//
// They share one vocabulary — the same name, type, unit and default for a
// breaker setting, a retry count, a jitter, a timeout, a key prefix, a
// config type, an error or a metric — written down in docs/VOCABULARY.md
// (https://github.com/servio/perfkit/blob/main/docs/VOCABULARY.md).
package perfkit
