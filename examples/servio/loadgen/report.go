package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"text/tabwriter"
	"time"
)

// report is the result of one run.
type report struct {
	Mode         string          `json:"mode"`
	OfferedRate  float64         `json:"offered_rate,omitempty"`
	Duration     time.Duration   `json:"duration_ns"`
	Requests     uint64          `json:"requests"`
	Throughput   float64         `json:"throughput_rps"`
	ErrorRate    float64         `json:"error_rate"`
	Limited      uint64          `json:"limited_429"`
	ClientErrors uint64          `json:"client_errors_4xx"`
	Latency      percentiles     `json:"latency"`
	Routes       []routeReport   `json:"routes"`
	CacheHitRate float64         `json:"cache_hit_rate"` // NaN when the service exposes no cache metrics
	PoolSat      poolSaturations `json:"pool_saturation"`
	SlowShare    float64         `json:"slow_query_share"` // NaN when unknown
	Curve        []curvePoint    `json:"curve"`            // latency by percentile, for charts
}

// curvePoint is the latency at one percentile.
type curvePoint struct {
	Q       float64       `json:"q"`
	Latency time.Duration `json:"latency_ns"`
}

// curveQuantiles are spread evenly on a "nines" scale from p0 to p99.99.
var curveQuantiles = func() []float64 {
	var qs []float64
	for x := 0.0; x <= 4.0001; x += 0.1 {
		qs = append(qs, 1-math.Pow(10, -x))
	}
	return qs
}()

type percentiles struct {
	Mean, P50, P90, P95, P99, Max time.Duration
}

type routeReport struct {
	Route    string      `json:"route"`
	Requests uint64      `json:"requests"`
	Errors   uint64      `json:"errors"`
	Limited  uint64      `json:"limited_429"`
	Latency  percentiles `json:"latency"`
}

// poolSaturations describe how busy the service's DB pool was: Mean is the
// time-weighted share of its connections in use over the run (connection
// use time ÷ (duration × max connections)), Max the highest in-use ÷ max
// seen in the once-a-second samples. NaN when the service exposes no pool
// metrics.
type poolSaturations struct {
	Mean, Max float64
}

func pct(h *histogram) percentiles {
	return percentiles{h.mean(), h.quantile(.5), h.quantile(.9), h.quantile(.95), h.quantile(.99), h.max}
}

func newReport(o *options, rec *recorder, elapsed time.Duration, before, after families, sat []float64) *report {
	r := &report{
		Mode:         o.mode,
		Duration:     elapsed,
		Requests:     rec.all.n,
		Limited:      rec.lim,
		ClientErrors: rec.c4xx,
		Latency:      pct(&rec.all),
		CacheHitRate: cacheHitRate(before, after),
		PoolSat:      poolSat(before, after, elapsed, sat),
		SlowShare:    slowShare(before, after),
	}
	if o.mode == "open" {
		r.OfferedRate = o.rate
	}
	for _, q := range curveQuantiles {
		r.Curve = append(r.Curve, curvePoint{q, rec.all.quantile(q)})
	}
	if elapsed > 0 {
		r.Throughput = float64(rec.all.n) / elapsed.Seconds()
	}
	if rec.all.n > 0 {
		r.ErrorRate = float64(rec.errs) / float64(rec.all.n)
	}
	for _, k := range sortedRoutes(rec.routes) {
		s := rec.routes[k]
		r.Routes = append(r.Routes, routeReport{k, s.hist.n, s.errors, s.limited, pct(&s.hist)})
	}
	return r
}

// cacheHitRate is hits ÷ (hits + misses) of the service's cache over the run.
func cacheHitRate(before, after families) float64 {
	hits, misses := after.find("perfkit_cache_hits", ""), after.find("perfkit_cache_misses", "")
	if hits == "" || misses == "" {
		return math.NaN()
	}
	h, m := delta(before, after, hits, nil), delta(before, after, misses, nil)
	if h+m == 0 {
		return math.NaN()
	}
	return h / (h + m)
}

// slowShare is slow queries ÷ all queries over the run. The slow-query
// counter appears only once a query was slow, so its absence is 0.
func slowShare(before, after families) float64 {
	all := after.find("db_client_operation_duration", "")
	if all == "" {
		return math.NaN()
	}
	n := delta(before, after, all, nil)
	if n == 0 {
		return math.NaN()
	}
	slow := after.find("perfkit_dbpool_slow_queries", "")
	if slow == "" {
		return 0
	}
	return delta(before, after, slow, nil) / n
}

func poolSat(before, after families, elapsed time.Duration, samples []float64) poolSaturations {
	ps := poolSaturations{math.NaN(), math.NaN()}
	if len(samples) > 0 {
		ps.Max = slices.Max(samples)
	}
	use, maxName := after.find("db_client_connection_use_time", ""), after.find("db_client_connection_max", "")
	if use == "" || maxName == "" || elapsed <= 0 {
		return ps
	}
	if m, _ := after.sum(maxName, nil); m > 0 {
		ps.Mean = (after.histSum(use) - before.histSum(use)) / (elapsed.Seconds() * m)
	}
	return ps
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "mode %s", r.Mode)
	if r.OfferedRate > 0 {
		fmt.Fprintf(w, ", offered %.0f req/s", r.OfferedRate)
	}
	fmt.Fprintf(w, ", measured %v\n", r.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "requests %d  throughput %.1f req/s  errors %.3f%%  429s %d  other 4xx %d\n",
		r.Requests, r.Throughput, 100*r.ErrorRate, r.Limited, r.ClientErrors)
	fmt.Fprintf(w, "cache hit rate %s  pool saturation mean %s max %s  slow queries %s\n\n",
		percent(r.CacheHitRate), percent(r.PoolSat.Mean), percent(r.PoolSat.Max), percent(r.SlowShare))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "route\treqs\terrs\t429\tmean\tp50\tp90\tp95\tp99\tmax\t")
	row := func(name string, n, errs, lim uint64, p percentiles) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, n, errs, lim,
			ms(p.Mean), ms(p.P50), ms(p.P90), ms(p.P95), ms(p.P99), ms(p.Max))
	}
	for _, rr := range r.Routes {
		row(rr.Route, rr.Requests, rr.Errors, rr.Limited, rr.Latency)
	}
	row("all", r.Requests, uint64(math.Round(r.ErrorRate*float64(r.Requests))), r.Limited, r.Latency)
	tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func percent(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*x)
}

// writeJSON writes the report; NaNs (unknown figures) become null.
func (r *report) writeJSON(path string) error {
	type alias report
	b, err := json.MarshalIndent(struct {
		*alias
		CacheHitRate *float64 `json:"cache_hit_rate"`
		SlowShare    *float64 `json:"slow_query_share"`
		PoolSatMean  *float64 `json:"pool_saturation_mean"`
		PoolSatMax   *float64 `json:"pool_saturation_max"`
		PoolSat      struct{} `json:"pool_saturation,omitempty"`
	}{alias: (*alias)(r), CacheHitRate: num(r.CacheHitRate), SlowShare: num(r.SlowShare),
		PoolSatMean: num(r.PoolSat.Mean), PoolSatMax: num(r.PoolSat.Max)}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func num(x float64) *float64 {
	if math.IsNaN(x) {
		return nil
	}
	return &x
}
