package main

import (
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"
	"time"
)

// writeHTML writes a self-contained page: the before/after table, a
// latency-by-percentile chart (log latency over a "nines" axis), and per
// route a bar chart of mean and p99 latency with a table, as inline SVG.
// where describes the data stores the runs used.
func writeHTML(path string, before, after *report, o *options, where string) error {
	var rows []map[string]string
	for _, r := range comparisonRows(before, after) {
		rows = append(rows, map[string]string{"Name": r.name, "Before": fmtVal(r.before, r.unit), "After": fmtVal(r.after, r.unit), "Ratio": ratio(r)})
	}
	pairs := routePairs(before, after)
	var routeRows []map[string]string
	for _, p := range pairs {
		routeRows = append(routeRows, map[string]string{"Route": p.route, "Requests": fmt.Sprintf("%d / %d", p.before.Requests, p.after.Requests),
			"BMean": fmtDur(p.before.Latency.Mean), "BP99": fmtDur(p.before.Latency.P99),
			"AMean": fmtDur(p.after.Latency.Mean), "AP99": fmtDur(p.after.Latency.P99),
			"Ratio": ratio(row{before: float64(p.before.Latency.Mean), after: float64(p.after.Latency.Mean), lowerIsBetter: true})})
	}
	data := map[string]any{
		"When":   time.Now().UTC().Format(time.RFC3339),
		"Setup":  fmt.Sprintf("mode %s, offered %.0f req/s, %v measured, writes %.1f%%, logins %.1f%%, assistant %.1f%%, Zipf s=%.2f", o.mode, o.rate, o.duration, 100*o.mix.writes, 100*o.mix.logins, 100*o.mix.assistant, o.zipfS),
		"Where":  where,
		"Rows":   rows,
		"Chart":  template.HTML(chartSVG(before, after)),
		"Routes": routeRows,
		"Bars":   template.HTML(routeBarsSVG(pairs)),
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pageTmpl.Execute(f, data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>servio: before / after perfkit</title>
<style>body{font:15px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}.b{color:#c0392b}.a{color:#2471a3}</style>
</head><body>
<h1>servio: before / after perfkit</h1>
<p>{{.When}} — {{.Setup}}{{if .Where}}<br>{{.Where}}{{end}}</p>
<table><tr><th>metric</th><th class="b">before</th><th class="a">after</th><th>change</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Before}}</td><td>{{.After}}</td><td>{{.Ratio}}</td></tr>
{{end}}</table>
<h2>Latency by percentile</h2>
{{.Chart}}
<h2>Per route: mean and p99</h2>
{{.Bars}}
<table><tr><th>route</th><th>requests (before / after)</th><th class="b">mean before</th><th class="b">p99 before</th><th class="a">mean after</th><th class="a">p99 after</th><th>mean change</th></tr>
{{range .Routes}}<tr><td>{{.Route}}</td><td>{{.Requests}}</td><td>{{.BMean}}</td><td>{{.BP99}}</td><td>{{.AMean}}</td><td>{{.AP99}}</td><td>{{.Ratio}}</td></tr>
{{end}}</table>
</body></html>
`))

// chartSVG plots both latency curves: x is the percentile on a nines scale
// (p0 … p99.99), y is latency on a log scale.
func chartSVG(before, after *report) string {
	const w, h, left, bottom, top, right = 760.0, 420.0, 70.0, 40.0, 20.0, 20.0
	lo, hi := math.Inf(1), 0.0
	for _, r := range []*report{before, after} {
		for _, p := range r.Curve {
			ms := max(float64(p.Latency)/1e6, 0.01)
			lo, hi = math.Min(lo, ms), math.Max(hi, ms)
		}
	}
	if math.IsInf(lo, 1) {
		return "<p>no data</p>"
	}
	ylo, yhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yhi == ylo {
		yhi++
	}
	x := func(q float64) float64 { return left + (-math.Log10(math.Max(1-q, 1e-4)))/4*(w-left-right) }
	y := func(ms float64) float64 {
		return top + (yhi-math.Log10(max(ms, 0.01)))/(yhi-ylo)*(h-top-bottom)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-size="12">`, w, h)
	for e := ylo; e <= yhi; e++ {
		yy := y(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" text-anchor="end">%s ms</text>`,
			left, w-right, yy, yy, left-6, yy+4, trimFloat(math.Pow(10, e)))
	}
	for i, label := range []string{"p0", "p90", "p99", "p99.9", "p99.99"} {
		xx := left + float64(i)/4*(w-left-right)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#eee"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`,
			xx, xx, top, h-bottom, xx, h-bottom+18, label)
	}
	for _, s := range []struct {
		r     *report
		color string
		name  string
	}{{before, "#c0392b", "before"}, {after, "#2471a3", "after"}} {
		var pts []string
		for _, p := range s.r.Curve {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.Q), y(float64(p.Latency)/1e6)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, s.color, strings.Join(pts, " "))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#c0392b">■ before</text><text x="%.0f" y="%.0f" fill="#2471a3">■ after</text>`, left+10, top+14, left+80, top+14)
	b.WriteString(`</svg>`)
	return b.String()
}

