package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// StatsDFormat selects the wire dialect of a StatsDExporter.
type StatsDFormat int

const (
	// DogStatsD sends attributes as tags: "name:1|c|#k:v,k2:v2". The default.
	DogStatsD StatsDFormat = iota
	// Graphite sends plain StatsD with attributes folded into a dotted name:
	// "name.k.v.k2.v2:1|c" (dots and other separators in keys and values
	// become "_"); histogram buckets end in ".le.0_005" … ".le.inf".
	Graphite
)

// StatsDConfig configures a StatsDExporter. The zero value sends DogStatsD
// to 127.0.0.1:8125.
type StatsDConfig struct {
	// Addr is the agent's UDP host:port. Default "127.0.0.1:8125".
	Addr string
	// Format is DogStatsD (default) or Graphite.
	Format StatsDFormat
	// NamePrefix is prepended to every metric name with a dot ("servio" →
	// "servio.http.server.request.duration"). Default none.
	NamePrefix string
	// Tags are added to every line (DogStatsD only), e.g. env:prod.
	Tags []attribute.KeyValue
	// MaxPacketSize bounds one UDP datagram. Default 1432 (a 1500-byte MTU
	// less IP and UDP headers); use 8192 for a local agent over loopback.
	MaxPacketSize int
	// Distributions sends histograms as DogStatsD distributions ("|d"): one
	// sample per non-empty bucket at the bucket's midpoint (clamped to the
	// observed min/max), with sample rate 1/count so the agent counts every
	// observation. Percentiles are then computed by the agent to bucket
	// precision. Default: bucket counters tagged le plus count and sum.
	Distributions bool
	// WriteTimeout bounds one datagram write. Default 100 ms.
	WriteTimeout time.Duration
	// Logger receives write errors, at most one line a minute. Default slog.Default().
	Logger *slog.Logger
}

// StatsDStats counts what a StatsDExporter sent since it was created.
type StatsDStats struct {
	Packets, Bytes uint64 // datagrams written and their bytes
	Lines          uint64 // metric lines batched into datagrams
	WriteErrors    uint64 // datagrams whose write failed
}

// StatsDExporter is an sdk/metric Exporter that writes StatsD or DogStatsD
// lines over UDP. Install it with sdkmetric.NewPeriodicReader (Setup does).
//
// It selects delta temporality for counters and histograms, so a counter is
// sent as the exact increment since the previous export ("|c"), and cumulative
// temporality for up-down counters and gauges, which are sent as absolute
// gauges ("|g") every export, a negative value as "0" then the value (plain
// StatsD reads a signed gauge value as a change). Histograms become
// counters: name.count, name.sum and name.bucket tagged le:<bound>
// (Prometheus style: observations ≤ bound, +Inf last), or DogStatsD
// distributions with StatsDConfig.Distributions; exponential histograms send
// only name.count and name.sum. Attribute renderings and metric names are
// cached. Lines are batched into datagrams of at most MaxPacketSize bytes; a
// single longer line goes out alone.
//
// Export runs on the periodic reader's goroutine (in ForceFlush and
// Shutdown, on their caller's), never on a path that records; it does not
// retry. Write errors are counted (Stats), logged at most once a minute and
// not returned, since the SDK would log each again. Safe for concurrent use.
type StatsDExporter struct {
	cfg    StatsDConfig
	conn   net.Conn
	logger *slog.Logger

	mu       sync.Mutex // guards everything below and serialises Export
	closed   bool
	ctx      context.Context // the running Export's, for flush
	ctxErr   error           // set when flush dropped a datagram because ctx ended
	buf      []byte
	line     []byte
	num      []byte
	tags     map[attribute.Distinct]string
	names    map[string]string
	constTag string
	lastLog  time.Time
	firstErr error

	packets, bytes, lines, writeErrors atomic.Uint64
}

var _ sdkmetric.Exporter = (*StatsDExporter)(nil)

