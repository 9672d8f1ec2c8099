package metrics

import (
	"context"
	"log/slog"
	"net"
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

// udpSink is a real StatsD listener on 127.0.0.1 that keeps every datagram.
type udpSink struct {
	conn *net.UDPConn
	read uint64 // datagrams read so far
}

func newUDPSink(t *testing.T) *udpSink {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetReadBuffer(1<<20))
	return &udpSink{conn: conn}
}

func (s *udpSink) addr() string { return s.conn.LocalAddr().String() }

// datagramWait bounds the wait for one datagram the exporter says it sent.
// Loopback delivery can lag on a loaded machine; it does not drop the few
// small datagrams these tests send.
const datagramWait = 10 * time.Second

// packets returns the datagrams exp has sent since the previous call. It
// reads exactly as many as exp's Stats count, so it needs no guessed quiet
// period and fails if one of them never arrives.
func (s *udpSink) packets(t *testing.T, exp *StatsDExporter) []string {
	t.Helper()
	sent := exp.Stats().Packets
	var out []string
	buf := make([]byte, 65536)
	for ; s.read < sent; s.read++ {
		require.NoError(t, s.conn.SetReadDeadline(time.Now().Add(datagramWait)))
		n, err := s.conn.Read(buf)
		require.NoErrorf(t, err, "datagram %d of %d the exporter sent", s.read+1, sent)
		out = append(out, string(buf[:n]))
	}
	return out
}

// statsdLine is one parsed line: "name:value|type[|@rate][|#tags]".
type statsdLine struct {
	name, typ, tags string
	value, rate     float64
	signed          bool // the value has a sign: a change, for a gauge
}

func parseLines(t *testing.T, packets []string) []statsdLine {
	t.Helper()
	var out []statsdLine
	for _, p := range packets {
		for _, l := range strings.Split(p, "\n") {
			name, rest, ok := strings.Cut(l, ":")
			require.Truef(t, ok, "line %q has no ':'", l)
			parts := strings.Split(rest, "|")
			require.GreaterOrEqualf(t, len(parts), 2, "line %q", l)
			v, err := strconv.ParseFloat(parts[0], 64)
			require.NoErrorf(t, err, "line %q", l)
			sl := statsdLine{name: name, value: v, typ: parts[1], rate: 1,
				signed: strings.HasPrefix(parts[0], "-") || strings.HasPrefix(parts[0], "+")}
			for _, f := range parts[2:] {
				switch {
				case strings.HasPrefix(f, "@"):
					sl.rate, err = strconv.ParseFloat(f[1:], 64)
					require.NoError(t, err)
				case strings.HasPrefix(f, "#"):
					sl.tags = f[1:]
				default:
					t.Fatalf("line %q: unknown field %q", l, f)
				}
			}
			out = append(out, sl)
		}
	}
	return out
}

// sums adds up the values of lines by "name|type|tags" in order, as a
// plain StatsD server would: a gauge value with a sign changes a gauge that
// is already set; without one it sets the gauge.
func sums(lines []statsdLine) map[string]float64 {
	out := map[string]float64{}
	for _, l := range lines {
		k := l.name + "|" + l.typ + "|" + l.tags
		if l.typ == "g" {
			if _, set := out[k]; set && l.signed {
				out[k] += l.value
			} else {
				out[k] = l.value
			}
		} else {
			out[k] += l.value / l.rate
		}
	}
	return out
}

