package metrics

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/statsdtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// daemonWait bounds the wait for statsd to flush what an export sent: a few
// flush intervals, with room for a loaded machine.
const daemonWait = 30 * time.Second

// TestStatsDIntoRealStatsd drives a known workload through the exporter
// into the Etsy statsd daemon (npm statsd 0.9.0) and checks what it flushes
// to Graphite: timers' count, mean (sum/count), upper and lower, counters
// and gauges. Values are summed over flushes, so an export that straddles
// a flush counts whole.
func TestStatsDIntoRealStatsd(t *testing.T) {
	t.Parallel()
	d := statsdtest.Start(t)
	ctx := context.Background()

	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		mp, _ := newStatsDProvider(t, StatsDConfig{Addr: d.Addr, Format: PlainStatsD, NamePrefix: "plain",
			MaxPacketSize: 8192, MaxTimerLines: 100})
		m := mp.Meter("test")
		dur, _ := m.Float64Histogram("op.duration", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(HTTPBuckets()...))
		orders, _ := m.Int64Counter("orders")
		queue, _ := m.Int64UpDownCounter("queue.depth")
		temp, _ := m.Float64Gauge("temp")
		route := metric.WithAttributes(attribute.String("http.route", "GET /orders/{id}"))
		busy := metric.WithAttributes(attribute.String("http.route", "GET /menu"))
		eu := metric.WithAttributes(attribute.String("region", "eu"), attribute.String("error.type", ""))

		rng := rand.New(rand.NewPCG(20, 1))
		var ms, busyMS []float64 // the truth, in milliseconds
		for cycle := range 2 {
			// 60 calls a cycle on one route (every one a line), 1,500 on
			// another (thinned to 100 lines a cycle).
			for range 60 {
				v := math.Exp(rng.NormFloat64() - 4.5)
				dur.Record(ctx, v, route)
				ms = append(ms, v*1000)
			}
			for range 1500 {
				v := math.Exp(rng.NormFloat64()*1.5 - 7)
				dur.Record(ctx, v, busy)
				busyMS = append(busyMS, v*1000)
			}
			orders.Add(ctx, int64(3+cycle*4), eu)
			queue.Add(ctx, int64(5-cycle*12)) // 5, then 5 - 7 = -2
			temp.Record(ctx, -1.5)
			require.NoError(t, mp.ForceFlush(ctx))
		}

		timer := "stats.timers.plain.op.duration.http_route.GET__orders__id_."
		busyTimer := "stats.timers.plain.op.duration.http_route.GET__menu."
		counter := "stats.counters.plain.orders.region.eu.count"
		ok := d.WaitFor(daemonWait, func() bool {
			return d.Sum(timer+"count") == float64(len(ms)) && d.Sum(counter) == 10 &&
				math.Abs(d.Sum(busyTimer+"count")-float64(len(busyMS))) < 1e-6 &&
				d.Last("stats.gauges.plain.queue.depth") == -2
		})
		require.Truef(t, ok, "statsd flushed: timer count %v of %d, thinned %v of %d, counter %v, gauge %v\n%v\n%s",
			d.Sum(timer+"count"), len(ms), d.Sum(busyTimer+"count"), len(busyMS), d.Sum(counter),
			d.Last("stats.gauges.plain.queue.depth"), d.Names("stats."), d.Output())

		assert.Equal(t, float64(len(ms)), d.Sum(timer+"count"), "timer count")
		assert.InEpsilon(t, sumOf(ms)/float64(len(ms)), d.Sum(timer+"sum")/d.Sum(timer+"count"), 1e-9, "timer mean")
		assert.Equal(t, slices.Max(ms), d.Max(timer+"upper"), "timer upper: the exact max")
		assert.Equal(t, slices.Min(ms), d.Min(timer+"lower"), "timer lower: the exact min")

		assert.InEpsilon(t, float64(len(busyMS)), d.Sum(busyTimer+"count"), 1e-12, "thinned timer count")
		assert.InEpsilon(t, sumOf(busyMS)/float64(len(busyMS)),
			d.Sum(busyTimer+"sum")*(float64(len(busyMS))/200)/d.Sum(busyTimer+"count"), 1e-9,
			"thinned timer mean (statsd's sum is over the 200 lines it got)")
		assert.LessOrEqual(t, d.Max(busyTimer+"upper"), slices.Max(busyMS), "thinned upper: the top slice's mean")

		assert.Equal(t, float64(10), d.Sum(counter), "counter: 3 then 7")
		assert.Equal(t, -2.0, d.Last("stats.gauges.plain.queue.depth"), "up-down counter: 5, then 5 - 7 (a negative gauge: 0 then -2)")
		assert.Equal(t, -1.5, d.Last("stats.gauges.plain.temp"), "negative gauge: 0 then -1.5, never a change")
	})

	// statsd 0.9 reads DogStatsD tags into Graphite tags (name;k=v); it has
	// no "|h" or "|d" (it would count them), so only counters and gauges.
	t.Run("dogstatsd", func(t *testing.T) {
		t.Parallel()
		mp, _ := newStatsDProvider(t, StatsDConfig{Addr: d.Addr, NamePrefix: "dog"})
		m := mp.Meter("test")
		orders, _ := m.Int64Counter("orders")
		pool, _ := m.Int64Gauge("pool.in_use")
		eu := metric.WithAttributes(attribute.String("region", "eu"))
		for i := range 3 {
			orders.Add(ctx, int64(i+1), eu)
			pool.Record(ctx, int64(7+i), eu)
			require.NoError(t, mp.ForceFlush(ctx))
		}
		counter := "stats.counters.dog.orders.count;region=eu"
		ok := d.WaitFor(daemonWait, func() bool { return d.Sum(counter) == 6 })
		require.Truef(t, ok, "statsd flushed: %v\n%s", d.Names("stats."), d.Output())
		assert.Equal(t, 9.0, d.Last("stats.gauges.dog.pool.in_use;region=eu"))
	})
}