const maxCachedTagSets = 8192

// NewStatsDExporter dials cfg.Addr (UDP: no packet is sent) and returns the
// exporter. It returns an error wrapping ErrInvalidConfig for bad settings.
func NewStatsDExporter(cfg StatsDConfig) (*StatsDExporter, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8125"
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = 1432
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.MaxPacketSize < 64 || cfg.MaxPacketSize > 65000:
		return nil, fmt.Errorf("%w: StatsD MaxPacketSize %d not in [64, 65000]", ErrInvalidConfig, cfg.MaxPacketSize)
	case cfg.WriteTimeout < 0:
		return nil, fmt.Errorf("%w: negative StatsD WriteTimeout", ErrInvalidConfig)
	case cfg.Format != DogStatsD && cfg.Format != Graphite:
		return nil, fmt.Errorf("%w: unknown StatsD format %d", ErrInvalidConfig, cfg.Format)
	case cfg.Distributions && cfg.Format != DogStatsD:
		return nil, fmt.Errorf("%w: StatsD Distributions need the DogStatsD format", ErrInvalidConfig)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("%w: StatsD Addr %q: %w", ErrInvalidConfig, cfg.Addr, err)
	}
	conn, err := net.Dial("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: statsd dial %s: %w", cfg.Addr, err)
	}
	e := &StatsDExporter{
		cfg:    cfg,
		conn:   conn,
		logger: cfg.Logger,
		buf:    make([]byte, 0, cfg.MaxPacketSize),
		tags:   make(map[attribute.Distinct]string),
		names:  make(map[string]string),
	}
	for i, kv := range cfg.Tags {
		if i > 0 {
			e.constTag += ","
		}
		e.constTag += sanitizeTagKey(string(kv.Key)) + ":" + sanitizeTag(kv.Value.String())
	}
	return e, nil
}

// Temporality returns delta for counters and histograms and cumulative for
// up-down counters and gauges (so a gauge's last value is sent every export).
func (e *StatsDExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	switch k {
	case sdkmetric.InstrumentKindUpDownCounter, sdkmetric.InstrumentKindObservableUpDownCounter,
		sdkmetric.InstrumentKindGauge, sdkmetric.InstrumentKindObservableGauge:
		return metricdata.CumulativeTemporality
	default:
		return metricdata.DeltaTemporality
	}
}

// Aggregation returns the SDK default aggregation for k.
func (e *StatsDExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

// Stats returns the counts of packets, bytes and lines sent and of failed writes.
func (e *StatsDExporter) Stats() StatsDStats {
	return StatsDStats{
		Packets: e.packets.Load(), Bytes: e.bytes.Load(),
		Lines: e.lines.Load(), WriteErrors: e.writeErrors.Load(),
	}
}

// Export writes rm as StatsD lines. It returns ErrClosed after Shutdown.
// Each datagram write waits at most WriteTimeout and not past ctx's
// deadline; once ctx ends Export sends nothing more and returns ctx.Err().
// Write errors are counted (Stats) and logged, not returned.
func (e *StatsDExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if rm == nil {
		return nil
	}
	e.ctx, e.ctxErr, e.firstErr = ctx, nil, nil
	defer func() { e.ctx = nil }()
	e.buf = e.buf[:0]
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if err := ctx.Err(); err != nil {
				return err
			}
			e.exportMetric(m)
		}
	}
	e.flush()
	if e.firstErr != nil && time.Since(e.lastLog) > time.Minute {
		e.lastLog = time.Now()
		e.logger.Warn("metrics: statsd write failed", "addr", e.cfg.Addr, "err", e.firstErr,
			"write_errors", e.writeErrors.Load())
	}
	return e.ctxErr
}

// ForceFlush does nothing: Export sends everything before it returns.
func (e *StatsDExporter) ForceFlush(ctx context.Context) error { return ctx.Err() }