func newStatsDProvider(t *testing.T, cfg StatsDConfig) (*sdkmetric.MeterProvider, *StatsDExporter) {
	t.Helper()
	exp, err := NewStatsDExporter(cfg)
	require.NoError(t, err)
	// A long interval: the test drives every export with ForceFlush.
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(
		sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, exp
}

func TestStatsDExactSumsAndDeltasOverUDP(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	mp, exp := newStatsDProvider(t, StatsDConfig{Addr: sink.addr(), NamePrefix: "servio",
		Tags: []attribute.KeyValue{attribute.String("env", "test")}})
	m := mp.Meter("test")
	ctx := context.Background()
	orders, _ := m.Int64Counter("orders")
	revenue, _ := m.Float64Counter("revenue")
	queue, _ := m.Int64UpDownCounter("queue.depth")
	temp, _ := m.Float64Gauge("temp")
	dur, _ := m.Float64Histogram("op.duration", metric.WithExplicitBucketBoundaries(0.1, 1))
	eu := metric.WithAttributes(attribute.String("region", "eu"))
	us := metric.WithAttributes(attribute.String("region", "us"))

	orders.Add(ctx, 3, eu)
	orders.Add(ctx, 4, eu)
	orders.Add(ctx, 10, us)
	revenue.Add(ctx, 12.5, eu)
	revenue.Add(ctx, 0.25, eu)
	queue.Add(ctx, 5)
	queue.Add(ctx, -2)
	temp.Record(ctx, -1.5)
	for _, v := range []float64{0.05, 0.5, 0.7, 3} {
		dur.Record(ctx, v, eu)
	}
	require.NoError(t, mp.ForceFlush(ctx))
	first := parseLines(t, sink.packets(t, exp))
	// A histogram's lines add up (value × 1/rate) to its exact sum.
	assert.Equal(t, map[string]float64{
		"servio.orders|c|env:test,region:eu":      7,
		"servio.orders|c|env:test,region:us":      10,
		"servio.revenue|c|env:test,region:eu":     12.75,
		"servio.queue.depth|g|env:test":           3,
		"servio.temp|g|env:test":                  -1.5,
		"servio.op.duration|h|env:test,region:eu": 4.25,
	}, sums(first), "first collection")
	assert.Equal(t, map[string]uint64{"servio.op.duration|h|env:test,region:eu": 4}, agentCounts(t, first))

	// Second cycle: only the increments since the first are sent; gauges
	// are sent whole again, the negative ones as 0 then the value in one
	// datagram, so that no StatsD server reads them as changes.
	orders.Add(ctx, 5, eu)
	queue.Add(ctx, -5)
	dur.Record(ctx, 0.2, eu)
	require.NoError(t, mp.ForceFlush(ctx))
	pkts := sink.packets(t, exp)
	assert.Contains(t, strings.Join(pkts, "|||"), "servio.temp:0|g|#env:test\nservio.temp:-1.5|g|#env:test")
	assert.Contains(t, strings.Join(pkts, "|||"), "servio.queue.depth:0|g|#env:test\nservio.queue.depth:-2|g|#env:test")
	second := parseLines(t, pkts)
	assert.Equal(t, map[string]float64{
		"servio.orders|c|env:test,region:eu":      5,
		"servio.queue.depth|g|env:test":           -2,
		"servio.temp|g|env:test":                  -1.5,
		"servio.op.duration|h|env:test,region:eu": 0.2,
	}, sums(second), "second collection: deltas")

	st := exp.Stats()
	assert.Zero(t, st.WriteErrors)
	assert.Equal(t, uint64(len(first)+len(second)), st.Lines, "lines counted as the sink received them")
}

// agentCounts counts the observations of "|h", "|d" and "|ms" lines by
// "name|type|tags" as the Datadog agent does: each line inserts
// uint(1/rate) copies of its value.
func agentCounts(t *testing.T, lines []statsdLine) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, l := range lines {
		if l.typ == "h" || l.typ == "d" || l.typ == "ms" {
			out[l.name+"|"+l.typ+"|"+l.tags] += uint64(1 / l.rate)
		}
	}
	return out
}

func TestStatsDZeroCountersAreNotSent(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	mp, exp := newStatsDProvider(t, StatsDConfig{Addr: sink.addr(), Format: PlainStatsD})
	m := mp.Meter("test")
	ctx := context.Background()
	c, _ := m.Int64Counter("adds")
	_, err := m.Int64ObservableCounter("observed", metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(5) // cumulative 5 forever: a delta of 0 after the first export
		return nil
	}))
	require.NoError(t, err)
	c.Add(ctx, 2)
	require.NoError(t, mp.ForceFlush(ctx))
	assert.Equal(t, map[string]float64{"adds|c|": 2, "observed|c|": 5}, sums(parseLines(t, sink.packets(t, exp))))

	c.Add(ctx, 0)
	require.NoError(t, mp.ForceFlush(ctx))
	c.Add(ctx, 1)
	require.NoError(t, mp.ForceFlush(ctx))
	assert.Equal(t, []string{"adds:1|c"}, sink.packets(t, exp),
		"the export with nothing new sent nothing; the next only the counter that moved")
}

