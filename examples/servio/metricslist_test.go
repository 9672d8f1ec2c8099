package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// metricsDocPath is the one list of servio's metrics.
const metricsDocPath = "../../docs/METRICS.md"

// metricDoc is one row of docs/METRICS.md.
type metricDoc struct {
	name, typ, unit, labels, emitter, when string
}

// labelSet returns the label names of the row's Labels column.
func (d metricDoc) labelSet() []string {
	var out []string
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(d.labels, -1) {
		out = append(out, m[1])
	}
	return out
}

var metricRowRe = regexp.MustCompile("(?m)^\\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \\| (\\w+) \\| ([^|]+) \\| ([^|]+) \\| ([^|]+) \\| (always|redis|fault|rare) \\|$")

// readMetricsDoc parses docs/METRICS.md's tables, failing the test on a
// metric listed twice.
func readMetricsDoc(t testing.TB) map[string]metricDoc {
	t.Helper()
	b, err := os.ReadFile(metricsDocPath)
	require.NoError(t, err)
	docs := map[string]metricDoc{}
	for _, m := range metricRowRe.FindAllStringSubmatch(string(b), -1) {
		d := metricDoc{name: m[1], typ: m[2], unit: strings.TrimSpace(m[3]), labels: m[4], emitter: strings.TrimSpace(m[5]), when: m[6]}
		require.NotContains(t, docs, d.name, "%s lists %s twice", metricsDocPath, d.name)
		docs[d.name] = d
	}
	require.NotEmpty(t, docs, "no metric rows found in %s", metricsDocPath)
	return docs
}

// family is one metric family of a Prometheus text scrape: its type and
// the union of its series' label names (le and quantile left out).
type family struct {
	typ    string
	labels map[string]bool
}

var (
	seriesRe = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	labelRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

// parseFamilies reads the families of a Prometheus text-format scrape.
func parseFamilies(text string) map[string]*family {
	fams := map[string]*family{}
	for line := range strings.Lines(text) {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(strings.TrimSpace(f), " ")
			fams[name] = &family{typ: typ, labels: map[string]bool{}}
			continue
		}
		m := seriesRe.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		name := m[1]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && fams[base] != nil && fams[base].typ == "histogram" {
				name = base
			}
		}
		f := fams[name]
		if f == nil {
			f = &family{typ: "untyped", labels: map[string]bool{}}
			fams[name] = f
		}
		for _, l := range labelRe.FindAllStringSubmatch(m[2], -1) {
			if l[1] != "le" && l[1] != "quantile" {
				f.labels[l[1]] = true
			}
		}
	}
	return fams
}

// docRow is the row to add to docs/METRICS.md for an exported family the
// list lacks, with what the scrape shows filled in.
func docRow(name string, f *family) string {
	var labels []string
	for l := range f.labels {
		labels = append(labels, "`"+l+"`")
	}
	sort.Strings(labels)
	ls := strings.Join(labels, ", ")
	if ls == "" {
		ls = "—"
	}
	return fmt.Sprintf("| `%s` | %s | UNIT | %s | PACKAGE | always |", name, f.typ, ls)
}

