package ratelimit_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet is a logger for tests that provoke warnings on purpose.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// sharedRedis returns a client of the shared Redis that honours context
// deadlines, closed at the end of the test, and the test's key prefix.
func sharedRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	_, prefix := testenv.Redis(t)
	opt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c, prefix
}
