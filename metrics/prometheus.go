package metrics

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// promGatherer is the registry as Handler serves it: gauges whose name the
// OpenTelemetry exporter ends in "_count" are renamed to a plural noun
// (db_client_connection_count → db_client_connections, go_goroutine_count
// → go_goroutines), since Prometheus reserves the _count suffix for
// histograms and summaries (`promtool check metrics` rejects the name).
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
