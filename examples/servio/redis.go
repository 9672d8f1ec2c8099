package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit"
	"github.com/servio/perfkit/internal/redact"
)

// newRedis builds the client REDIS_URL describes: a redis:// or rediss://
// URL for one server, or a comma-separated list of cluster nodes (host:port
// or URLs). Both take the toolkit's go-redis settings
// (perfkit.RedisOptions, perfkit.RedisClusterOptions): ContextTimeoutEnabled
// so the per-call deadlines of the cache and the rate limiter hold on the
// socket too, and a fast failure when Redis is down (one dial retried
// once, one quick command retry), so the breakers open after their first
// failures instead of after as many 50–100 ms deadlines.
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
		return redis.NewClient(opt), nil
	}
	opt := perfkit.RedisClusterOptions()
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

// parseRedisURL is perfkit.RedisOptions, whose errors keep the password
// out of logs, with REDIS_URL named in its errors.
func parseRedisURL(raw string) (*redis.Options, error) {
	opt, err := perfkit.RedisOptions(raw)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return opt, nil
}

// redactURL returns raw with its secrets masked (userinfo, secret query
// parameters, webhook paths) by perfkit's one rule set, for logs and
// messages; it never fails, malformed URLs included.
func redactURL(raw string) string { return redact.URL(raw) }
