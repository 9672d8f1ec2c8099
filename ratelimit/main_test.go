package ratelimit_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
)

// TestMain fails the package on leaked goroutines, waiting testenv.LeakWait
// for slow ones to end.
func TestMain(m *testing.M) { testenv.VerifyTestMain(m) }

// quiet is a logger for tests that provoke warnings on purpose.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// sharedRedis returns a client of the shared Redis that honours context
// deadlines, closed at the end of the test, and the test's key prefix.
func sharedRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	_, prefix := testenv.Redis(t)
	opt, err := perfkit.RedisOptions(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c, prefix
}

// attemptHook records the commands a client sends to Redis and, for each,
// how long its context still had to run when it started: the deadline the
// limiter applied, which is what the code controls, unlike wall-clock time
// on a loaded machine.
type attemptHook struct {
	mu   sync.Mutex
	cmds []attempt
}

type attempt struct {
	name     string        // "evalsha", "eval", "pipeline", or connection setup ("hello", ...)
	deadline bool          // the command's context had a deadline
	budget   time.Duration // time.Until(deadline) when the hook saw it
}

var _ redis.Hook = (*attemptHook)(nil)

func (h *attemptHook) record(ctx context.Context, name string) {
	var b time.Duration
	dl, ok := ctx.Deadline()
	if ok {
		b = time.Until(dl)
	}
	h.mu.Lock()
	h.cmds = append(h.cmds, attempt{name, ok, b})
	h.mu.Unlock()
}

// take returns the commands recorded since the last call and forgets them.
func (h *attemptHook) take() []attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cmds
	h.cmds = nil
	return c
}

func (h *attemptHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *attemptHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(ctx, cmd.Name())
		return next(ctx, cmd)
	}
}

func (h *attemptHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.record(ctx, "pipeline")
		return next(ctx, cmds)
	}
}

// decision reports whether c ran a decision script (not one of the
// commands go-redis sends to set up a new connection).
func (c attempt) decision() bool {
	return c.name == "evalsha" || c.name == "eval" || c.name == "pipeline"
}

// decisions counts the attempts that ran a decision script.
func decisions(cmds []attempt) int {
	n := 0
	for _, c := range cmds {
		if c.decision() {
			n++
		}
	}
	return n
}

// assertBudgets checks every command ran under a deadline of at most
// timeout, and that every decision started before its deadline. A
// connection's setup (hello, ...) is seen later: go-redis dials inside the
// decision's command, under its context, so on a busy machine the dial
// can use up the budget and the setup is issued with the deadline already
// past — and fails at once, which is the deadline honoured.
func assertBudgets(t *testing.T, cmds []attempt, timeout time.Duration) {
	t.Helper()
	for i, c := range cmds {
		assert.True(t, c.deadline, "command %d (%s) ran without a deadline", i, c.name)
		if c.decision() {
			assert.Positive(t, c.budget, "decision %d (%s) started past its deadline", i, c.name)
		}
		assert.LessOrEqual(t, c.budget, timeout, "command %d (%s): deadline further away than Config.RedisTimeout", i, c.name)
	}
}
