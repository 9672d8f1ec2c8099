package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeStep is a settled step named name at factor× a capacity of 1,000
// req/s with goodput share g and admitted p99 p99 (the unloaded p99 is
// 2 ms).
func fakeStep(name string, factor, g float64, p99 time.Duration, criticalShed uint64) stepResult {
	s := stepResult{Step: name, Offered: 1000 * factor, Priorities: make([]prioResult, prioCount)}
	s.Priorities[prioCritical] = prioResult{Sent: 100, Shed: criticalShed}
	s.Settled = settledResult{Goodput: 1000 * g, AdmittedP99: p99, ProbeP99: 3 * time.Millisecond, RejectP99: 400 * time.Microsecond}
	return s
}

// writeRun writes reports (and wire rows by label) into a new directory.
func writeRun(t *testing.T, reps []overloadReport, wire map[string][]wireStep) string {
	t.Helper()
	dir := t.TempDir()
	for _, r := range reps {
		b, err := json.Marshal(r)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, r.Label+".json"), b, 0o644))
	}
	for label, rows := range wire {
		b, err := json.Marshal(map[string]any{"steps": rows})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, label+wireSuffix), b, 0o644))
	}
	return dir
}

func fakeReport(label string, steps ...stepResult) overloadReport {
	return overloadReport{Label: label, Capacity: 1000, UnloadedP99: 2 * time.Millisecond, Steps: steps}
}

// TestOverloadRuns: the medians over three runs, the range and the count
// of runs that met each bound, the verdict on the medians, goodput beside
// each run's own saturated server where one ran, and the wire figures
// where captured.
func TestOverloadRuns(t *testing.T) {
	t.Parallel()
	msec := time.Millisecond
	sat := func(g float64) overloadReport {
		return fakeReport("off-sat-before", fakeStep("1.2x", 1.2, g, 50*msec, 0))
	}
	dirs := []string{
		writeRun(t, []overloadReport{
			fakeReport("nf", fakeStep("1x", 1, 1, 4*msec, 0), fakeStep("2x", 2, 0.95, 6*msec, 0), fakeStep("4x", 4, 0.88, 8*msec, 0)),
			sat(1.0),
		}, map[string][]wireStep{"nf": {
			{Step: "2x", Status: "503", P50: 400 * time.Microsecond, P99: 2 * msec, Under1ms: 0.9},
			{Step: "2x", Status: "200", P99: 9 * msec},
		}}),
		writeRun(t, []overloadReport{
			fakeReport("nf", fakeStep("1x", 1, 1, 4*msec, 0), fakeStep("2x", 2, 0.85, 12*msec, 0), fakeStep("4x", 4, 0.91, 8*msec, 1)),
			sat(0.85),
		}, nil),
		writeRun(t, []overloadReport{
			fakeReport("nf", fakeStep("1x", 1, 1, 4*msec, 0), fakeStep("2x", 2, 0.92, 8*msec, 0), fakeStep("4x", 4, 0.80, 8*msec, 0)),
			fakeReport("other", fakeStep("2x", 2, 0.99, 2*msec, 0)),
		}, nil),
	}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), append([]string{"overload-runs"}, dirs...), &out, io.Discard))
	rows := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Split(l, " | "); len(f) > 2 && strings.HasPrefix(l, "| ") {
			rows[strings.TrimPrefix(f[0], "| ")+" "+f[1]] = l
		}
	}
	require.Contains(t, rows, "nf 2x", out.String())
	assert.NotContains(t, rows, "nf 1x", "steps under 2× are not judged")
	assert.NotContains(t, rows, "off-sat-before 1.2x", "nor the saturated reference")
	// 2×: goodput 95, 85, 92 %: median 92 %, two of three ≥ 90 %; p99 3,
	// 6, 4× unloaded: two ≤ 5×; every refusal 0.4 ms at the client.
	two := rows["nf 2x"]
	assert.Contains(t, two, "| nf | 2x | 3 | 92.0 % (85.0–95.0 %; 2 ≥ 90 %) |")
	assert.Contains(t, two, "| 4.0× (3.0–6.0×; 2 ≤ 5×) |")
	assert.Contains(t, two, "| 3.00ms (3.00ms–3.00ms; 3 < 100.00ms) | 0 | 0.40ms (0.40ms–0.40ms; 3 < 1.00ms) |")
	// Beside the off server: 950 of 1,000 and 850 of 850 req/s.
	assert.Contains(t, two, "| 97.5 % (95.0–100.0 %; 2 ≥ 90 %) (of 2) |")
	assert.Contains(t, two, "| 0.400ms / 2.00ms (2.00ms–2.00ms; 0 < 1.00ms) / 90.0 % (of 1) |", "the 503s on the wire, not the 200s")
	assert.Contains(t, two, "| 1 of 3 | missed: rejection latency |", "the run at 85 % with a 6× p99 missed, and the one whose refusals took 2 ms on the wire; "+
		"the medians are judged on the wire where any run captured it, though the client saw 0.4 ms")
	// 4×: 88, 91, 80 %: the median misses; one critical request shed.
	four := rows["nf 4x"]
	assert.Contains(t, four, "| 88.0 % (80.0–91.0 %; 1 ≥ 90 %) |")
	assert.Contains(t, four, "| 1 | 0.40ms")
	assert.Contains(t, four, "| – |", "no wire figures at 4×")
	assert.Contains(t, four, "| 0 of 3 | missed: goodput, critical shed |")
	assert.Contains(t, rows["other 2x"], "| other | 2x | 1 | 99.0 % (99.0–99.0 %; 1 ≥ 90 %) | – |", "a configuration in one run only")
	assert.Contains(t, out.String(), "3 runs: "+filepath.Base(dirs[0]))

	// -configs picks and orders; -beside "" measures no saturated server.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"overload-runs", "-configs", "other,nf", "-beside", "", dirs[0], dirs[2]}, &out, io.Discard))
	assert.Less(t, strings.Index(out.String(), "| other | 2x |"), strings.Index(out.String(), "| nf | 2x |"))
	assert.Contains(t, out.String(), "| nf | 2x | 2 | 93.5 % (92.0–95.0 %; 2 ≥ 90 %) | – |")

	// A step captured on the wire in every run is judged there.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"overload-runs", "-configs", "nf", dirs[0]}, &out, io.Discard))
	assert.Contains(t, out.String(), "| 0.40ms (0.40ms–0.40ms; 1 < 1.00ms) | 0.400ms / 2.00ms (2.00ms–2.00ms; 0 < 1.00ms) / 90.0 % (of 1) | 0 of 1 | missed: rejection latency |")
}

