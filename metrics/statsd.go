package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
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
	// DogStatsD sends attributes as tags ("name:1|c|#k:v,k2:v2") and
	// histograms as DogStatsD histograms ("|h") or, with
	// StatsDConfig.Distributions, distributions ("|d"). The default.
	DogStatsD StatsDFormat = iota
	// PlainStatsD is the Etsy StatsD protocol (the statsd daemon from npm,
	// Telegraf's statsd input, statsite, ...): attributes are folded into
	// the name as Graphite path nodes ("name.k.v.k2.v2:1|c"; an attribute
	// with an empty value is left out, and characters other than
	// [A-Za-z0-9_-] in a node become "_"), and histograms become timers
	// ("name:12.5|ms").
	PlainStatsD
)

// String returns "dogstatsd" or "statsd".
func (f StatsDFormat) String() string {
	switch f {
	case DogStatsD:
		return "dogstatsd"
	case PlainStatsD:
		return "statsd"
	}
	return "StatsDFormat(" + strconv.Itoa(int(f)) + ")"
}

// ParseStatsDFormat returns the format String names: "dogstatsd" or
// "statsd" ("" is DogStatsD, the default). Any other name is an error
// wrapping ErrInvalidConfig.
func ParseStatsDFormat(s string) (StatsDFormat, error) {
	switch s {
	case "", "dogstatsd":
		return DogStatsD, nil
	case "statsd":
		return PlainStatsD, nil
	}
	return 0, fmt.Errorf("%w: StatsD format %q (want statsd or dogstatsd)", ErrInvalidConfig, s)
}