// Shutdown closes the socket, after a running Export. It is idempotent;
// closing does not block, so ctx is not consulted.
func (e *StatsDExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if err := e.conn.Close(); err != nil {
		return fmt.Errorf("metrics: statsd close: %w", err)
	}
	return nil
}

func (e *StatsDExporter) exportMetric(m metricdata.Metrics) {
	name := e.name(m.Name)
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		typ := sumType(d.IsMonotonic, d.Temporality)
		for _, dp := range d.DataPoints {
			e.emitInt(name, "", dp.Value, typ, &dp.Attributes, "")
		}
	case metricdata.Sum[float64]:
		typ := sumType(d.IsMonotonic, d.Temporality)
		for _, dp := range d.DataPoints {
			e.emitFloat(name, "", dp.Value, typ, "", &dp.Attributes, "")
		}
	case metricdata.Gauge[int64]:
		for _, dp := range d.DataPoints {
			e.emitInt(name, "", dp.Value, "g", &dp.Attributes, "")
		}
	case metricdata.Gauge[float64]:
		for _, dp := range d.DataPoints {
			e.emitFloat(name, "", dp.Value, "g", "", &dp.Attributes, "")
		}
	case metricdata.Histogram[int64]:
		for _, dp := range d.DataPoints {
			mn, minOK := dp.Min.Value()
			mx, maxOK := dp.Max.Value()
			e.histogram(name, dp.Bounds, dp.BucketCounts, dp.Count, float64(dp.Sum),
				float64(mn), minOK, float64(mx), maxOK, &dp.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			mn, minOK := dp.Min.Value()
			mx, maxOK := dp.Max.Value()
			e.histogram(name, dp.Bounds, dp.BucketCounts, dp.Count, dp.Sum, mn, minOK, mx, maxOK, &dp.Attributes)
		}
	case metricdata.ExponentialHistogram[int64]:
		for _, dp := range d.DataPoints {
			e.emitInt(name, ".count", int64(dp.Count), "c", &dp.Attributes, "")
			e.emitFloat(name, ".sum", float64(dp.Sum), "c", "", &dp.Attributes, "")
		}
	case metricdata.ExponentialHistogram[float64]:
		for _, dp := range d.DataPoints {
			e.emitInt(name, ".count", int64(dp.Count), "c", &dp.Attributes, "")
			e.emitFloat(name, ".sum", dp.Sum, "c", "", &dp.Attributes, "")
		}
	}
}

func sumType(monotonic bool, t metricdata.Temporality) string {
	if monotonic && t == metricdata.DeltaTemporality {
		return "c"
	}
	return "g"
}

func (e *StatsDExporter) histogram(name string, bounds []float64, counts []uint64, count uint64, sum float64,
	mn float64, minOK bool, mx float64, maxOK bool, attrs *attribute.Set) {
	if count == 0 {
		return
	}
	if e.cfg.Distributions {
		for i, c := range counts {
			if c == 0 {
				continue
			}
			v := bucketMidpoint(bounds, i, mn, minOK, mx, maxOK)
			rate := ""
			if c > 1 {
				rate = strconv.FormatFloat(1/float64(c), 'g', -1, 64)
			}
			e.emitFloat(name, "", v, "d", rate, attrs, "")
		}
		return
	}
	e.emitInt(name, ".count", int64(count), "c", attrs, "")
	e.emitFloat(name, ".sum", sum, "c", "", attrs, "")
	var cum uint64
	for i, c := range counts {
		cum += c
		if cum == 0 {
			continue // a zero increment changes no counter
		}
		le := "+Inf"
		if i < len(bounds) {
			le = strconv.FormatFloat(bounds[i], 'g', -1, 64)
		}
		e.emitInt(name, ".bucket", int64(cum), "c", attrs, le)
	}
}

