package metrics

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestQuantile(t *testing.T) {
	t.Parallel()
	bounds := []float64{0.1, 0.2, 0.5}
	cases := []struct {
		name   string
		q      float64
		counts []uint64
		want   float64
	}{
		{"median inside first bucket", 0.5, []uint64{10, 0, 0, 0}, 0.05},
		{"all in second bucket", 0.5, []uint64{0, 4, 0, 0}, 0.15},
		{"p99 in third bucket", 0.99, []uint64{50, 40, 10, 0}, 0.2 + 0.3*0.9},
		{"overflow gives top bound", 0.99, []uint64{1, 0, 0, 99}, 0.5},
		{"q=0 is the lower edge", 0, []uint64{0, 3, 0, 0}, 0.1},
		{"q=1 is the upper edge", 1, []uint64{0, 3, 0, 0}, 0.2},
	}
	for _, c := range cases {
		got, err := Quantile(c.q, bounds, c.counts)
		require.NoError(t, err, c.name)
		assert.InDelta(t, c.want, got, 1e-9, c.name)
	}
}

func TestQuantileErrors(t *testing.T) {
	t.Parallel()
	_, err := Quantile(0.5, []float64{1}, []uint64{0, 0})
	assert.ErrorIs(t, err, ErrNoData)
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		_, err = Quantile(q, []float64{1}, []uint64{1, 0})
		assert.Error(t, err, "q=%v", q)
	}
	_, err = Quantile(0.5, []float64{1}, []uint64{1})
	assert.Error(t, err, "mismatched counts")
}

func TestReadPercentilesFromManualReader(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	h, _ := mp.Meter("t").Float64Histogram("lat", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(HTTPBuckets()...))
	ctx := context.Background()
	fast := metric.WithAttributes(attribute.String("route", "fast"))
	slow := metric.WithAttributes(attribute.String("route", "slow"))
	for range 90 {
		h.Record(ctx, 0.004, fast)
	}
	for range 10 {
		h.Record(ctx, 0.9, slow)
	}
	all, err := ReadPercentiles(ctx, r, "lat", nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(100), all.Count)
	assert.InDelta(t, 0.0025+0.0025*50/90, all.P50, 1e-9, "p50 interpolated in the (2.5 ms, 5 ms] bucket")
	assert.InDelta(t, 0.875, all.P95, 1e-9, "p95 in the (0.75, 1] bucket")
	onlyFast, err := ReadPercentiles(ctx, r, "lat", func(s attribute.Set) bool {
		v, _ := s.Value("route")
		return v.AsString() == "fast"
	})
	require.NoError(t, err)
	assert.Equal(t, uint64(90), onlyFast.Count)
	assert.Less(t, onlyFast.P99, 0.005)
	_, err = ReadPercentiles(ctx, r, "absent", nil)
	assert.ErrorIs(t, err, ErrNoData)
}

const promText = `# HELP rq_seconds x
# TYPE rq_seconds histogram
rq_seconds_bucket{route="a",le="0.1"} 5
rq_seconds_bucket{route="a",le="1"} 9
rq_seconds_bucket{route="a",le="+Inf"} 10
rq_seconds_sum{route="a"} 4
rq_seconds_count{route="a"} 10
rq_seconds_bucket{route="b",le="0.1"} 0
rq_seconds_bucket{route="b",le="1"} 0
rq_seconds_bucket{route="b",le="+Inf"} 10
rq_seconds_sum{route="b"} 40
rq_seconds_count{route="b"} 10
# TYPE up gauge
up 1
`

func TestPromPercentiles(t *testing.T) {
	t.Parallel()
	fams, err := ParsePrometheus(strings.NewReader(promText))
	require.NoError(t, err)
	a, err := PromPercentiles(fams, "rq_seconds", map[string]string{"route": "a"})
	require.NoError(t, err)
	assert.Equal(t, Percentiles{Count: 10, Sum: 4, P50: 0.1, P95: 1, P99: 1}, a)
	all, err := PromPercentiles(fams, "rq_seconds", nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(20), all.Count)
	assert.InDelta(t, 1.0, all.P50, 1e-9, "rank 10 of 20 falls in +Inf: the top finite bound")
	_, err = PromPercentiles(fams, "up", nil)
	assert.Error(t, err, "not a histogram")
	_, err = PromPercentiles(fams, "rq_seconds", map[string]string{"route": "zzz"})
	assert.ErrorIs(t, err, ErrNoData)
}

func FuzzPromPercentiles(f *testing.F) {
	f.Add(promText)
	f.Add("# TYPE x histogram\nx_bucket{le=\"1\"} 3\nx_bucket{le=\"+Inf\"} 1\nx_count 1\nx_sum 1\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, text string) {
		fams, err := ParsePrometheus(strings.NewReader(text))
		if err != nil {
			return
		}
		for name := range fams {
			p, err := PromPercentiles(fams, name, nil)
			if err == nil && (math.IsNaN(p.P50) || p.P50 > p.P99+1e-9 && !math.IsInf(p.P99, 0)) {
				t.Fatalf("%s: inconsistent percentiles %+v", name, p)
			}
		}
	})
}