func TestStatsDPlainNames(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	mp, exp := newStatsDProvider(t, StatsDConfig{Addr: sink.addr(), Format: PlainStatsD, NamePrefix: "servio.",
		Tags: []attribute.KeyValue{attribute.String("env", "prod eu")}})
	ctx := context.Background()
	c, _ := mp.Meter("test").Int64Counter("http.requests")
	c.Add(ctx, 2, metric.WithAttributes(attribute.String("http.route", "GET /orders/{id}"), attribute.Int("code", 200),
		attribute.String("error.type", "")))
	g, _ := mp.Meter("test").Float64Gauge("pool..in use/ratio.")
	g.Record(ctx, 7)
	require.NoError(t, mp.ForceFlush(ctx))
	got := sums(parseLines(t, sink.packets(t, exp)))
	assert.Equal(t, map[string]float64{
		// error.type is empty: no node for it (no "..").
		"servio.http.requests.env.prod_eu.code.200.http_route.GET__orders__id_|c|": 2,
		"servio.pool.in_use_ratio.env.prod_eu|g|":                                  7,
	}, got)
}

func TestStatsDBatchesUnderMaxPacketSize(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	mp, exp := newStatsDProvider(t, StatsDConfig{Addr: sink.addr(), MaxPacketSize: 200})
	ctx := context.Background()
	c, _ := mp.Meter("test").Int64Counter("c")
	const series = 100
	for i := range series {
		c.Add(ctx, int64(i+1), metric.WithAttributes(attribute.Int("i", i)))
	}
	require.NoError(t, mp.ForceFlush(ctx))
	pkts := sink.packets(t, exp)
	for _, p := range pkts {
		assert.LessOrEqual(t, len(p), 200, "datagram size")
	}
	lines := parseLines(t, pkts)
	require.Len(t, lines, series)
	total := 0.0
	for _, l := range lines {
		total += l.value
	}
	assert.Equal(t, float64(series*(series+1)/2), total)
	assert.Equal(t, uint64(len(pkts)), exp.Stats().Packets)
	assert.Greater(t, len(pkts), 5, "lines were split over many datagrams")
}

func TestStatsDDistributions(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	mp, exp := newStatsDProvider(t, StatsDConfig{Addr: sink.addr(), Distributions: true})
	ctx := context.Background()
	h, _ := mp.Meter("test").Float64Histogram("lat", metric.WithExplicitBucketBoundaries(0.1, 1))
	for _, v := range []float64{0.2, 0.4, 0.6, 0.9, 5} {
		h.Record(ctx, v)
	}
	require.NoError(t, mp.ForceFlush(ctx))
	lines := parseLines(t, sink.packets(t, exp))
	require.Len(t, lines, 3, "min, max, and the rest of bucket (0.1, 1]")
	assert.Equal(t, map[string]uint64{"lat|d|": 5}, agentCounts(t, lines), "the agent counts every observation")
	assert.Equal(t, statsdLine{name: "lat", typ: "d", value: 0.2, rate: 1}, lines[0], "the exact min")
	assert.Equal(t, statsdLine{name: "lat", typ: "d", value: 5, rate: 1}, lines[1], "the exact max")
	assert.InDelta(t, 1.9/3, lines[2].value, 1e-12, "0.4, 0.6, 0.9 at one value inside (0.1, 1] that keeps the sum")
	assert.InDelta(t, 7.1, sums(lines)["lat|d|"], 1e-12, "value × 1/rate adds up to the sum")
}

// The Datadog agent inserts uint(1/rate) copies of a sampled histogram or
// distribution value; for n = 93 the plain rate 1/93 gives 92.
func TestStatsDWeightRateNeverLosesAnObservation(t *testing.T) {
	t.Parallel()
	n93 := 93.0
	require.Less(t, 1/(1/n93), n93, "the float64 trap this guards against")
	for n := uint64(1); n <= 100_000; n++ {
		r, err := strconv.ParseFloat(weightRate(n), 64)
		require.NoError(t, err)
		require.Equalf(t, n, uint64(1/r), "uint(1/rate) for n=%d (rate %v)", n, r)
		require.InEpsilonf(t, float64(n), 1/r, 1e-12, "1/rate for n=%d", n)
	}
}

