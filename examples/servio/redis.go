package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// newRedis builds the client REDIS_URL describes: a redis:// or rediss://
// URL for one server, or a comma-separated list of cluster nodes (host:port
// or URLs). Every client has ContextTimeoutEnabled so the per-call deadlines
// of the cache and the rate limiter hold on the socket too, and fails fast
// when Redis is down: one dial per attempt (go-redis would retry a refused
// dial 5 times 100 ms apart) and, for one server, one command retry 1–4 ms
// later (instead of 3 with up to 512 ms between). A call to a dead Redis
// then fails in a few milliseconds and the breakers open after their first
// failures instead of after as many 50–100 ms deadlines; the one retry
// still replaces a pooled connection Redis dropped when it restarted. A
// cluster client keeps its own retry policy (its node clients do not
// retry; it redirects and reloads the slot map between attempts).
func newRedis(raw string) (redis.UniversalClient, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	if !strings.Contains(raw, ",") && strings.Contains(raw, "://") {
		opt, err := parseRedisURL(raw)
		if err != nil {
			return nil, err
		}
		opt.ContextTimeoutEnabled = true
		opt.DialerRetries, opt.MaxRetries, opt.MinRetryBackoff, opt.MaxRetryBackoff = fastFail()
		return redis.NewClient(opt), nil
	}
	opt := &redis.ClusterOptions{ContextTimeoutEnabled: true, DialerRetries: 1}
	for _, node := range strings.Split(raw, ",") {
		node = strings.TrimSpace(node)
		if node == "" {
			continue
		}
		if strings.Contains(node, "://") {
			o, err := parseRedisURL(node)
			if err != nil {
				return nil, err
			}
			if o.TLSConfig != nil {
				opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			opt.Username, opt.Password = o.Username, o.Password
			node = o.Addr
		}
		if _, _, err := net.SplitHostPort(node); err != nil {
			return nil, fmt.Errorf("REDIS_URL node %q: want host:port", node)
		}
		opt.Addrs = append(opt.Addrs, node)
	}
	if len(opt.Addrs) == 0 {
		return nil, fmt.Errorf("REDIS_URL names no node")
	}
	return redis.NewClusterClient(opt), nil
}

// fastFail is newRedis's dial and retry policy: DialerRetries, MaxRetries,
// MinRetryBackoff, MaxRetryBackoff.
func fastFail() (int, int, time.Duration, time.Duration) {
	return 1, 1, time.Millisecond, 4 * time.Millisecond
}

// parseRedisURL is redis.ParseURL with errors that keep the password out
// of logs: they name the URL redacted, and drop *url.Error's quote of it.
func parseRedisURL(raw string) (*redis.Options, error) {
	opt, err := redis.ParseURL(raw)
	if err == nil {
		return opt, nil
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	return nil, fmt.Errorf("REDIS_URL %s: %w", redactURL(raw), err)
}

// redactURL returns raw with its password masked, for logs and messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(malformed URL)"
	}
	return u.Redacted()
}