// StatsDConfig configures a StatsDExporter. The zero value sends DogStatsD
// to 127.0.0.1:8125.
type StatsDConfig struct {
	// Addr is the agent's UDP host:port. Default "127.0.0.1:8125".
	Addr string
	// Format is DogStatsD (default) or PlainStatsD.
	Format StatsDFormat
	// NamePrefix is prepended to every metric name with a dot ("servio" →
	// "servio.http.server.request.duration"). Default none.
	NamePrefix string
	// Tags are added to every line: as DogStatsD tags (env:prod), or in
	// PlainStatsD as name nodes before the attributes' (name.env.prod).
	Tags []attribute.KeyValue
	// MaxPacketSize bounds one UDP datagram. Default 1432 (a 1500-byte MTU
	// less IP and UDP headers); use 8192 for a local agent over loopback.
	MaxPacketSize int
	// Distributions sends histograms as DogStatsD distributions ("|d")
	// instead of DogStatsD histograms ("|h"). DogStatsD only: a plain
	// StatsD server has no distributions and would count "|d" lines as
	// counters, so NewStatsDExporter refuses it with PlainStatsD.
	Distributions bool
	// MaxTimerLines bounds the timer lines one histogram series sends per
	// export in PlainStatsD. A series with more observations in the
	// interval is sent as MaxTimerLines lines with sample rate
	// MaxTimerLines/count (see StatsDExporter). Default 1000; at least 10.
	MaxTimerLines int
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
// sent as the exact increment since the previous export ("|c"; an increment
// of zero is not sent), and cumulative temporality for up-down counters and
// gauges, which are sent as absolute gauges ("|g") every export, a negative
// value as "0" then the value (plain StatsD reads a signed gauge value as a
// change).
//
// Histograms (explicit-bucket and exponential) are sent as the values a
// StatsD server expects one line per observation for: timers ("|ms") in
// PlainStatsD, "|h" or "|d" in DogStatsD. Durations (unit s, ms, us or
// ns) are sent in milliseconds, other histograms in their own unit. The
// exporter only has each interval's bucket counts, min, max and sum, so it
// sends the exact min and max as lines of their own and every other
// observation at one value inside its bucket; those values are placed at
// the same fraction of each bucket's width (buckets clamped to [min, max]),
// the fraction chosen so that the values add up to the exact sum. What the
// server computes from them:
//
//   - count, lower (min), upper (max) and sum, so mean: exact. (The sum
//     is reachable because the true values lie in the same buckets.)
//   - median, upper_90, p95 ...: within the bucket that holds the true
//     percentile.
//
// In DogStatsD one line carries a bucket's observations with sample rate
// 1/n, written so that the agent's uint(1/rate) is exactly n (the agent
// inserts that many copies): nothing is lost or added. The Etsy daemon
// averages a timer's lines without weighting them by their rates, so in
// PlainStatsD each observation is a line of its own, up to MaxTimerLines
// per series and interval. Beyond that, the observations in ascending order
// are cut into MaxTimerLines equal slices, each sent as one line at its
// slice's mean with sample rate r = MaxTimerLines/count: count (the daemon
// adds 1/r per line) is exact up to floating-point rounding (relative
// error below 1e-12), the mean stays exact, percentiles move by at most one
// slice (1/MaxTimerLines) in rank, and lower and upper become the means of
// the lowest and highest slice.
// StatsD rejects a negative timer, so a PlainStatsD histogram series whose
// min is negative is sent as counters name.count and name.sum instead.
//
// Attribute renderings and metric names are cached. Lines are batched into
// datagrams of at most MaxPacketSize bytes; a single longer line goes out
// alone.
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
	if cfg.MaxTimerLines == 0 {
		cfg.MaxTimerLines = 1000
	}
	switch {
	case cfg.MaxPacketSize < 64 || cfg.MaxPacketSize > 65000:
		return nil, fmt.Errorf("%w: StatsD MaxPacketSize %d not in [64, 65000]", ErrInvalidConfig, cfg.MaxPacketSize)
	case cfg.WriteTimeout < 0:
		return nil, fmt.Errorf("%w: negative StatsD WriteTimeout", ErrInvalidConfig)
	case cfg.Format != DogStatsD && cfg.Format != PlainStatsD:
		return nil, fmt.Errorf("%w: unknown StatsD format %d", ErrInvalidConfig, cfg.Format)
	case cfg.Distributions && cfg.Format != DogStatsD:
		return nil, fmt.Errorf("%w: StatsD Distributions need the DogStatsD format (plain StatsD would count \"|d\" lines as counters)", ErrInvalidConfig)
	case cfg.MaxTimerLines < 10:
		return nil, fmt.Errorf("%w: StatsD MaxTimerLines %d below 10", ErrInvalidConfig, cfg.MaxTimerLines)
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
	for _, kv := range cfg.Tags {
		e.constTag = e.appendTag(e.constTag, kv)
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
			if typ == "c" && dp.Value == 0 {
				continue // nothing happened: a zero increment changes no counter
			}
			e.emitInt(name, "", dp.Value, typ, &dp.Attributes)
		}
	case metricdata.Sum[float64]:
		typ := sumType(d.IsMonotonic, d.Temporality)
		for _, dp := range d.DataPoints {
			if typ == "c" && dp.Value == 0 {
				continue
			}
			e.emitFloat(name, "", dp.Value, typ, "", &dp.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, dp := range d.DataPoints {
			e.emitInt(name, "", dp.Value, "g", &dp.Attributes)
		}
	case metricdata.Gauge[float64]:
		for _, dp := range d.DataPoints {
			e.emitFloat(name, "", dp.Value, "g", "", &dp.Attributes)
		}
	case metricdata.Histogram[int64]:
		for _, dp := range d.DataPoints {
			mn, minOK := dp.Min.Value()
			mx, maxOK := dp.Max.Value()
			h := histPoint{count: dp.Count, sum: float64(dp.Sum), min: float64(mn), max: float64(mx),
				minOK: minOK, maxOK: maxOK, spans: explicitSpans(dp.Bounds, dp.BucketCounts)}
			e.histogram(name, m.Unit, &h, &dp.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			mn, minOK := dp.Min.Value()
			mx, maxOK := dp.Max.Value()
			h := histPoint{count: dp.Count, sum: dp.Sum, min: mn, max: mx,
				minOK: minOK, maxOK: maxOK, spans: explicitSpans(dp.Bounds, dp.BucketCounts)}
			e.histogram(name, m.Unit, &h, &dp.Attributes)
		}
	case metricdata.ExponentialHistogram[int64]:
		for _, dp := range d.DataPoints {
			mn, minOK := dp.Min.Value()
			mx, maxOK := dp.Max.Value()
			h := histPoint{count: dp.Count, sum: float64(dp.Sum), min: float64(mn), max: float64(mx),
				minOK: minOK, maxOK: maxOK, spans: exponentialSpans(dp.Scale, dp.ZeroCount, dp.ZeroThreshold,
					dp.PositiveBucket.Offset, dp.PositiveBucket.Counts, dp.NegativeBucket.Offset, dp.NegativeBucket.Counts)}
			e.histogram(name, m.Unit, &h, &dp.Attributes)
		}
	case metricdata.ExponentialHistogram[float64]:
		for _, dp := range d.DataPoints {
			mn, minOK := dp.Min.Value()
			mx, maxOK := dp.Max.Value()
			h := histPoint{count: dp.Count, sum: dp.Sum, min: mn, max: mx,
				minOK: minOK, maxOK: maxOK, spans: exponentialSpans(dp.Scale, dp.ZeroCount, dp.ZeroThreshold,
					dp.PositiveBucket.Offset, dp.PositiveBucket.Counts, dp.NegativeBucket.Offset, dp.NegativeBucket.Counts)}
			e.histogram(name, m.Unit, &h, &dp.Attributes)
		}
	}
}

func sumType(monotonic bool, t metricdata.Temporality) string {
	if monotonic && t == metricdata.DeltaTemporality {
		return "c"
	}
	return "g"
}

// histogram sends one histogram point: as "|h"/"|d" lines weighted by their
// sample rates (DogStatsD) or as timer lines (PlainStatsD); see
// StatsDExporter for the values chosen.
func (e *StatsDExporter) histogram(name, unit string, h *histPoint, attrs *attribute.Set) {
	if h.count == 0 {
		return
	}
	h.scale(msPerUnit(unit))
	if e.cfg.Format == DogStatsD {
		typ := "h"
		if e.cfg.Distributions {
			typ = "d"
		}
		for _, s := range h.weighted() {
			rate := ""
			if s.n > 1 {
				rate = weightRate(s.n)
			}
			e.emitFloat(name, "", s.v, typ, rate, attrs)
		}
		return
	}
	if h.mayBeNegative() {
		// StatsD drops negative timers: count and sum stay exact.
		e.emitInt(name, ".count", int64(h.count), "c", attrs)
		e.emitFloat(name, ".sum", h.sum, "c", "", attrs)
		return
	}
	lines, rate := h.lines(e.cfg.MaxTimerLines)
	for _, s := range lines {
		for range s.n {
			e.emitFloat(name, "", s.v, "ms", rate, attrs)
		}
	}
}

// msPerUnit is the factor that turns a duration in unit into milliseconds,
// or 1 for a unit that is not a duration (sent as it is).
func msPerUnit(unit string) float64 {
	switch unit {
	case "s":
		return 1e3
	case "us", "µs":
		return 1e-3
	case "ns":
		return 1e-6
	}
	return 1
}

// weightRate returns the sample rate that makes one line count n times: the
// DogStatsD agent inserts uint(1/rate) copies, and 1/(1/n) falls short of n
// in floating point for some n (49: 48.99…), so the rate is lowered by
// ulps until 1/rate reaches n. The text round-trips to the same float64.
func weightRate(n uint64) string {
	r := 1 / float64(n)
	for uint64(1/r) < n {
		r = math.Nextafter(r, 0)
	}
	return strconv.FormatFloat(r, 'g', -1, 64)
}

func (e *StatsDExporter) emitInt(name, suffix string, v int64, typ string, attrs *attribute.Set) {
	e.num = strconv.AppendInt(e.num[:0], v, 10)
	e.emit(name, suffix, typ, "", attrs)
}

func (e *StatsDExporter) emitFloat(name, suffix string, v float64, typ, rate string, attrs *attribute.Set) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if v == 0 {
		v = 0 // -0 would read as a gauge change
	}
	e.num = strconv.AppendFloat(e.num[:0], v, 'f', -1, 64)
	e.emit(name, suffix, typ, rate, attrs)
}

// emit adds the line for the value in e.num. StatsD servers (and Telegraf)
// read a gauge value with a sign as a change to the gauge, so a negative
// gauge is sent as "0" then the value, in one datagram: set to zero, then
// lowered to the value. DogStatsD agents just keep the last.
func (e *StatsDExporter) emit(name, suffix, typ, rate string, attrs *attribute.Set) {
	e.line = e.line[:0]
	lines := 1
	if typ == "g" && e.num[0] == '-' {
		e.line = e.appendLine(e.line, name, suffix, zeroValue, typ, rate, attrs)
		e.line = append(e.line, '\n')
		lines = 2
	}
	e.line = e.appendLine(e.line, name, suffix, e.num, typ, rate, attrs)
	e.add(e.line, lines)
}

var zeroValue = []byte("0")

// appendLine appends "name:value|type[|@rate][|#tags]" (DogStatsD) or
// "name.k.v:value|type[|@rate]" (PlainStatsD).
func (e *StatsDExporter) appendLine(b []byte, name, suffix string, value []byte, typ, rate string, attrs *attribute.Set) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if e.cfg.Format == PlainStatsD {
		b = append(b, e.tagString(attrs)...)
	}
	b = append(b, ':')
	b = append(b, value...)
	b = append(b, '|')
	b = append(b, typ...)
	if rate != "" {
		b = append(b, "|@"...)
		b = append(b, rate...)
	}
	if e.cfg.Format == DogStatsD {
		if tags := e.tagString(attrs); tags != "" {
			b = append(b, "|#"...)
			b = append(b, tags...)
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
	sanitize := sanitizeName
	if e.cfg.Format == PlainStatsD {
		sanitize = sanitizeGraphitePath
	}
	s := n
	if e.cfg.NamePrefix != "" {
		s = e.cfg.NamePrefix + "." + s
	}
	s = sanitize(s)
	if len(e.names) >= maxCachedTagSets {
		clear(e.names)
	}
	e.names[n] = s
	return s
}

// appendTag adds one attribute to a rendering: ",k:v" (DogStatsD, no comma
// first) or ".k.v" (PlainStatsD: nothing for an empty value, which would
// make an empty path node, as Prometheus drops a label with an empty value).
func (e *StatsDExporter) appendTag(s string, kv attribute.KeyValue) string {
	v := kv.Value.String()
	if e.cfg.Format == PlainStatsD {
		if v == "" {
			return s
		}
		k := sanitizeGraphite(string(kv.Key))
		if k == "" {
			k = "_"
		}
		return s + "." + k + "." + sanitizeGraphite(v)
	}
	if s != "" {
		s += ","
	}
	return s + sanitizeTagKey(string(kv.Key)) + ":" + sanitizeTag(v)
}

// tagString returns the cached rendering of the constant tags and attrs:
// "k:v,k2:v2" for DogStatsD, ".k.v.k2.v2" for PlainStatsD.
func (e *StatsDExporter) tagString(attrs *attribute.Set) string {
	key := attrs.Equivalent()
	if s, ok := e.tags[key]; ok {
		return s
	}
	s := e.constTag
	for it := attrs.Iter(); it.Next(); {
		s = e.appendTag(s, it.Attribute())
	}
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
// (including dots, which would add path levels, spaces and slashes) with
// "_". The statsd daemon's own key sanitising then changes nothing.
func sanitizeGraphite(s string) string {
	return replaceBytes(s, notGraphite)
}

func notGraphite(c byte) bool {
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-')
}

// sanitizeGraphitePath is sanitizeGraphite for a dotted metric name: the
// dots stay, empty path nodes (leading, trailing or doubled dots) go, and
// an empty name becomes "_".
func sanitizeGraphitePath(s string) string {
	var b []byte
	for node := range strings.SplitSeq(s, ".") {
		if node == "" {
			continue
		}
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, sanitizeGraphite(node)...)
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
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