// fmtDur formats d as milliseconds, as the tables do.
func fmtDur(d time.Duration) string { return fmtVal(float64(d)/float64(time.Millisecond), "ms") }

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// routePair is one route's figures in both runs.
type routePair struct {
	route         string
	before, after routeReport
}

// routePairs lists the routes both runs saw, in the before run's order.
func routePairs(before, after *report) []routePair {
	byRoute := make(map[string]routeReport, len(after.Routes))
	for _, r := range after.Routes {
		byRoute[r.Route] = r
	}
	var out []routePair
	for _, b := range before.Routes {
		if a, ok := byRoute[b.Route]; ok {
			out = append(out, routePair{b.Route, b, a})
		}
	}
	return out
}

// routeBarsSVG draws, per route, the mean (solid) and p99 (light) latency
// before and after as horizontal bars on a log scale.
func routeBarsSVG(pairs []routePair) string {
	if len(pairs) == 0 {
		return "<p>no routes</p>"
	}
	const w, label, right, rowH, top = 980.0, 300.0, 170.0, 44.0, 24.0
	hi := 0.0
	for _, p := range pairs {
		hi = math.Max(hi, math.Max(float64(p.before.Latency.P99), float64(p.after.Latency.P99))/1e6)
	}
	const ylo = -1.0 // 0.1 ms
	yhi := math.Max(math.Ceil(math.Log10(math.Max(hi, 0.1))), ylo+1)
	x := func(ms float64) float64 {
		return label + (math.Log10(math.Max(ms, 0.1))-ylo)/(yhi-ylo)*(w-label-right)
	}
	h := top + rowH*float64(len(pairs)) + 24
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-size="12">`, w, h)
	for e := ylo; e <= yhi; e++ {
		xx := x(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#eee"/><text x="%.1f" y="%.0f" text-anchor="middle">%s ms</text>`,
			xx, xx, top, h-20, xx, h-6, trimFloat(math.Pow(10, e)))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="14" fill="#c0392b">■ before</text><text x="%.0f" y="14" fill="#2471a3">■ after</text><text x="%.0f" y="14" fill="#777">solid: mean · light: p99 · labels: mean / p99</text>`,
		label, label+70, label+140)
	for i, p := range pairs {
		y0 := top + rowH*float64(i)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`, label-8, y0+rowH/2+4, template.HTMLEscapeString(p.route))
		for j, s := range []struct {
			r     routeReport
			color string
		}{{p.before, "#c0392b"}, {p.after, "#2471a3"}} {
			yy := y0 + 4 + float64(j)*18
			mean, p99 := float64(s.r.Latency.Mean)/1e6, float64(s.r.Latency.P99)/1e6
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.1f" width="%.1f" height="14" fill="%s" opacity="0.3"/>`, label, yy, x(p99)-label, s.color)
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.1f" width="%.1f" height="14" fill="%s"/>`, label, yy, x(mean)-label, s.color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s / %s</text>`, x(p99)+4, yy+11, fmtDur(s.r.Latency.Mean), fmtDur(s.r.Latency.P99))
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}