func TestStatsDDogStatsDHistogramCountsEveryObservation(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	mp, exp := newStatsDProvider(t, StatsDConfig{Addr: sink.addr(), MaxPacketSize: 8192})
	ctx := context.Background()
	h, _ := mp.Meter("test").Float64Histogram("op.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.01, 0.1, 1))
	var want []float64
	// 94 observations in (0.01, 0.1]: 93 of them left after the min, the
	// count whose naive rate 1/93 loses one in the agent.
	for i := range 94 {
		want = append(want, 0.011+float64(i)*0.0005)
	}
	want = append(want, 0.5, 0.7, 2)
	for _, v := range want {
		h.Record(ctx, v)
	}
	require.NoError(t, mp.ForceFlush(ctx))
	lines := parseLines(t, sink.packets(t, exp))
	assert.Equal(t, map[string]uint64{"op.duration|h|": uint64(len(want))}, agentCounts(t, lines))
	var sum float64
	mx := 0.0
	for _, v := range want {
		sum += v * 1000
		mx = max(mx, v*1000)
	}
	assert.InDelta(t, sum, sums(lines)["op.duration|h|"], 1e-9*sum, "sum in milliseconds")
	var gotMax float64
	for _, l := range lines {
		gotMax = max(gotMax, l.value)
	}
	assert.Equal(t, mx, gotMax, "the exact max, in milliseconds")
}

func TestStatsDWriteErrorsAreCountedNotReturned(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	addr := sink.addr()
	require.NoError(t, sink.conn.Close()) // nobody listens: writes get ECONNREFUSED
	mp, exp := newStatsDProvider(t, StatsDConfig{Addr: addr, Logger: slog.New(slog.DiscardHandler)})
	c, _ := mp.Meter("test").Int64Counter("c")
	ctx := context.Background()
	for range 3 {
		c.Add(ctx, 1)
		require.NoError(t, mp.ForceFlush(ctx))
	}
	st := exp.Stats()
	assert.Equal(t, uint64(3), st.Packets+st.WriteErrors, "every export attempted one datagram")
}

func TestStatsDExporterShutdown(t *testing.T) {
	t.Parallel()
	exp, err := NewStatsDExporter(StatsDConfig{Addr: newUDPSink(t).addr()})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, exp.Shutdown(ctx))
	require.NoError(t, exp.Shutdown(ctx), "idempotent")
	assert.ErrorIs(t, exp.Export(ctx, nil), ErrClosed)
	open, err := NewStatsDExporter(StatsDConfig{Addr: newUDPSink(t).addr()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = open.Shutdown(ctx) })
	assert.NoError(t, open.Export(ctx, nil), "nil metrics: nothing to send, no panic")
}

func TestNewStatsDExporterRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []StatsDConfig{
		{MaxPacketSize: 10},
		{WriteTimeout: -1},
		{Format: 9},
		{Format: PlainStatsD, Distributions: true},
		{MaxTimerLines: 5},
		{Addr: "no-port"},
	} {
		_, err := NewStatsDExporter(cfg)
		assert.ErrorIs(t, err, ErrInvalidConfig, "config %+v", cfg)
	}
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fn       func(string) string
		in, want string
	}{
		{sanitizeName, "http.server.request.duration", "http.server.request.duration"},
		{sanitizeName, "a:b|c@d#e,f g", "a_b_c_d_e_f_g"},
		{sanitizeTag, "GET /orders/{id}", "GET_/orders/{id}"},
		{sanitizeTag, "host:port,x|y#z", "host:port_x_y_z"},
		{sanitizeGraphite, "GET /a.b", "GET__a_b"},
		{sanitizeGraphitePath, ".a..b c/d.", "a.b_c_d"},
		{sanitizeGraphitePath, "..", "_"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, c.fn(c.in), "input %q", c.in)
	}
}

func TestStatsDExportHonoursContext(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	exp, err := NewStatsDExporter(StatsDConfig{Addr: sink.addr()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	r := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(exp.Temporality))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c, _ := mp.Meter("test").Int64Counter("c")
	c.Add(context.Background(), 1)
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, exp.Export(ctx, &rm), context.Canceled)
	assert.Zero(t, exp.Stats().Packets, "nothing sent after cancellation")
}

