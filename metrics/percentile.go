package metrics

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Percentiles summarises one histogram.
type Percentiles struct {
	Count         uint64  // observations
	Sum           float64 // of the observed values
	P50, P95, P99 float64 // estimated as by Quantile
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) of a histogram with explicit
// bounds and per-bucket counts (len(counts) == len(bounds)+1, the last being
// the overflow bucket), interpolating linearly inside the bucket like
// Prometheus' histogram_quantile: the first bucket starts at 0 (or at its
// bound when that is negative) and a quantile in the overflow bucket is the
// highest bound. It returns ErrNoData for an empty histogram.
func Quantile(q float64, bounds []float64, counts []uint64) (float64, error) {
	if q < 0 || q > 1 || math.IsNaN(q) {
		return 0, fmt.Errorf("metrics: quantile %v not in [0, 1]", q)
	}
	if len(counts) != len(bounds)+1 {
		return 0, fmt.Errorf("metrics: %d bucket counts for %d bounds", len(counts), len(bounds))
	}
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0, ErrNoData
	}
	if len(bounds) == 0 {
		return 0, fmt.Errorf("metrics: histogram has no bounds")
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range counts {
		if c == 0 || float64(cum+c) < rank {
			cum += c
			continue
		}
		if i == len(bounds) {
			return bounds[len(bounds)-1], nil
		}
		lo := 0.0
		if i > 0 {
			lo = bounds[i-1]
		} else if bounds[0] < 0 {
			lo = bounds[0]
		}
		return lo + (bounds[i]-lo)*(rank-float64(cum))/float64(c), nil
	}
	return bounds[len(bounds)-1], nil
}

// Histogram is an explicit-bucket histogram read back for reporting:
// Counts[i] observations fell in (Bounds[i-1], Bounds[i]], the last entry
// of Counts (len(Bounds)+1 in all) counting those above the highest bound.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Sum    float64
}

// Count returns the number of observations.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile estimates the q-quantile; see the package-level Quantile.
func (h Histogram) Quantile(q float64) (float64, error) { return Quantile(q, h.Bounds, h.Counts) }

// Percentiles returns count, sum, p50, p95 and p99, or ErrNoData when empty.
func (h Histogram) Percentiles() (Percentiles, error) {
	p := Percentiles{Count: h.Count(), Sum: h.Sum}
	var err error
	if p.P50, err = h.Quantile(0.50); err != nil {
		return p, err
	}
	p.P95, _ = h.Quantile(0.95)
	p.P99, _ = h.Quantile(0.99)
	return p, nil
}

// Sub returns the observations made between earlier and h (two reads of the
// same cumulative histogram), for reporting one phase of a load test.
func (h Histogram) Sub(earlier Histogram) (Histogram, error) {
	if len(earlier.Counts) == 0 {
		return h, nil
	}
	if !slices.Equal(h.Bounds, earlier.Bounds) || len(h.Counts) != len(earlier.Counts) {
		return Histogram{}, fmt.Errorf("metrics: subtracting histograms with different bounds")
	}
	out := Histogram{Bounds: slices.Clone(h.Bounds), Counts: make([]uint64, len(h.Counts)), Sum: h.Sum - earlier.Sum}
	for i, c := range h.Counts {
		if c < earlier.Counts[i] {
			return Histogram{}, fmt.Errorf("metrics: histogram went backwards (a restart?) in bucket %d", i)
		}
		out.Counts[i] = c - earlier.Counts[i]
	}
	return out, nil
}

// ReadPercentiles is ReadHistogram followed by Percentiles.
func ReadPercentiles(ctx context.Context, r sdkmetric.Reader, name string, match func(attribute.Set) bool) (Percentiles, error) {
	h, err := ReadHistogram(ctx, r, name, match)
	if err != nil {
		return Percentiles{}, err
	}
	return h.Percentiles()
}

