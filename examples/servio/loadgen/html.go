package main

import (
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"
	"time"
)

// writeHTML writes a self-contained page: the before/after table and a
// latency-by-percentile chart (log latency over a "nines" axis) as inline SVG.
func writeHTML(path string, before, after *report, o *options) error {
	var rows []map[string]string
	for _, r := range comparisonRows(before, after) {
		rows = append(rows, map[string]string{"Name": r.name, "Before": fmtVal(r.before, r.unit), "After": fmtVal(r.after, r.unit), "Ratio": ratio(r)})
	}
	data := map[string]any{
		"When":  time.Now().UTC().Format(time.RFC3339),
		"Setup": fmt.Sprintf("mode %s, offered %.0f req/s, %v measured, writes %.1f%%, logins %.1f%%, assistant %.1f%%, Zipf s=%.2f", o.mode, o.rate, o.duration, 100*o.mix.writes, 100*o.mix.logins, 100*o.mix.assistant, o.zipfS),
		"Rows":  rows,
		"Chart": template.HTML(chartSVG(before, after)),
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
<p>{{.When}} — {{.Setup}}</p>
<table><tr><th>metric</th><th class="b">before</th><th class="a">after</th><th>improvement</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Before}}</td><td>{{.After}}</td><td>{{.Ratio}}</td></tr>
{{end}}</table>
<h2>Latency by percentile</h2>
{{.Chart}}
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

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
