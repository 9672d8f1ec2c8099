package perfkit

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servio/perfkit/internal/redact"
)

// The go-redis settings RedisOptions and RedisClusterOptions recommend.
const (
	// RedisDialTimeout bounds one dial (TCP connect, TLS, AUTH/HELLO).
	// go-redis's default is 5 s.
	RedisDialTimeout = 2 * time.Second
	// RedisDialAttempts is go-redis's DialerRetries: dial attempts in
	// total, the first one included, so one refused or timed-out dial is
	// retried once. go-redis's default is 5 attempts 100 ms apart.
	RedisDialAttempts = 2
	// RedisDialRetryDelay is the pause before the second dial attempt.
	RedisDialRetryDelay = 10 * time.Millisecond
	// RedisMaxRetries is go-redis's MaxRetries for one server: a failed
	// command is retried once (it replaces a pooled connection Redis
	// dropped when it restarted). go-redis's default is 3.
	RedisMaxRetries = 1
	// RedisMinRetryBackoff is the shortest pause before that retry
	// (go-redis's default: 10 ms).
	RedisMinRetryBackoff = time.Millisecond
	// RedisMaxRetryBackoff is the longest pause before that retry
	// (go-redis's default: 1 s).
	RedisMaxRetryBackoff = 4 * time.Millisecond
	// RedisPoolTimeout bounds the wait for a pooled connection when every
	// one is busy and the call's context has no earlier deadline
	// (go-redis's default is ReadTimeout + 1 s).
	RedisPoolTimeout = time.Second
)

// RedisOptions parses a redis:// or rediss:// URL (redis.ParseURL) and
// returns options with the settings the toolkit needs; a setting the URL
// gives as a query parameter (dial_timeout=5s, max_retries=3, ...) is kept:
//
//   - ContextTimeoutEnabled, so a call's context deadline (cache's
//     RedisTimeout, a rate limiter's Timeout, a health check's timeout)
//     bounds the socket reads of a hung server too;
//   - DialTimeout RedisDialTimeout, and one dial attempt retried once
//     (DialerRetries RedisDialAttempts, RedisDialRetryDelay apart);
//   - MaxRetries RedisMaxRetries with a 1–4 ms backoff;
//   - PoolTimeout RedisPoolTimeout.
//
// With go-redis's defaults a refused dial is retried 5 times 100 ms apart
// and a command 3 times, so a call to a dead Redis spends its whole
// deadline (or, without ContextTimeoutEnabled, several seconds) before
// failing, and reports a timeout instead of "connection refused". With
// these options it fails in a few milliseconds with the dial error, and
// the breakers in front of Redis open after their first failures.
//
// Errors never quote the URL's password.
func RedisOptions(rawURL string) (*redis.Options, error) {
	if _, err := redact.ParseURL(rawURL); err != nil {
		return nil, fmt.Errorf("perfkit: redis URL: %w", err)
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("perfkit: redis URL %s: %w", redact.URL(rawURL), redact.Error(err))
	}
	opt.ContextTimeoutEnabled = true
	setIfZero(&opt.DialTimeout, RedisDialTimeout)
	setIfZero(&opt.DialerRetries, RedisDialAttempts)
	setIfZero(&opt.DialerRetryTimeout, RedisDialRetryDelay)
	setIfZero(&opt.MaxRetries, RedisMaxRetries)
	setIfZero(&opt.MinRetryBackoff, RedisMinRetryBackoff)
	setIfZero(&opt.MaxRetryBackoff, RedisMaxRetryBackoff)
	setIfZero(&opt.PoolTimeout, RedisPoolTimeout)
	return opt, nil
}

// RedisClusterOptions returns Redis Cluster options for the cluster nodes
// addrs (host:port) with the settings of RedisOptions, except MaxRetries:
// a cluster client retries through its own loop (MaxRedirects, default 3:
// on network errors and MOVED/ASK, reloading the slot map in between),
// which the 1–4 ms backoff paces. Set Username, Password and TLSConfig on
// the result as needed.
func RedisClusterOptions(addrs ...string) *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs:                 addrs,
		ContextTimeoutEnabled: true,
		DialTimeout:           RedisDialTimeout,
		DialerRetries:         RedisDialAttempts,
		DialerRetryTimeout:    RedisDialRetryDelay,
		MinRetryBackoff:       RedisMinRetryBackoff,
		MaxRetryBackoff:       RedisMaxRetryBackoff,
		PoolTimeout:           RedisPoolTimeout,
	}
}

func setIfZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}