func bucketMidpoint(bounds []float64, i int, mn float64, minOK bool, mx float64, maxOK bool) float64 {
	lo, hi := math.Inf(-1), math.Inf(1)
	if i > 0 {
		lo = bounds[i-1]
	}
	if i < len(bounds) {
		hi = bounds[i]
	}
	if minOK && mn > lo {
		lo = mn
	}
	if maxOK && mx < hi {
		hi = mx
	}
	switch {
	case math.IsInf(lo, -1) && math.IsInf(hi, 1):
		return 0
	case math.IsInf(lo, -1):
		return hi
	case math.IsInf(hi, 1):
		return lo
	}
	return (lo + hi) / 2
}

func (e *StatsDExporter) emitInt(name, suffix string, v int64, typ string, attrs *attribute.Set, le string) {
	e.num = strconv.AppendInt(e.num[:0], v, 10)
	e.emit(name, suffix, typ, "", attrs, le)
}

func (e *StatsDExporter) emitFloat(name, suffix string, v float64, typ, rate string, attrs *attribute.Set, le string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if v == 0 {
		v = 0 // -0 would read as a gauge change
	}
	e.num = strconv.AppendFloat(e.num[:0], v, 'f', -1, 64)
	e.emit(name, suffix, typ, rate, attrs, le)
}

// emit adds the line for the value in e.num. StatsD servers (and Telegraf)
// read a gauge value with a sign as a change to the gauge, so a negative
// gauge is sent as "0" then the value, in one datagram: set to zero, then
// lowered to the value. DogStatsD agents just keep the last.
func (e *StatsDExporter) emit(name, suffix, typ, rate string, attrs *attribute.Set, le string) {
	e.line = e.line[:0]
	lines := 1
	if typ == "g" && e.num[0] == '-' {
		e.line = e.appendLine(e.line, name, suffix, zeroValue, typ, rate, attrs, le)
		e.line = append(e.line, '\n')
		lines = 2
	}
	e.line = e.appendLine(e.line, name, suffix, e.num, typ, rate, attrs, le)
	e.add(e.line, lines)
}

var zeroValue = []byte("0")

// appendLine appends "name:value|type[|@rate][|#tags]" (DogStatsD) or
// "name.tags:value|type[|@rate]" (Graphite).
func (e *StatsDExporter) appendLine(b []byte, name, suffix string, value []byte, typ, rate string, attrs *attribute.Set, le string) []byte {
	b = e.appendName(b, name, suffix, attrs, le)
	b = append(b, ':')
	b = append(b, value...)
	b = append(b, '|')
	b = append(b, typ...)
	if rate != "" {
		b = append(b, "|@"...)
		b = append(b, rate...)
	}
	if e.cfg.Format == DogStatsD {
		tags := e.tagString(attrs)
		if tags != "" || le != "" {
			b = append(b, "|#"...)
			b = append(b, tags...)
			if le != "" {
				if tags != "" {
					b = append(b, ',')
				}
				b = append(b, "le:"...)
				b = append(b, le...)
			}
		}
	}
	return b
}

func (e *StatsDExporter) appendName(b []byte, name, suffix string, attrs *attribute.Set, le string) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if e.cfg.Format == Graphite {
		b = append(b, e.tagString(attrs)...)
		switch le {
		case "":
		case "+Inf":
			b = append(b, ".le.inf"...)
		default:
			b = append(b, ".le."...)
			b = append(b, sanitizeGraphite(le)...) // 0.005 → 0_005
		}
	}
	return b
}

// add appends lines (n of them) to the datagram, sending the datagram first
// when they would not fit. Lines longer than MaxPacketSize go out alone.
func (e *StatsDExporter) add(lines []byte, n int) {
	if len(e.buf) > 0 && len(e.buf)+1+len(lines) > e.cfg.MaxPacketSize {
		e.flush()
	}
	if len(e.buf) > 0 {
		e.buf = append(e.buf, '\n')
	}
	e.buf = append(e.buf, lines...)
	e.lines.Add(uint64(n))
}