// PromPercentiles is PromHistogram followed by Percentiles.
func PromPercentiles(families map[string]*dto.MetricFamily, name string, match map[string]string) (Percentiles, error) {
	h, err := PromHistogram(families, name, match)
	if err != nil {
		return Percentiles{}, err
	}
	return h.Percentiles()
}

// ReadHistogram collects r (a ManualReader passed in Config.Readers, say)
// and returns the histogram name, summed over the data
// points whose attributes match (nil: all). Exponential histograms (positive
// values) are merged at their lowest scale and read as explicit bounds at
// their bucket edges (at most 4096 buckets, coarser when the points lie
// far apart). It returns ErrNoData when nothing matched or nothing was
// recorded. ctx bounds the collection.
func ReadHistogram(ctx context.Context, r sdkmetric.Reader, name string, match func(attribute.Set) bool) (Histogram, error) {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(ctx, &rm); err != nil {
		return Histogram{}, fmt.Errorf("metrics: collect: %w", err)
	}
	var (
		bounds []float64
		counts []uint64
		sum    float64
	)
	add := func(b []float64, c []uint64, s float64, attrs *attribute.Set) error {
		if attrs != nil && match != nil && !match(*attrs) {
			return nil
		}
		if counts == nil {
			bounds, counts = b, make([]uint64, len(c))
		} else if !slices.Equal(bounds, b) {
			return fmt.Errorf("metrics: %s: data points with different bounds", name)
		}
		for i, n := range c {
			counts[i] += n
		}
		sum += s
		return nil
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if err := add(dp.Bounds, dp.BucketCounts, dp.Sum, &dp.Attributes); err != nil {
						return Histogram{}, err
					}
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					if err := add(dp.Bounds, dp.BucketCounts, float64(dp.Sum), &dp.Attributes); err != nil {
						return Histogram{}, err
					}
				}
			case metricdata.ExponentialHistogram[float64]:
				if b, c, s, ok := mergeExponential(d.DataPoints, match); ok {
					if err := add(b, c, s, nil); err != nil {
						return Histogram{}, err
					}
				}
			case metricdata.ExponentialHistogram[int64]:
				if b, c, s, ok := mergeExponential(d.DataPoints, match); ok {
					if err := add(b, c, s, nil); err != nil {
						return Histogram{}, err
					}
				}
			default:
				return Histogram{}, fmt.Errorf("metrics: %s is %T, not a histogram", name, m.Data)
			}
		}
	}
	if counts == nil {
		return Histogram{}, fmt.Errorf("metrics: %s: %w", name, ErrNoData)
	}
	return Histogram{Bounds: bounds, Counts: counts, Sum: sum}, nil
}

// ParsePrometheus parses the Prometheus text exposition format (what
// Provider.Handler serves) into metric families keyed by name.
func ParsePrometheus(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("metrics: parse prometheus text: %w", err)
	}
	return mf, nil
}

// PromHistogram returns the Prometheus histogram family
// name (e.g. "http_server_request_duration_seconds") in families, summed over
// the series whose labels include every pair in match (nil: all series).
// It returns ErrNoData when nothing matched or nothing was recorded.
func PromHistogram(families map[string]*dto.MetricFamily, name string, match map[string]string) (Histogram, error) {
	mf, ok := families[name]
	if !ok {
		return Histogram{}, fmt.Errorf("metrics: %s: %w", name, ErrNoData)
	}
	if mf.GetType() != dto.MetricType_HISTOGRAM {
		return Histogram{}, fmt.Errorf("metrics: %s is a %s, not a histogram", name, mf.GetType())
	}
	var (
		bounds []float64
		cumul  []uint64
		total  uint64
		sum    float64
		seen   bool
	)
	for _, m := range mf.GetMetric() {
		if !labelsMatch(m.GetLabel(), match) {
			continue
		}
		h := m.GetHistogram()
		var b []float64
		var c []uint64
		for _, bk := range h.GetBucket() {
			if math.IsInf(bk.GetUpperBound(), 1) {
				continue
			}
			b = append(b, bk.GetUpperBound())
			c = append(c, bk.GetCumulativeCount())
		}
		if !seen {
			bounds, cumul, seen = b, make([]uint64, len(c)), true
		} else if !slices.Equal(bounds, b) {
			return Histogram{}, fmt.Errorf("metrics: %s: series with different buckets", name)
		}
		for i, n := range c {
			cumul[i] += n
		}
		total += h.GetSampleCount()
		sum += h.GetSampleSum()
	}
	if !seen {
		return Histogram{}, fmt.Errorf("metrics: %s: %w", name, ErrNoData)
	}
	counts := make([]uint64, len(bounds)+1)
	var prev uint64
	for i, c := range cumul {
		if c < prev { // malformed input; keep counts non-negative
			c = prev
		}
		counts[i] = c - prev
		prev = c
	}
	if total > prev {
		counts[len(bounds)] = total - prev
	}
	return Histogram{Bounds: bounds, Counts: counts, Sum: sum}, nil
}

