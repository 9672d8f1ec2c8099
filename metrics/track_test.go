package metrics

import (
	"context"
	"errors"
	"testing"

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
	for range 7 {
		_, _ = fn(ctx)
	}
	pts := histPoints(t, collect(t, r, OperationDuration))
	ok := pts["operation.name=order.create,outcome=ok"]
	fail := pts["operation.name=order.create,outcome=error"]
	assert.Equal(t, uint64(5), ok.Count, "ok observations")
	assert.Equal(t, uint64(2), fail.Count, "error observations")
	assert.Equal(t, HTTPBuckets(), ok.Bounds, "advised seconds buckets")
	assert.Less(t, ok.Sum, 1.0, "durations recorded in seconds, not ns or ms")

	errs := collect(t, r, OperationErrors).Data.(metricdata.Sum[int64])
	require.Len(t, errs.DataPoints, 1)
	assert.Equal(t, int64(2), errs.DataPoints[0].Value, "errors counted")
}

func TestTrackArgPassesArgumentAndResult(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	tr, err := NewTracker(TrackerConfig{MeterProvider: mp})
	require.NoError(t, err)
	double := TrackArgWith(tr, "double", func(_ context.Context, n int) (int, error) { return 2 * n, nil })
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

	fn := TrackArgWith(tr, "menu.get", func(context.Context, string) (string, error) { return "", errBoom })
	_, err = fn(context.Background(), "r1")
	require.ErrorIs(t, err, errBoom)

	spans := sr.Ended()
	require.Len(t, spans, 1)
	assert.Equal(t, "menu.get", spans[0].Name())
	assert.Equal(t, codes.Error, spans[0].Status().Code)
	assert.Equal(t, uint64(1), histPoints(t, collect(t, r, OperationDuration))["operation.name=menu.get,outcome=error"].Count)
}

// TestTrackUsesGlobalProvider is the only test that sets the global provider
// (serial tests run before parallel ones, so this is the first set): a
// function wrapped before otel.SetMeterProvider records into the provider
// set later, as one wrapped after does.
func TestTrackUsesGlobalProvider(t *testing.T) {
	mp, r := newManual(t)
	// Only the first otel.SetMeterProvider in a process hands earlier
	// instruments over; under -count > 1 this is a later one.
	_, setBefore := otel.GetMeterProvider().(*sdkmetric.MeterProvider)
	work := func(context.Context) (struct{}, error) { return struct{}{}, nil }
	early := Track("global.early", work)
	otel.SetMeterProvider(mp)
	late := Track("global.late", work)

	ctx := context.Background()
	_, _ = early(ctx)
	_, _ = late(ctx)
	pts := histPoints(t, collect(t, r, OperationDuration))
	if !setBefore {
		assert.Equal(t, uint64(1), pts["operation.name=global.early,outcome=ok"].Count, "wrapped before SetMeterProvider")
	}
	assert.Equal(t, uint64(1), pts["operation.name=global.late,outcome=ok"].Count, "wrapped after SetMeterProvider")
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
	fn := TrackArgWith(tr, "explode", func(context.Context, int) (int, error) { panic("kaboom") })
	assert.PanicsWithValue(t, "kaboom", func() { _, _ = fn(context.Background(), 1) }, "the panic goes on unchanged")

	pts := histPoints(t, collect(t, r, OperationDuration))
	assert.Equal(t, uint64(1), pts["operation.name=explode,outcome=panic"].Count)
	errs := collect(t, r, OperationErrors).Data.(metricdata.Sum[int64])
	require.Len(t, errs.DataPoints, 1)
	assert.Equal(t, int64(1), errs.DataPoints[0].Value, "a panic counts as an error")
}
