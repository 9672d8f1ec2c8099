package metrics

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// timerStats is what the Etsy statsd daemon (lib/process_metrics.js)
// computes from one flush interval's timer lines: count adds 1/rate per
// line; lower, upper, mean and upper_90 are taken over the lines' values,
// unweighted.
type timerStats struct {
	count, lower, upper, mean, upper90 float64
	lines                              int
}

func statsdTimer(lines []statsdLine) timerStats {
	var st timerStats
	var vals []float64
	for _, l := range lines {
		st.count += 1 / l.rate
		vals = append(vals, l.value)
	}
	slices.Sort(vals)
	st.lines = len(vals)
	st.lower, st.upper = vals[0], vals[len(vals)-1]
	st.mean = sumOf(vals) / float64(len(vals))
	st.upper90 = vals[int(math.Round(0.9*float64(len(vals))))-1]
	return st
}

// bucketOf returns the bounds (lo, hi] of the bucket holding v.
func bucketOf(bounds []float64, v float64) (float64, float64) {
	i, _ := slices.BinarySearch(bounds, v)
	lo, hi := math.Inf(-1), math.Inf(1)
	if i > 0 {
		lo = bounds[i-1]
	}
	if i < len(bounds) {
		hi = bounds[i]
	}
	return lo, hi
}

// The promise of StatsDExporter's doc for PlainStatsD: count and mean as
// statsd computes them are exact (count to float rounding when the series
// is thinned to MaxTimerLines), and so are lower and upper up to
// MaxTimerLines observations; beyond, lower and upper are the means of the
// lowest and highest 1/MaxTimerLines of the observations. upper_90 lies in
// the bucket of the true 90th percentile (widened by a slice when thinned).
func TestStatsDPlainTimersGiveStatsdExactCountMeanAndUpper(t *testing.T) {
	t.Parallel()
	bounds := HTTPBuckets()
	const maxLines = 100
	for _, n := range []int{1, 2, 3, 57, 100, 101, 1000, 25_000} {
		sink := newUDPSink(t)
		mp, exp := newStatsDProvider(t, StatsDConfig{Addr: sink.addr(), Format: PlainStatsD, MaxPacketSize: 8192,
			MaxTimerLines: maxLines})
		h, _ := mp.Meter("test").Float64Histogram("op.duration", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(bounds...))
		rng := rand.New(rand.NewPCG(uint64(n), 7))
		var ms []float64 // the truth, in milliseconds
		for range n {
			v := math.Exp(rng.NormFloat64()*1.5 - 5) // median 6.7 ms, long tail
			h.Record(context.Background(), v)
			ms = append(ms, v*1000)
		}
		require.NoError(t, mp.ForceFlush(context.Background()))
		lines := parseLines(t, sink.packets(t, exp))
		for _, l := range lines {
			require.Equal(t, "op.duration", l.name)
			require.Equal(t, "ms", l.typ)
		}
		got := statsdTimer(lines)
		slices.Sort(ms)
		assert.Equal(t, min(n, maxLines), got.lines, "n=%d: lines", n)
		assert.InEpsilon(t, float64(n), got.count, 1e-12, "n=%d: count", n)
		assert.InEpsilon(t, sumOf(ms)/float64(n), got.mean, 1e-9, "n=%d: mean", n)
		rank := func(q float64) float64 {
			q = min(max(q, 0), 1)
			return ms[max(int(math.Round(q*float64(n)))-1, 0)]
		}
		slack := 0.0
		if n <= maxLines {
			assert.Equal(t, ms[0], got.lower, "n=%d: lower is the exact min", n)
			assert.Equal(t, ms[n-1], got.upper, "n=%d: upper is the exact max", n)
		} else {
			slack = 1.0 / maxLines
			lo, _ := bucketOf(bounds, ms[0]/1000)
			_, hi := bucketOf(bounds, rank(slack)/1000)
			assert.True(t, got.lower >= ms[0] && got.lower <= hi*1000 && got.lower >= lo*1000,
				"n=%d: lower %v is the mean of the lowest slice: in [%v, %v]", n, got.lower, ms[0], hi*1000)
			lo, _ = bucketOf(bounds, rank(1-slack)/1000)
			assert.True(t, got.upper <= ms[n-1] && got.upper >= lo*1000,
				"n=%d: upper %v is the mean of the highest slice: in [%v, %v]", n, got.upper, lo*1000, ms[n-1])
		}
		// upper_90 within the bucket(s) of the true 90th percentile; when
		// thinned, within a slice of it.
		lo, _ := bucketOf(bounds, rank(0.9-slack)/1000)
		_, hi := bucketOf(bounds, rank(0.9+slack)/1000)
		assert.GreaterOrEqual(t, got.upper90, max(lo*1000, ms[0]), "n=%d: upper_90", n)
		assert.LessOrEqual(t, got.upper90, min(hi*1000, ms[n-1]), "n=%d: upper_90", n)
	}
}

func TestStatsDPlainNegativeHistogramIsSentAsCountAndSum(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	mp, exp := newStatsDProvider(t, StatsDConfig{Addr: sink.addr(), Format: PlainStatsD})
	h, _ := mp.Meter("test").Float64Histogram("balance.change", metric.WithUnit("{EUR}"))
	for _, v := range []float64{-3, 1.5, 4} {
		h.Record(context.Background(), v)
	}
	require.NoError(t, mp.ForceFlush(context.Background()))
	assert.Equal(t, map[string]float64{"balance.change.count|c|": 3, "balance.change.sum|c|": 2.5},
		sums(parseLines(t, sink.packets(t, exp))), "statsd drops negative timers: counters instead")
}

func TestStatsDPlainExponentialHistogram(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	exp, err := NewStatsDExporter(StatsDConfig{Addr: sink.addr(), Format: PlainStatsD, MaxPacketSize: 8192})
	require.NoError(t, err)
	view := sdkmetric.NewView(sdkmetric.Instrument{Name: "*"}, sdkmetric.Stream{
		Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithView(view), sdkmetric.WithReader(
		sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	h, _ := mp.Meter("test").Float64Histogram("lat", metric.WithUnit("ms"))
	vals := []float64{0, 0.5, 1, 2, 3, 7, 7, 40}
	for _, v := range vals {
		h.Record(context.Background(), v)
	}
	require.NoError(t, mp.ForceFlush(context.Background()))
	got := statsdTimer(parseLines(t, sink.packets(t, exp)))
	assert.Equal(t, timerStats{count: 8, lower: 0, upper: 40, mean: got.mean, upper90: got.upper90, lines: 8}, got)
	assert.InEpsilon(t, sumOf(vals)/8, got.mean, 1e-12, "mean")
	// 160 buckets over [0.5, 40] (6.3 octaves) give scale 4: buckets 2^(1/16)
	// wide, 4.4 %.
	assert.InEpsilon(t, 7, got.upper90, 0.045, "upper_90 inside the 7's exponential bucket")
}

func TestParseStatsDFormat(t *testing.T) {
	t.Parallel()
	for _, f := range []StatsDFormat{DogStatsD, PlainStatsD} {
		got, err := ParseStatsDFormat(f.String())
		require.NoError(t, err)
		assert.Equal(t, f, got)
	}
	got, err := ParseStatsDFormat("")
	require.NoError(t, err)
	assert.Equal(t, DogStatsD, got, "empty is the default")
	_, err = ParseStatsDFormat("graphite")
	assert.ErrorIs(t, err, ErrInvalidConfig)
}
