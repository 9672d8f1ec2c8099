package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestHangingCheckTimesOutWithoutLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const timeout = 100 * time.Millisecond
	clk := newClock() // advanced before each try, so no try reads a cached result
	c, err := New(Config{Logger: discard(), Now: clk.Now, Checks: []Check{{
		Name: "hang", Critical: true, Timeout: timeout,
		Run: func(ctx context.Context) Result { <-ctx.Done(); return Result{Err: ctx.Err()} },
	}}})
	require.NoError(t, err)
	// Best of three: a loaded CI machine can stall any one run past the
	// 50 ms slack, but a checker that waits longer than timeout + 50 ms by
	// design fails all three.
	var rep Report
	best := time.Hour
	for range 3 {
		clk.Add(time.Hour)
		t0 := time.Now()
		rep = c.Check(context.Background())
		took := time.Since(t0)
		assert.GreaterOrEqual(t, took, timeout)
		best = min(best, took)
		if best < timeout+50*time.Millisecond {
			break
		}
	}
	assert.Less(t, best, timeout+50*time.Millisecond, "Check must return within timeout + 50 ms")
	require.Len(t, rep.Checks, 1)
	assert.Equal(t, StatusFail, rep.Status)
	assert.Contains(t, rep.Checks[0].Output, "timed out after 100ms")
	c.Close()
}

func TestCheckIgnoringContextReturnsOnTime(t *testing.T) {
	release := make(chan struct{})
	clk := newClock()
	var runs atomic.Int32
	c := newTest(t, Config{Now: clk.Now, Checks: []Check{{
		Name: "stubborn", Timeout: 50 * time.Millisecond,
		Run: func(context.Context) Result { runs.Add(1); <-release; return Result{} },
	}}})
	t0 := time.Now()
	rep := c.Check(context.Background())
	// The check never returns until released, so any bound proves Check
	// does not wait for it; a generous one keeps a loaded CI machine quiet.
	assert.Less(t, time.Since(t0), time.Second)
	assert.Equal(t, StatusWarn, rep.Status, "a non-critical timeout warns")
	assert.Contains(t, rep.Checks[0].Output, "timed out")

	clk.Add(time.Hour)
	rep = c.Check(context.Background())
	assert.Contains(t, rep.Checks[0].Output, "previous run has not returned")
	assert.Equal(t, int32(1), runs.Load(), "a stuck check must not be started again")

	close(release)
	require.Eventually(t, func() bool {
		clk.Add(time.Hour)
		return c.Check(context.Background()).Checks[0].Status == StatusPass
	}, 2*time.Second, 5*time.Millisecond)
}

func TestPanicIsAFailedCheck(t *testing.T) {
	t.Parallel()
	c := newTest(t, Config{Checks: []Check{
		{Name: "boom", Critical: true, Run: func(context.Context) Result { panic("kaboom") }},
		{Name: "fine", Critical: true, Run: fixed(Result{})},
	}})
	rep := c.Check(context.Background())
	assert.Equal(t, StatusFail, rep.Status)
	require.Len(t, rep.Checks, 2)
	assert.Equal(t, "boom", rep.Checks[0].Name)
	assert.Equal(t, StatusFail, rep.Checks[0].Status)
	assert.Contains(t, rep.Checks[0].Output, "panicked: kaboom")
	assert.Equal(t, StatusPass, rep.Checks[1].Status)
}

func TestChecksRunConcurrently(t *testing.T) {
	t.Parallel()
	// Each check passes only once all three are inside at the same time, so
	// checks run one after another would time out instead; no sleeping.
	var inside atomic.Int32
	all := make(chan struct{})
	slow := func(ctx context.Context) Result {
		if inside.Add(1) == 3 {
			close(all)
		}
		select {
		case <-all:
			return Result{}
		case <-ctx.Done():
			return Result{Err: ctx.Err()}
		}
	}
	c := newTest(t, Config{Timeout: 5 * time.Second, Checks: []Check{{Name: "a", Run: slow}, {Name: "b", Run: slow}, {Name: "c", Run: slow}}})
	rep := c.Check(context.Background())
	assert.Equal(t, StatusPass, rep.Status, "all three checks should run at once: %+v", rep.Checks)
	assert.Equal(t, int32(3), inside.Load())
}