// checkAgainstDoc compares a scrape with docs/METRICS.md: every exported
// family is listed with its type and every label it carries; every family
// listed with a When in present is exported. The failure messages name the
// rows to add or fix.
func checkAgainstDoc(t testing.TB, text string, present ...string) {
	t.Helper()
	docs := readMetricsDoc(t)
	fams := parseFamilies(text)
	var missing []string
	for name, f := range fams {
		d, ok := docs[name]
		if !ok {
			missing = append(missing, docRow(name, f))
			continue
		}
		assert.Equal(t, f.typ, d.typ, "%s: type on the scrape vs in %s", name, metricsDocPath)
		for l := range f.labels {
			assert.Contains(t, d.labelSet(), l, "%s is exported with label %s, which its row in %s does not list", name, l, metricsDocPath)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "exported but not in %s; add these rows (fill in UNIT, PACKAGE, and When: always, redis, fault or rare):\n%s",
		metricsDocPath, strings.Join(missing, "\n"))
	var absent []string
	for name, d := range docs {
		if slices.Contains(present, d.when) && fams[name] == nil {
			absent = append(absent, name+" ("+d.when+")")
		}
	}
	sort.Strings(absent)
	assert.Empty(t, absent, "listed in %s but not exported; remove the rows or change their When:\n%s", metricsDocPath, strings.Join(absent, "\n"))
}

// TestMetricsListMatchesExport: docs/METRICS.md lists exactly what servio
// exports. A servio on PostgreSQL and Redis, after a workload of health
// probes, menu reads (cache hits and a load), a failed login, an order
// read, an assistant question and an order with a phone (whose SMS
// confirmation job runs), exports every metric listed as `always`
// or `redis` and nothing that is not listed, with no label its row lacks.
// The `fault` metrics are checked by TestPrometheusAlertsAndDashboards.
func TestMetricsListMatchesExport(t *testing.T) {
	_, prefix := testenv.Redis(t)
	cfg := testConfig(t, "postgres")
	cfg.RedisURL, cfg.RedisPrefix = testenv.RedisURL(), prefix
	app := startApp(t, cfg)
	for _, p := range []string{"/health/live", "/health/ready", "/health/detailed", "/restaurants/1/menu", "/restaurants/1/menu", "/orders/1"} {
		app.do(http.MethodGet, p, "")
	}
	app.do(http.MethodPost, "/auth/login", `{"email":"nobody@servio.dev","password":"wrong"}`)
	code, body := app.do(http.MethodPost, "/assistant/query", `{"restaurant_id":1,"question":"what is vegan?"}`)
	require.Equal(t, http.StatusOK, code, "assistant: %s", body)
	placeOrder(t, app, testPhone)
	// The confirmation job runs in the background: wait for its outcome.
	require.Eventually(t, func() bool {
		code, body = app.do(http.MethodGet, "/health/metrics", "")
		return code == http.StatusOK && strings.Contains(string(body), "servio_sms_deliveries_total{")
	}, jobWait, 50*time.Millisecond, "the SMS confirmation job never finished")
	// The fullest scrape of the suite passes promtool's lint too.
	cmd := exec.Command(promtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
	checkAgainstDoc(t, string(body), "always", "redis")
}

// TestMetricsDocRows: every row of docs/METRICS.md names a unit that
// agrees with the name's unit word (s: _seconds, By: _bytes), an emitting
// package and, for counters, a name ending in _total; and no metric the
// dashboards or rules use is missing from it.
func TestMetricsDocRows(t *testing.T) {
	docs := readMetricsDoc(t)
	for name, d := range docs {
		assert.NotEmpty(t, d.unit, name)
		assert.NotEmpty(t, d.emitter, name)
		assert.Contains(t, []string{"counter", "gauge", "histogram"}, d.typ, name)
		if d.typ == "counter" {
			assert.True(t, strings.HasSuffix(name, "_total"), "counter %s: Prometheus counters end in _total", name)
		}
		// The exporter names the unit in the name: s -> _seconds, By -> _bytes.
		for unit, word := range map[string]string{"s": "_seconds", "By": "_bytes"} {
			assert.Equal(t, d.unit == unit, strings.Contains(name, word), "%s: unit %s and name disagree (%s means %s)", name, d.unit, unit, word)
		}
	}
	for _, q := range append(dashboardQueries(t), rulesPromQL(t)) {
		for _, sm := range metricNameRe.FindAllStringSubmatch(q.expr, -1) {
			m := sm[1]
			base := m
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(m, suffix); ok && docs[b].typ == "histogram" {
					base = b
				}
			}
			if docs[base].name == "" && !promQLWord(m) {
				t.Errorf("%s uses %s, which %s does not list", q.where, m, metricsDocPath)
			}
		}
	}
}