func labelsMatch(labels []*dto.LabelPair, match map[string]string) bool {
	for k, v := range match {
		found := false
		for _, l := range labels {
			if l.GetName() == k && l.GetValue() == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// maxMergedBuckets bounds the explicit buckets mergeExponential returns:
// points at a fine scale but far apart would otherwise need millions.
const maxMergedBuckets = 4096

// mergeExponential merges the positive halves of the base-2 exponential
// histogram points that match (nil: all) at their lowest scale, lowered
// further until at most maxMergedBuckets buckets span them, and returns
// explicit bounds and counts: first the zero count in a bucket ending at the
// lowest edge, then bucket index k covering (base^k, base^(k+1)] with
// base = 2^(2^-scale). ok is false when no point matched.
func mergeExponential[N int64 | float64](dps []metricdata.ExponentialHistogramDataPoint[N], match func(attribute.Set) bool) (bounds []float64, counts []uint64, sum float64, ok bool) {
	var pts []metricdata.ExponentialHistogramDataPoint[N]
	for _, dp := range dps {
		if match == nil || match(dp.Attributes) {
			pts = append(pts, dp)
		}
	}
	if len(pts) == 0 {
		return nil, nil, 0, false
	}
	scale := pts[0].Scale
	for _, p := range pts {
		scale = min(scale, p.Scale)
	}
	var (
		zero   uint64
		lo, hi int32
		byIdx  = map[int32]uint64{}
	)
	first := true
	for _, p := range pts {
		zero += p.ZeroCount
		sum += float64(p.Sum)
		shift := p.Scale - scale
		for i, c := range p.PositiveBucket.Counts {
			if c == 0 {
				continue
			}
			k := (p.PositiveBucket.Offset + int32(i)) >> shift
			byIdx[k] += c
			if first || k < lo {
				lo = k
			}
			if first || k > hi {
				hi = k
			}
			first = false
		}
	}
	if !first {
		var d int32
		for int64(hi>>d)-int64(lo>>d) >= maxMergedBuckets {
			d++
		}
		if d > 0 {
			coarse := make(map[int32]uint64, len(byIdx))
			for k, c := range byIdx {
				coarse[k>>d] += c
			}
			byIdx, lo, hi, scale = coarse, lo>>d, hi>>d, scale-d
		}
	}
	base := math.Exp2(math.Exp2(-float64(scale)))
	bounds = []float64{math.Pow(base, float64(lo))}
	counts = []uint64{zero}
	if !first {
		for k := lo; k <= hi; k++ {
			bounds = append(bounds, math.Pow(base, float64(k+1)))
			counts = append(counts, byIdx[k])
		}
	}
	return bounds, append(counts, 0), sum, true
}

// FetchPrometheus GETs a Prometheus text endpoint (a service's
// /health/metrics) with client (nil: http.DefaultClient) and parses it.
// ctx bounds the request.
func FetchPrometheus(ctx context.Context, client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: fetch %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("metrics: fetch %s: status %s", url, resp.Status)
	}
	return ParsePrometheus(resp.Body)
}
