package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/servio/perfkit/metrics"
)

// families is one scrape of the service's /health/metrics.
type families map[string]*dto.MetricFamily

func scrape(ctx context.Context, c *http.Client, base string) (families, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return metrics.FetchPrometheus(ctx, c, base+"/health/metrics")
}

// sum adds the values of every series of the named counter, gauge or
// histogram (its count) whose labels include all of match.
func (f families) sum(name string, match map[string]string) (float64, bool) {
	mf, ok := f[name]
	if !ok {
		return 0, false
	}
	var total float64
	for _, m := range mf.GetMetric() {
		if !hasLabels(m.GetLabel(), match) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		}
	}
	return total, true
}

// histSum adds the sums of every series of the named histogram.
func (f families) histSum(name string) float64 {
	mf, ok := f[name]
	if !ok {
		return 0
	}
	var total float64
	for _, m := range mf.GetMetric() {
		if m.Histogram != nil {
			total += m.Histogram.GetSampleSum()
		}
	}
	return total
}

// find returns the first family name with the given prefix and suffix, so
// the report survives exporters that add unit and _total suffixes.
func (f families) find(prefix, suffix string) string {
	for name := range f {
		if strings.HasPrefix(name, prefix) && strings.HasSuffix(name, suffix) {
			return name
		}
	}
	return ""
}

func hasLabels(labels []*dto.LabelPair, match map[string]string) bool {
	for k, v := range match {
		if !slices.ContainsFunc(labels, func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
			return false
		}
	}
	return true
}

// delta is after − before of a counter-like series (0 when absent).
func delta(before, after families, name string, match map[string]string) float64 {
	a, _ := after.sum(name, match)
	b, _ := before.sum(name, match)
	return a - b
}

// sampler reads the DB pool's saturation once a second during the run and
// once more at its end, so even a run shorter than a second has a sample.
type sampler struct {
	c       *http.Client
	base    string
	mu      sync.Mutex
	samples []float64
	done    chan struct{}
}

func startSampler(ctx context.Context, c *http.Client, base string) *sampler {
	s := &sampler{c: c, base: base, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s.sample(ctx)
		}
	}()
	return s
}

func (s *sampler) sample(ctx context.Context) {
	f, err := scrape(ctx, s.c, s.base)
	if err != nil {
		return
	}
	if v, ok := poolSaturation(f); ok {
		s.mu.Lock()
		s.samples = append(s.samples, v)
		s.mu.Unlock()
	}
}

// stop waits for the sampling goroutine (its context must be done), takes
// the last sample and returns them all.
func (s *sampler) stop() []float64 {
	<-s.done
	s.sample(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// poolSaturation is in-use ÷ max connections of the service's DB pool.
func poolSaturation(f families) (float64, bool) {
	if n := f.find("perfkit_dbpool_connection_saturation", ""); n != "" {
		return f.sum(n, nil)
	}
	count, max := f.find("db_client_connections", ""), f.find("db_client_connection_max", "")
	if count == "" || max == "" {
		return 0, false
	}
	used, _ := f.sum(count, map[string]string{"db_client_connection_state": "used"})
	m, _ := f.sum(max, nil)
	if m == 0 {
		return 0, false
	}
	return used / m, true
}
