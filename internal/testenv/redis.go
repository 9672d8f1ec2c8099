package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisURL is used when REDIS_URL is not set.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// RedisURL returns REDIS_URL or DefaultRedisURL.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return DefaultRedisURL
}

// Redis returns a client of the shared Redis at RedisURL and a key prefix
// unique to this test ("t:<name>:<random>:"). Every key under the prefix is
// removed, and the client closed, when the test ends. The test fails at once
// with a clear message when Redis does not answer.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	url := RedisURL()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("testenv: REDIS_URL %q: %v", url, err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		t.Fatalf("testenv: Redis not reachable at %s: %v (start it with: redis-server --daemonize yes --port 6379 --save \"\", or set REDIS_URL; ./scripts/test starts it)", url, err)
	}
	prefix := Prefix(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeletePrefix(ctx, c, prefix); err != nil {
			t.Errorf("testenv: removing keys %s*: %v", prefix, err)
		}
		_ = c.Close()
	})
	return c, prefix
}

// Prefix returns a key prefix unique to this test run: "t:<test>:<random>:".
// Glob characters in the test name are replaced so the prefix can be used in
// a SCAN MATCH pattern as it is.
func Prefix(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		switch r {
		case '*', '?', '[', ']', '\\', ' ', ':', '/':
			return '_'
		}
		return r
	}, t.Name())
	return "t:" + name + ":" + randHex(4) + ":"
}

// DeletePrefix removes every key that starts with prefix, on every master when
// c is a cluster client. prefix must hold no glob characters.
func DeletePrefix(ctx context.Context, c redis.UniversalClient, prefix string) error {
	del := func(ctx context.Context, n redis.UniversalClient) error {
		iter := n.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 500 {
				if err := unlinkEach(ctx, n, batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return unlinkEach(ctx, n, batch)
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return del(ctx, n) })
	}
	return del(ctx, c)
}

// unlinkEach unlinks keys one command each in a pipeline, so keys of
// different cluster slots never meet in one command.
func unlinkEach(ctx context.Context, c redis.UniversalClient, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Unlink(ctx, k)
		}
		return nil
	})
	return err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