func TestReadPercentilesFromExponentialHistogram(t *testing.T) {
	t.Parallel()
	r := sdkmetric.NewManualReader()
	p := setupTest(t, Config{Readers: []sdkmetric.Reader{r}, DisablePrometheus: true, ExponentialHistograms: true})
	h, _ := p.Meter("t").Float64Histogram("exp.duration", metric.WithUnit("s"))
	ctx := context.Background()
	for i := range 100 {
		route := attribute.String("route", []string{"a", "b"}[i%2])
		h.Record(ctx, float64(i+1)/1000, metric.WithAttributes(route)) // 1 ms … 100 ms
	}
	pct, err := ReadPercentiles(ctx, r, "exp.duration", nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(100), pct.Count)
	assert.InEpsilon(t, 0.050, pct.P50, 0.02, "p50 within 2%%")
	assert.InEpsilon(t, 0.095, pct.P95, 0.02, "p95 within 2%%")
	assert.InEpsilon(t, 0.099, pct.P99, 0.02, "p99 within 2%%")
}

func TestHistogramSub(t *testing.T) {
	t.Parallel()
	before := Histogram{Bounds: []float64{1, 2}, Counts: []uint64{1, 2, 0}, Sum: 3}
	after := Histogram{Bounds: []float64{1, 2}, Counts: []uint64{1, 5, 1}, Sum: 12}
	d, err := after.Sub(before)
	require.NoError(t, err)
	assert.Equal(t, Histogram{Bounds: []float64{1, 2}, Counts: []uint64{0, 3, 1}, Sum: 9}, d)
	assert.Equal(t, uint64(4), d.Count())

	same, err := after.Sub(Histogram{})
	require.NoError(t, err)
	assert.Equal(t, after, same, "nothing before: all of it")
	_, err = before.Sub(after)
	assert.Error(t, err, "a histogram that went backwards")
	_, err = after.Sub(Histogram{Bounds: []float64{1}, Counts: []uint64{0, 0}})
	assert.Error(t, err, "different bounds")
}

// TestFetchPrometheusPhaseReport is the load report's flow: scrape a
// service, run a phase, scrape again and report the phase's percentiles.
func TestFetchPrometheusPhaseReport(t *testing.T) {
	t.Parallel()
	p := setupTest(t, Config{DisableRuntimeMetrics: true})
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: p})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(http.ResponseWriter, *http.Request) {})
	mux.Handle("GET /health/metrics", p.Handler())
	srv := httptest.NewServer(mw.Wrap(mux))
	defer srv.Close()
	ctx := context.Background()
	var slowest time.Duration // of the phase's requests, seen from the client
	get := func(path string) {
		start := time.Now()
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		_ = resp.Body.Close()
		slowest = max(slowest, time.Since(start))
	}
	orders := map[string]string{"http_route": "/orders/{id}"}
	const name = "http_server_request_duration_seconds"

	get("/orders/0") // warm-up, not in the phase
	slowest = 0
	fams, err := FetchPrometheus(ctx, srv.Client(), srv.URL+"/health/metrics")
	require.NoError(t, err)
	before, err := PromHistogram(fams, name, orders)
	require.NoError(t, err)
	for i := range 5 {
		get("/orders/" + strconv.Itoa(i+1))
	}
	fams, err = FetchPrometheus(ctx, nil, srv.URL+"/health/metrics")
	require.NoError(t, err)
	after, err := PromHistogram(fams, name, orders)
	require.NoError(t, err)
	phase, err := after.Sub(before)
	require.NoError(t, err)
	pct, err := phase.Percentiles()
	require.NoError(t, err)
	assert.Equal(t, uint64(5), pct.Count)
	// The server times each request within the client's view of it, so p99
	// lies at or below the top of the bucket holding the slowest request.
	buckets := HTTPBuckets()
	ceil := buckets[len(buckets)-1] // beyond it Quantile gives the top bound
	for _, b := range buckets {
		if b >= slowest.Seconds() {
			ceil = b
			break
		}
	}
	assert.Greater(t, pct.P50, 0.0)
	assert.LessOrEqual(t, pct.P99, ceil, "p99 within the bucket of the slowest request (%v)", slowest)

	_, err = FetchPrometheus(ctx, nil, srv.URL+"/nowhere")
	assert.Error(t, err, "404 is an error")
}

// TestMergeExponentialBoundsBuckets merges two fine-scale points a million
// times apart (an int64 histogram too): the merged histogram stays small and
// keeps every observation and the median's order of magnitude.
func TestMergeExponentialBoundsBuckets(t *testing.T) {
	t.Parallel()
	point := func(v int64) metricdata.ExponentialHistogramDataPoint[int64] {
		// At scale 20, value v falls in bucket floor(log2(v) * 2^20).
		idx := int32(math.Floor(math.Log2(float64(v)) * (1 << 20)))
		return metricdata.ExponentialHistogramDataPoint[int64]{Scale: 20, Count: 3, Sum: 3 * v,
			PositiveBucket: metricdata.ExponentialBucket{Offset: idx, Counts: []uint64{3}}}
	}
	bounds, counts, sum, ok := mergeExponential([]metricdata.ExponentialHistogramDataPoint[int64]{point(1), point(1_000_000)}, nil)
	require.True(t, ok)
	assert.LessOrEqual(t, len(bounds), maxMergedBuckets+1)
	assert.Len(t, counts, len(bounds)+1)
	h := Histogram{Bounds: bounds, Counts: counts, Sum: sum}
	assert.Equal(t, uint64(6), h.Count())
	assert.Equal(t, 3.0+3_000_000, h.Sum)
	p99, err := h.Quantile(0.99)
	require.NoError(t, err)
	assert.InEpsilon(t, 1_000_000, p99, 0.01, "p99 near the large value")
	_, _, _, ok = mergeExponential([]metricdata.ExponentialHistogramDataPoint[int64]{point(1)},
		func(attribute.Set) bool { return false })
	assert.False(t, ok, "no point matched")
}
