package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/redact"
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
// of logs: the URL is parsed by perfkit's redaction rules first (net/url's
// errors quote the raw URL and pieces of it, such as an "invalid port"
// that is really a password holding '/'), and go-redis's errors are
// redacted.
func parseRedisURL(raw string) (*redis.Options, error) {
	if _, err := redact.ParseURL(raw); err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL %s: %w", redactURL(raw), redact.Error(err))
	}
	return opt, nil
}

// redactURL returns raw with its secrets masked (userinfo, secret query
// parameters, webhook paths) by perfkit's one rule set, for logs and
// messages; it never fails, malformed URLs included.
func redactURL(raw string) string { return redact.URL(raw) }