// FuzzStatsDLine checks that any metric name, attribute key and value (route
// templates, user agents, tenant ids: outside input) yield one well-formed
// DogStatsD line and one well-formed plain StatsD line (Graphite-safe path
// nodes) carrying the exact value.
func FuzzStatsDLine(f *testing.F) {
	f.Add("http.server.request.duration", "http.route", "GET /orders/{id}")
	f.Add("a:b|c", "k:ey", "v,a|l#u@e\nnext")
	f.Add("", "", "")
	f.Add("ünïcode", "ключ", "值 with spaces")
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(f, err)
	defer sink.Close()
	dog, err := NewStatsDExporter(StatsDConfig{Addr: sink.LocalAddr().String(), MaxPacketSize: 65000})
	require.NoError(f, err)
	defer dog.Shutdown(context.Background())
	graphite, err := NewStatsDExporter(StatsDConfig{Addr: sink.LocalAddr().String(), MaxPacketSize: 65000, Format: PlainStatsD})
	require.NoError(f, err)
	defer graphite.Shutdown(context.Background())
	buf := make([]byte, 65536)

	f.Fuzz(func(t *testing.T, name, key, value string) {
		if len(name)+len(key)+len(value) > 2000 {
			return
		}
		rm := &metricdata.ResourceMetrics{ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{{
			Name: name,
			Data: metricdata.Sum[int64]{IsMonotonic: true, Temporality: metricdata.DeltaTemporality,
				DataPoints: []metricdata.DataPoint[int64]{{
					Attributes: attribute.NewSet(attribute.String(key, value)), Value: 42}}},
		}}}}}
		for _, exp := range []*StatsDExporter{dog, graphite} {
			require.NoError(t, exp.Export(context.Background(), rm))
			require.NoError(t, sink.SetReadDeadline(time.Now().Add(datagramWait)))
			n, err := sink.Read(buf)
			require.NoError(t, err)
			line := string(buf[:n])
			require.NotContains(t, line, "\n", "one line")
			mname, rest, ok := strings.Cut(line, ":")
			require.True(t, ok)
			parts := strings.Split(rest, "|")
			require.Equal(t, "42", parts[0], "value of %q", line)
			require.Equal(t, "c", parts[1], "type of %q", line)
			require.Equal(t, strings.TrimSpace(mname), mname, "no whitespace in the name %q", mname)
			if exp == dog && len(parts) > 2 {
				require.Len(t, parts, 3, "only a tag section in %q", line)
				tags := strings.TrimPrefix(parts[2], "#")
				require.NotContains(t, tags, ",", "one tag in %q", line)
				k, _, ok := strings.Cut(tags, ":")
				require.True(t, ok, "tag %q is key:value", tags)
				require.Equal(t, sanitizeTagKey(key), k)
			}
			if exp == graphite {
				require.Len(t, parts, 2, "no tags in plain StatsD %q", line)
				for node := range strings.SplitSeq(mname, ".") {
					require.NotEmpty(t, node, "no empty path node in %q", mname)
					require.Equal(t, sanitizeGraphite(node), node, "node of %q", mname)
				}
			}
		}
	})
}

// errAfter is a context whose Err turns to Canceled after n calls, to end
// an Export between datagrams without timing.
type errAfter struct {
	context.Context
	n int
}

func (c *errAfter) Err() error {
	if c.n <= 0 {
		return context.Canceled
	}
	c.n--
	return nil
}

func TestStatsDExportStopsBetweenDatagramsWhenContextEnds(t *testing.T) {
	t.Parallel()
	sink := newUDPSink(t)
	exp, err := NewStatsDExporter(StatsDConfig{Addr: sink.addr(), MaxPacketSize: 200})
	require.NoError(t, err)
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	r := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(exp.Temporality))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c, _ := mp.Meter("test").Int64Counter("c")
	for i := range 100 {
		c.Add(context.Background(), 1, metric.WithAttributes(attribute.Int("i", i)))
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))

	// One check before the metric, then one before each datagram: two go out.
	ctx := &errAfter{Context: context.Background(), n: 3}
	assert.ErrorIs(t, exp.Export(ctx, &rm), context.Canceled)
	assert.Equal(t, uint64(2), exp.Stats().Packets, "datagrams sent before ctx ended")
	assert.Len(t, sink.packets(t, exp), 2)
	assert.NoError(t, exp.Export(context.Background(), &rm), "the next export runs normally")
}