func TestOverloadRunsErrors(t *testing.T) {
	t.Parallel()
	good := writeRun(t, []overloadReport{fakeReport("nf", fakeStep("2x", 2, 1, time.Millisecond, 0))}, nil)
	bad := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bad, "x.json"), []byte("{"), 0o644))
	notReport := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notReport, "x.json"), []byte(`{"label": "x"}`), 0o644))
	dup := writeRun(t, []overloadReport{fakeReport("nf", fakeStep("2x", 2, 1, time.Millisecond, 0))}, nil)
	r := fakeReport("nf", fakeStep("2x", 2, 1, time.Millisecond, 0))
	b, err := json.Marshal(r)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dup, "copy.json"), b, 0o644))
	badWire := writeRun(t, []overloadReport{r}, nil)
	require.NoError(t, os.WriteFile(filepath.Join(badWire, "nf"+wireSuffix), []byte("["), 0o644))
	for name, args := range map[string][]string{
		"no directory":      {},
		"no reports":        {t.TempDir()},
		"bad JSON":          {good, bad},
		"not a report":      {notReport},
		"two of one label":  {dup},
		"bad wire JSON":     {badWire},
		"a missing dir":     {filepath.Join(t.TempDir(), "none")},
		"an unknown flag":   {"-x", good},
		"an unknown config": {"-configs", "nf,none", good},
	} {
		err := run(context.Background(), append([]string{"overload-runs"}, args...), io.Discard, io.Discard)
		assert.Error(t, err, name)
	}
}

// TestMedian: odd and even counts, the input left unsorted.
func TestMedian(t *testing.T) {
	t.Parallel()
	v := []float64{3, 1, 2}
	assert.Equal(t, 2.0, median(v))
	assert.Equal(t, []float64{3, 1, 2}, v)
	assert.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
	assert.True(t, median(nil) != median(nil), "NaN for none")
}

// A label is judged beside its own server's saturated run only: the one
// whose label starts as its own does (standin- beside standin-off-sat-),
// never beside another server's.
func TestOverloadRunsBesideOwnServer(t *testing.T) {
	t.Parallel()
	msec := time.Millisecond
	dir := writeRun(t, []overloadReport{
		fakeReport("standin-off-sat-before", fakeStep("1.2x", 1.2, 0.8, 50*msec, 0)),
		fakeReport("standin-nf", fakeStep("2x", 2, 0.96, 6*msec, 0)),
		fakeReport("servio-nf", fakeStep("2x", 2, 0.96, 6*msec, 0)),
	}, nil)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"overload-runs", dir}, &out, io.Discard))
	assert.Contains(t, out.String(), "| standin-nf | 2x | 1 | 96.0 % (96.0–96.0 %; 1 ≥ 90 %) | 120.0 % (120.0–120.0 %; 1 ≥ 90 %) (of 1) |", "960 beside the stand-in's 800 req/s")
	assert.Contains(t, out.String(), "| servio-nf | 2x | 1 | 96.0 % (96.0–96.0 %; 1 ≥ 90 %) | – |", "no saturated servio ran")
}
