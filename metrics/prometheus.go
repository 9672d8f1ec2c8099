package metrics

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// promGatherer is the registry as Handler serves it, with two changes that
// `promtool check metrics` asks for. Gauges whose name the OpenTelemetry
// exporter ends in "_count" are renamed to a plural noun
// (db_client_connection_count → db_client_connections, go_goroutine_count
// → go_goroutines), since Prometheus reserves the _count suffix for
// histograms and summaries. Durations in milliseconds, microseconds or
// nanoseconds (go-redis's db_client_connections_use_time_milliseconds)
// are served in seconds, Prometheus's base unit: renamed and scaled.
//
// The rename is done here rather than with a View, which would rename the
// instrument for every exporter: OTLP and StatsD keep the semantic
// convention's name (db.client.connection.count). A name already taken by
// another family is left as it is.
type promGatherer struct{ prometheus.Gatherer }

func (g promGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.Gatherer.Gather()
	taken := make(map[string]bool, len(mfs))
	for _, mf := range mfs {
		taken[mf.GetName()] = true
	}
	renamed := false
	for _, mf := range mfs {
		if name, factor, ok := promSecondsName(mf.GetName()); ok && !taken[name] {
			taken[name] = true
			mf.Name = &name
			scale(mf, factor)
			renamed = true
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM, dto.MetricType_SUMMARY:
			continue
		}
		name, ok := promCountName(mf.GetName())
		if !ok || taken[name] {
			continue
		}
		taken[name] = true
		mf.Name = &name
		renamed = true
	}
	if renamed {
		slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	}
	return mfs, err
}

// timeUnits are the Prometheus name suffixes of durations not in seconds
// (OpenTelemetry units ms, us, ns), with their factor to seconds.
var timeUnits = []struct {
	suffix string
	factor float64
}{{"_milliseconds", 1e-3}, {"_microseconds", 1e-6}, {"_nanoseconds", 1e-9}}

// promSecondsName turns "x_milliseconds" into "x_seconds" (and
// "x_nanoseconds_total" into "x_seconds_total"), returning the factor the
// values are scaled by; ok is false for other names.
func promSecondsName(name string) (string, float64, bool) {
	for _, u := range timeUnits {
		for _, tail := range []string{"", "_total"} {
			if base, ok := strings.CutSuffix(name, u.suffix+tail); ok && base != "" {
				return base + "_seconds" + tail, u.factor, true
			}
		}
	}
	return "", 0, false
}

// scale multiplies every value of mf that is a duration by f: counter,
// gauge and untyped values, histogram sums and bucket bounds, summary sums
// and quantile values (counts stay as they are).
func scale(mf *dto.MetricFamily, f float64) {
	mul := func(p *float64) *float64 {
		v := *p * f
		return &v
	}
	for _, m := range mf.GetMetric() {
		if c := m.GetCounter(); c != nil && c.Value != nil {
			c.Value = mul(c.Value)
		}
		if g := m.GetGauge(); g != nil && g.Value != nil {
			g.Value = mul(g.Value)
		}
		if u := m.GetUntyped(); u != nil && u.Value != nil {
			u.Value = mul(u.Value)
		}
		if h := m.GetHistogram(); h != nil {
			if h.SampleSum != nil {
				h.SampleSum = mul(h.SampleSum)
			}
			for _, b := range h.GetBucket() {
				if b.UpperBound != nil {
					b.UpperBound = mul(b.UpperBound)
				}
			}
		}
		if s := m.GetSummary(); s != nil {
			if s.SampleSum != nil {
				s.SampleSum = mul(s.SampleSum)
			}
			for _, q := range s.GetQuantile() {
				if q.Value != nil {
					q.Value = mul(q.Value)
				}
			}
		}
	}
}

// promCountName turns "x_thing_count" into "x_things"; ok is false for a
// name without the _count suffix (or nothing before it).
func promCountName(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, "_count")
	if !ok || base == "" || strings.HasSuffix(base, "_") {
		return "", false
	}
	for _, suf := range []string{"s", "x", "z", "ch", "sh"} {
		if strings.HasSuffix(base, suf) {
			return base + "es", true
		}
	}
	return base + "s", true
}
