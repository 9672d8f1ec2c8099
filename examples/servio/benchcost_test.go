package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/internal/benchcpu"
	"github.com/servio/perfkit/internal/cpuburn"
)

// TestBenchCPUCost: -bench-cpu-cost (benchmarks only) is off by default;
// when set, every request of a route the limiter guards pays it once
// admitted and before its handler — CPU time on the request's own
// thread, read by the kernel — and the probes, /health/metrics and
// refused requests never do; bad values are refused.
func TestBenchCPUCost(t *testing.T) {
	t.Parallel()
	none := func(string) string { return "" }
	cfg, err := parseConfig("servio", nil, none, io.Discard, nil)
	require.NoError(t, err)
	assert.Zero(t, cfg.BenchCPUCost, "off by default")
	assert.Zero(t, cfg.BenchRoundsPerMS, "calibrated by default")
	cfg, err = parseConfig("servio", nil, func(k string) string {
		return map[string]string{"BENCH_CPU_COST": "300us", "BENCH_ROUNDS_PER_MS": "13000"}[k]
	}, io.Discard, nil)
	require.NoError(t, err)
	assert.Equal(t, 300*time.Microsecond, cfg.BenchCPUCost)
	assert.Equal(t, 13000.0, cfg.BenchRoundsPerMS)
	for _, args := range [][]string{
		{"-bench-cpu-cost", "-1ms"},
		{"-bench-rounds-per-ms", "-1"},
		{"-bench-rounds-per-ms", "NaN"},
		{"-bench-rounds-per-ms", "+Inf"},
		{"-bench-rounds-per-ms", "1e300", "-bench-cpu-cost", "1ms"},
		{"-bench-rounds-per-ms", "13000"}, // without a cost
	} {
		_, err := parseConfig("servio", args, none, io.Discard, nil)
		assert.Error(t, err, "%v is refused", args)
	}

	cfg = testConfig(t, "sqlite")
	cfg.BenchCPUCost = 20 * time.Millisecond
	cfg.BenchRoundsPerMS = cpuburn.Calibrate()
	cfg.AdaptiveNetworkFirst = 1
	a := startApp(t, cfg)

	// The wrapper itself, on a thread of its own: 20 ms of work at the
	// core's fastest calibrated rate takes at least about that much CPU
	// (10 ms allows for a calibration that read the core slow), and it is
	// spent before the handler runs.
	var before time.Duration
	h := a.benchCost()(func(http.ResponseWriter, *http.Request) { before = benchcpu.Thread() })
	runtime.LockOSThread()
	c0 := benchcpu.Thread()
	h(httptest.NewRecorder(), httptest.NewRequest("GET", "/restaurants/1/menu", nil))
	runtime.UnlockOSThread()
	assert.GreaterOrEqual(t, before-c0, 10*time.Millisecond, "the request's thread spent the cost before its handler")
	paid := a.benchCostPaid.Load()

	// Through the server: guarded routes pay, probes and metrics do not.
	for range 3 {
		status, body := a.do("GET", "/restaurants/1/menu", "")
		require.Equal(t, http.StatusOK, status, "%s", body)
	}
	assert.Equal(t, paid+3, a.benchCostPaid.Load(), "each menu read paid once")
	for _, path := range []string{"/health/live", "/health/ready", "/health/metrics"} {
		status, body := a.do("GET", path, "")
		require.Equal(t, http.StatusOK, status, "%s: %s", path, body)
	}
	assert.Equal(t, paid+3, a.benchCostPaid.Load(), "probes and /health/metrics do not pay")

	// A refused request never pays: the cost is inside admission.
	saturate(t, a)
	status, body := a.do("GET", "/restaurants/1/menu", "")
	require.Equal(t, http.StatusServiceUnavailable, status, "%s", body)
	assert.Equal(t, paid+3, a.benchCostPaid.Load(), "a refusal does not pay")
}
