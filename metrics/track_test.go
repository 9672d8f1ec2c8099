package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

var errBoom = errors.New("boom")

func TestTrackRecordsOneObservationPerCall(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	tr, err := NewTracker(TrackerConfig{MeterProvider: mp})
	require.NoError(t, err)

	calls := 0
	fn := TrackWith(tr, "order.create", func(context.Context) (int, error) {
		calls++
		if calls%3 == 0 {
			return 0, errBoom
		}
		return calls, nil
	})
	ctx := context.Background()
	start := time.Now()
	for range 7 {
		_, _ = fn(ctx)
	}
	elapsed := time.Since(start)
	pts := histPoints(t, collect(t, r, OperationDuration))
	ok := pts["operation.name=order.create,outcome=ok"]
	fail := pts["operation.name=order.create,outcome=error"]
	assert.Equal(t, uint64(5), ok.Count, "ok observations")
	assert.Equal(t, uint64(2), fail.Count, "error observations")
	assert.Equal(t, HTTPBuckets(), ok.Bounds, "advised seconds buckets")
	// In seconds, the seven durations add up to at most the loop's wall time;
	// in ms or ns they would be 1e3 or 1e9 times more.
	assert.Positive(t, ok.Sum+fail.Sum)
	assert.LessOrEqual(t, ok.Sum+fail.Sum, elapsed.Seconds(), "durations recorded in seconds")

	errs := collect(t, r, OperationErrors).Data.(metricdata.Sum[int64])
	require.Len(t, errs.DataPoints, 1)
	assert.Equal(t, int64(2), errs.DataPoints[0].Value, "errors counted")
}

func TestTrack1PassesArgumentAndResult(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	tr, err := NewTracker(TrackerConfig{MeterProvider: mp})
	require.NoError(t, err)
	double := TrackWith1(tr, "double", func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	got, err := double(context.Background(), 21)
	require.NoError(t, err)
	assert.Equal(t, 42, got)
	pts := histPoints(t, collect(t, r, OperationDuration))
	assert.Equal(t, uint64(1), pts["operation.name=double,outcome=ok"].Count)
}

func TestTrackWithTracerRecordsSpan(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr, err := NewTracker(TrackerConfig{MeterProvider: mp, TracerProvider: tp})
	require.NoError(t, err)

	fn := TrackWith1(tr, "menu.get", func(context.Context, string) (string, error) { return "", errBoom })
	_, err = fn(context.Background(), "r1")
	require.ErrorIs(t, err, errBoom)

	spans := sr.Ended()
	require.Len(t, spans, 1)
	assert.Equal(t, "menu.get", spans[0].Name())
	assert.Equal(t, codes.Error, spans[0].Status().Code)
	assert.Equal(t, uint64(1), histPoints(t, collect(t, r, OperationDuration))["operation.name=menu.get,outcome=error"].Count)
}

// globalChildEnv marks the child process TestTrackUsesGlobalProvider runs.
const globalChildEnv = "PERFKIT_METRICS_GLOBAL_CHILD"

// TestTrackUsesGlobalProvider checks that a function wrapped before
// otel.SetMeterProvider records into the provider set later, as one wrapped
// after does, and that the KPI and middleware constructors default to the
// global provider. OpenTelemetry hands earlier instruments over only on the
// first SetMeterProvider in a process, so the test runs in a child process
// of its own: the check holds under -count > 1 and in any test order, and
// no other test here sees a global provider it did not expect.
func TestTrackUsesGlobalProvider(t *testing.T) {
	if os.Getenv(globalChildEnv) == "1" {
		trackUsesGlobalProvider(t)
		return
	}
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), os.Args[0],
		"-test.run=^TestTrackUsesGlobalProvider$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), globalChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	require.NoErrorf(t, err, "child process:\n%s", out)
	assert.Contains(t, string(out), "--- PASS: TestTrackUsesGlobalProvider", "the child ran the test")
}

func trackUsesGlobalProvider(t *testing.T) {
	mp, r := newManual(t)
	prev := otel.GetMeterProvider()
	_, isSDK := prev.(*sdkmetric.MeterProvider)
	require.False(t, isSDK, "no provider set yet in the child process")
	work := func(context.Context) (struct{}, error) { return struct{}{}, nil }
	early := Track("global.early", work)
	otel.SetMeterProvider(mp)
	// Put the previous provider back before mp is shut down (cleanups run
	// last first).
	t.Cleanup(func() { otel.SetMeterProvider(prev) })
	late := Track("global.late", work)
	orders, err := NewCounter(nil, "global.orders")
	require.NoError(t, err)
	mw, err := NewHTTPMiddleware(HTTPConfig{})
	require.NoError(t, err)

	ctx := context.Background()
	_, _ = early(ctx)
	_, _ = late(ctx)
	orders.Bind().Inc(ctx)
	mw.Wrap(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))

	pts := histPoints(t, collect(t, r, OperationDuration))
	assert.Equal(t, uint64(1), pts["operation.name=global.early,outcome=ok"].Count, "wrapped before SetMeterProvider")
	assert.Equal(t, uint64(1), pts["operation.name=global.late,outcome=ok"].Count, "wrapped after SetMeterProvider")
	assert.Equal(t, 1.0, collect(t, r, "global.orders").Data.(metricdata.Sum[float64]).DataPoints[0].Value,
		"NewCounter(nil, ...) records into the global provider")
	assert.Len(t, histPoints(t, collect(t, r, HTTPServerDuration)), 1, "the middleware records into the global provider")
}

func TestNewTrackerRejectsBadBuckets(t *testing.T) {
	t.Parallel()
	_, err := NewTracker(TrackerConfig{Buckets: []float64{1, 0.5}})
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

func TestTrackRecordsPanicAndRepanics(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	tr, err := NewTracker(TrackerConfig{MeterProvider: mp})
	require.NoError(t, err)
	fn := TrackWith1(tr, "explode", func(context.Context, int) (int, error) { panic("kaboom") })
	assert.PanicsWithValue(t, "kaboom", func() { _, _ = fn(context.Background(), 1) }, "the panic goes on unchanged")

	pts := histPoints(t, collect(t, r, OperationDuration))
	assert.Equal(t, uint64(1), pts["operation.name=explode,outcome=panic"].Count)
	errs := collect(t, r, OperationErrors).Data.(metricdata.Sum[int64])
	require.Len(t, errs.DataPoints, 1)
	assert.Equal(t, int64(1), errs.DataPoints[0].Value, "a panic counts as an error")
}