func TestCacheUnderRequestStorm(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var dbRuns, apiRuns atomic.Int32
	counted := func(n *atomic.Int32) CheckFunc {
		return func(context.Context) Result {
			n.Add(1)
			time.Sleep(20 * time.Millisecond) // let requests pile up on the run
			return Result{Measurements: []Measurement{{Name: "responseTime", Value: 20, Unit: "ms"}}}
		}
	}
	c := newTest(t, Config{Now: clk.Now, Checks: []Check{
		{Name: "db", Critical: true, Run: counted(&dbRuns)},
		{Name: "api", Run: counted(&apiRuns)},
	}})
	h := c.Handler(HandlerConfig{Authorizer: AllowAll})

	// 10,000 requests from 2,000 goroutines: the race detector allows at
	// most 8,128 live goroutines.
	const requests, workers = 10000, 2000
	var next, bad atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range workers {
		wg.Go(func() {
			<-start
			for next.Add(1) <= requests {
				if w := get(h, "/health/detailed"); w.Code != http.StatusOK {
					bad.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Zero(t, bad.Load(), "every request should be served 200")
	assert.Equal(t, int32(1), dbRuns.Load(), "db check runs once per cache interval")
	assert.Equal(t, int32(1), apiRuns.Load(), "api check runs once per cache interval")

	clk.Add(time.Second) // the default CacheTTL
	get(h, "/health")
	get(h, "/health/ready")
	assert.Equal(t, int32(2), dbRuns.Load(), "an expired result runs the check again")
}

func TestBackgroundRefresh(t *testing.T) {
	t.Parallel()
	var runs, hourlyRuns atomic.Int32
	c := newTest(t, Config{Checks: []Check{
		{
			Name: "bg", Interval: 10 * time.Millisecond,
			Run: func(context.Context) Result { runs.Add(1); return Result{} },
		},
		{
			// Refreshed once at start and then not for an hour, so every
			// run seen below would have been caused by a request.
			Name: "hourly", Interval: time.Hour,
			Run: func(context.Context) Result { hourlyRuns.Add(1); return Result{} },
		},
	}})
	require.Eventually(t, func() bool { return runs.Load() >= 3 && hourlyRuns.Load() == 1 }, 2*time.Second, 5*time.Millisecond,
		"the refresher should run the check at start and every Interval")
	for range 100 {
		assert.Equal(t, StatusPass, c.Check(context.Background()).Status)
	}
	assert.Equal(t, int32(1), hourlyRuns.Load(), "requests are served from the refreshed result")
	c.Close()
	after := runs.Load()
	time.Sleep(30 * time.Millisecond)
	assert.Equal(t, after, runs.Load(), "Close stops the refresher")
	c.Close() // idempotent
	assert.ErrorIs(t, c.Register(Check{Name: "late", Run: fixed(Result{})}), ErrClosed)
}

func TestThresholds(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var failing atomic.Bool
	var mu sync.Mutex
	var changes []string
	onChange := func(name string, from, to Status) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, from.String()+"→"+to.String())
	}
	c := newTest(t, Config{Now: clk.Now, OnStatusChange: onChange, Checks: []Check{{
		Name: "flappy", Critical: true, FailureThreshold: 3, SuccessThreshold: 2,
		Run: func(context.Context) Result {
			if failing.Load() {
				return Result{Err: errors.New("refused")}
			}
			return Result{}
		},
	}}})
	step := func(fail bool) CheckReport {
		failing.Store(fail)
		clk.Add(time.Minute)
		return c.Check(context.Background()).Checks[0]
	}
	seq := []struct {
		fail bool
		want Status
		out  string
	}{
		{false, StatusPass, ""},
		{true, StatusWarn, "failing 1/3: refused"},
		{true, StatusWarn, "failing 2/3: refused"},
		{true, StatusFail, "refused"},
		{false, StatusFail, "recovering 1/2"},
		{true, StatusFail, "refused"},
		{false, StatusFail, "recovering 1/2"},
		{false, StatusPass, ""},
	}
	for i, s := range seq {
		got := step(s.fail)
		assert.Equal(t, s.want, got.Status, "step %d", i)
		assert.Equal(t, s.out, got.Output, "step %d", i)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"pass→warn", "warn→fail", "fail→pass"}, changes, "OnStatusChange calls")
}

func TestSlowThreshold(t *testing.T) {
	t.Parallel()
	c := newTest(t, Config{Checks: []Check{{
		Name: "slow", Critical: true, SlowThreshold: time.Millisecond,
		Run: func(context.Context) Result { time.Sleep(5 * time.Millisecond); return Result{} },
	}}})
	rep := c.Check(context.Background())
	assert.Equal(t, StatusWarn, rep.Status)
	assert.Contains(t, rep.Checks[0].Output, "slow: took")
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	ok := fixed(Result{})
	tests := []struct {
		name  string
		check Check
	}{
		{"empty name", Check{Run: ok}},
		{"colon in name", Check{Name: "a:b", Run: ok}},
		{"comma in name", Check{Name: "a,b", Run: ok}},
		{"nil run", Check{Name: "a"}},
		{"negative timeout", Check{Name: "a", Run: ok, Timeout: -1}},
		{"negative threshold", Check{Name: "a", Run: ok, FailureThreshold: -1}},
		{"duplicate", Check{Name: "dup", Run: ok}},
	}
	c := newTest(t, Config{Checks: []Check{{Name: "dup", Run: ok}}})
	for _, tt := range tests {
		assert.ErrorIs(t, c.Register(Check{Name: "fine", Run: ok}, tt.check), ErrInvalidConfig, tt.name)
	}
	assert.Len(t, c.Check(context.Background()).Checks, 1, "a failed Register adds nothing")

	_, err := New(Config{Checks: []Check{{Name: "x"}}})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(Config{Timeout: -time.Second})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(Config{CacheTTL: -time.Second})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.EqualError(t, ErrInvalidConfig, "health: invalid config")
}

func TestCheckHonoursCallerContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := newTest(t, Config{Checks: []Check{{
		Name: "slow", Critical: true, Timeout: time.Second,
		Run: func(ctx context.Context) Result {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return Result{}
		},
	}}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	rep := c.Check(ctx)
	assert.Equal(t, StatusFail, rep.Status, "a check not finished when the caller gives up counts as fail")
	assert.Equal(t, "not checked yet", rep.Checks[0].Output)
	close(release)
}

func TestFuncAndWarn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want Status
	}{
		{"nil", nil, StatusPass},
		{"error", errors.New("no"), StatusFail},
		{"warn", Warn(errors.New("meh")), StatusWarn},
		{"wrapped warn", errors.Join(Warn(errors.New("meh"))), StatusWarn},
	}
	for _, tt := range tests {
		res := Func(func(context.Context) error { return tt.err })(context.Background())
		assert.Equal(t, tt.want, worse(res.Status, failIf(res.Err)), tt.name)
	}
	assert.Error(t, Func(nil)(context.Background()).Err)
	assert.NoError(t, Warn(nil))
	res := Func(func(context.Context) error { return fmt.Errorf("replica lag: %w", Warn(errors.New("12s"))) })(context.Background())
	assert.Equal(t, "replica lag: 12s", res.Output, "a wrapped warning keeps its context")
}

// failIf is StatusFail for a non-nil error.
func failIf(err error) Status {
	if err != nil {
		return StatusFail
	}
	return StatusPass
}

func TestCloseKeepsLastResult(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var hang atomic.Bool
	c := newTest(t, Config{Now: clk.Now, Checks: []Check{{
		Name: "db", Critical: true,
		Run: func(ctx context.Context) Result {
			if hang.Load() {
				<-ctx.Done()
				return Result{Err: ctx.Err()}
			}
			return Result{}
		},
	}}})
	require.Equal(t, StatusPass, c.Check(context.Background()).Status)
	hang.Store(true)
	clk.Add(time.Hour)
	time.AfterFunc(20*time.Millisecond, c.Close)
	rep := c.Check(context.Background())
	assert.Equal(t, StatusPass, rep.Status, "a run cancelled by Close is not a failure of the dependency")
	assert.Equal(t, StatusPass, c.Check(context.Background()).Status, "after Close the cache is still served")
}

func TestCloseDoesNotWaitForeverForAStuckCheck(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	c, err := New(Config{Logger: discard(), Checks: []Check{{
		Name: "stuck", Timeout: 10 * time.Millisecond,
		Run: func(context.Context) Result { <-release; return Result{} },
	}}})
	require.NoError(t, err)
	c.closeGrace = 50 * time.Millisecond // one second by default
	c.Check(context.Background())
	t0 := time.Now()
	c.Close()
	took := time.Since(t0)
	assert.GreaterOrEqual(t, took, c.closeGrace, "Close gives a running check its grace period")
	assert.Less(t, took, 10*time.Second, "and then returns, though the check never does (bound loose for a loaded machine)")
}

// TestBackToBackRunsAreNotStuck runs a quick check again as soon as the last
// run ended: it must never be mistaken for a run that ignores its context.
func TestBackToBackRunsAreNotStuck(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c := newTest(t, Config{Now: clk.Now, Checks: []Check{{Name: "quick", Critical: true, Run: fixed(Result{})}}})
	for i := range 500 {
		clk.Add(time.Hour)
		rep := c.Check(context.Background())
		require.Equal(t, StatusPass, rep.Status, "run %d: %s", i, rep.Checks[0].Output)
	}
}