// flush sends the datagram. The write waits at most WriteTimeout, and not
// past ctx's deadline; once ctx is done nothing more is sent.
func (e *StatsDExporter) flush() {
	if len(e.buf) == 0 {
		return
	}
	defer func() { e.buf = e.buf[:0] }()
	if err := e.ctx.Err(); err != nil {
		e.ctxErr = err
		return
	}
	deadline := time.Now().Add(e.cfg.WriteTimeout)
	if d, ok := e.ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = e.conn.SetWriteDeadline(deadline)
	n, err := e.conn.Write(e.buf)
	if err != nil {
		e.writeErrors.Add(1)
		if e.firstErr == nil {
			e.firstErr = err
		}
		return
	}
	e.packets.Add(1)
	e.bytes.Add(uint64(n))
}

// name returns the prefixed, sanitised metric name, cached.
func (e *StatsDExporter) name(n string) string {
	if s, ok := e.names[n]; ok {
		return s
	}
	s := sanitizeName(n)
	if e.cfg.NamePrefix != "" {
		s = sanitizeName(e.cfg.NamePrefix) + "." + s
	}
	if len(e.names) >= maxCachedTagSets {
		clear(e.names)
	}
	e.names[n] = s
	return s
}

// tagString returns the cached rendering of attrs: "k:v,k2:v2" (with the
// constant tags first) for DogStatsD, ".k.v.k2.v2" for Graphite.
func (e *StatsDExporter) tagString(attrs *attribute.Set) string {
	key := attrs.Equivalent()
	if s, ok := e.tags[key]; ok {
		return s
	}
	var b []byte
	if e.cfg.Format == DogStatsD {
		b = append(b, e.constTag...)
	}
	for it := attrs.Iter(); it.Next(); {
		kv := it.Attribute()
		if e.cfg.Format == Graphite {
			b = append(b, '.')
			b = append(b, sanitizeGraphite(string(kv.Key))...)
			b = append(b, '.')
			b = append(b, sanitizeGraphite(kv.Value.String())...)
			continue
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = append(b, sanitizeTagKey(string(kv.Key))...)
		b = append(b, ':')
		b = append(b, sanitizeTag(kv.Value.String())...)
	}
	s := string(b)
	if len(e.tags) >= maxCachedTagSets {
		clear(e.tags)
	}
	e.tags[key] = s
	return s
}

// sanitizeName replaces the StatsD separators (: | @ # , and whitespace) in a
// metric name with "_".
func sanitizeName(s string) string {
	return replaceBytes(s, func(c byte) bool {
		return c == ':' || c == '|' || c == '@' || c == '#' || c == ',' || c <= ' ' || c == 0x7f
	})
}

// sanitizeTag replaces the DogStatsD tag separators (, | # and whitespace).
// Colons are allowed in tag values.
func sanitizeTag(s string) string {
	return replaceBytes(s, func(c byte) bool {
		return c == ',' || c == '|' || c == '#' || c == '@' || c <= ' ' || c == 0x7f
	})
}

// sanitizeTagKey is sanitizeTag that also replaces ":", which would end
// the key early.
func sanitizeTagKey(s string) string {
	return replaceBytes(s, func(c byte) bool {
		return c == ':' || c == ',' || c == '|' || c == '#' || c == '@' || c <= ' ' || c == 0x7f
	})
}

// sanitizeGraphite keeps [A-Za-z0-9_-] and replaces everything else
// (including dots, which would add path levels) with "_".
func sanitizeGraphite(s string) string {
	return replaceBytes(s, func(c byte) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-')
	})
}

func replaceBytes(s string, bad func(byte) bool) string {
	for i := 0; i < len(s); i++ {
		if bad(s[i]) {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if bad(b[j]) {
					b[j] = '_'
				}
			}
			return string(b)
		}
	}
	return s
}
