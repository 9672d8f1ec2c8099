package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func syntheticReport(scale time.Duration, hit float64) *report {
	var rec = newRecorder()
	for i := 1; i <= 1000; i++ {
		rec.all.record(time.Duration(i) * scale)
	}
	o := &options{mode: "open", rate: 100}
	r := newReport(o, rec, 10*time.Second, nil, nil, []float64{0.2, 0.4})
	r.CacheHitRate = hit
	return r
}

func TestComparisonTable(t *testing.T) {
	t.Parallel()
	before, after := syntheticReport(time.Millisecond, math.NaN()), syntheticReport(100*time.Microsecond, 0.9)
	var out bytes.Buffer
	printComparison(&out, before, after)
	s := out.String()
	assert.Contains(t, s, "avg response time")
	assert.Contains(t, s, "10.0× lower", "latency 10× smaller must read as 10.0× lower:\n%s", s)
	assert.Contains(t, s, "n/a", "an unknown figure must print as n/a")
}

func TestRatio(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    row
		want string
	}{
		{row{before: 450, after: 85, lowerIsBetter: true}, "5.3× lower"},
		{row{before: 30, after: 82}, "2.7× higher"},
		{row{before: 1, after: 0, lowerIsBetter: true}, "∞"},
		{row{before: math.NaN(), after: 1}, "—"},
		{row{before: 1, after: 1.25, lowerIsBetter: true}, "1.2× higher"},
		{row{before: 90, after: 45}, "2.0× lower"},
		{row{before: 90, after: 0}, "to 0"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ratio(tt.r))
	}
}

func TestWriteHTML(t *testing.T) {
	t.Parallel()
	before, after := syntheticReport(time.Millisecond, 0.3), syntheticReport(100*time.Microsecond, 0.9)
	p := filepath.Join(t.TempDir(), "r.html")
	before.Routes = []routeReport{{Route: "GET /restaurants/{id}/menu", Requests: 10, Latency: percentiles{Mean: 8 * time.Millisecond, P99: 40 * time.Millisecond}},
		{Route: "POST /auth/login", Requests: 2, Latency: percentiles{Mean: 90 * time.Millisecond, P99: 120 * time.Millisecond}}}
	after.Routes = []routeReport{{Route: "GET /restaurants/{id}/menu", Requests: 10, Latency: percentiles{Mean: time.Millisecond, P99: 4 * time.Millisecond}}}
	require.NoError(t, writeHTML(p, before, after, &options{mode: "open", rate: 100, zipfS: 1.1}, "database: SQLite <embedded>"))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	s := string(b)
	assert.Contains(t, s, "<svg")
	assert.Equal(t, 2, bytes.Count(b, []byte("<polyline")), "one curve per run")
	assert.Contains(t, s, "cache hit rate")
	assert.Contains(t, s, "p99.9")
	assert.Contains(t, s, "SQLite &lt;embedded&gt;", "the setup is escaped")
	assert.Contains(t, s, "GET /restaurants/{id}/menu")
	assert.NotContains(t, s, "POST /auth/login", "only routes both runs saw are compared")
	assert.Contains(t, s, "8.0× lower", "the per-route mean ratio")
	assert.Equal(t, 4, bytes.Count(b, []byte("<rect")), "mean and p99 bars, before and after, for the one route")
}
