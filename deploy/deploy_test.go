package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	rulesFile     = "prometheus/rules/servio.rules.yml"
	rulesTestFile = "prometheus/rules/servio.rules.test.yml"
	dashboardDir  = "grafana/dashboards"
)

// promtool returns the path of Prometheus's promtool, failing the test with
// how to install it when it is missing.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: install the Debian package `prometheus` (apt-get install -y prometheus); scripts/test does it")
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
}

// TestRulesPassPromtoolCheck: the rule file is valid for Prometheus
// (`promtool check rules` exits 0: it parses every expression and template).
func TestRulesPassPromtoolCheck(t *testing.T) {
	runPromtool(t, ".", "check", "rules", rulesFile)
}

// TestRulesUnitTests: `promtool test rules` passes: each alert fires on
// the input it is for, with the labels and annotations written in the
// test, and stays quiet before its `for:` and on input it is not for.
func TestRulesUnitTests(t *testing.T) {
	runPromtool(t, filepath.Dir(rulesTestFile), "test", "rules", filepath.Base(rulesTestFile))
}

var (
	alertRe     = regexp.MustCompile(`(?m)^\s*- alert: (\S+)\s*$`)
	testCaseRe  = regexp.MustCompile(`(?m)^\s*alertname: (\S+)\s*\n\s*exp_alerts:(.*)$`)
	forRe       = regexp.MustCompile(`(?m)^\s*for: (\S+)`)
	severityRe  = regexp.MustCompile(`(?m)^\s*severity: (.+)$`)
	summaryRe   = regexp.MustCompile(`(?m)^\s*summary: `)
	recordRe    = regexp.MustCompile(`(?m)^\s*- record: (\S+)\s*$`)
	recordNames = regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`)
)

// TestEveryAlertIsUnitTested: every alert of the rule file has at least
// one unit test case that expects it to fire (a non-empty exp_alerts) and
// one that expects it quiet, and has a `for:`, a severity and a summary.
func TestEveryAlertIsUnitTested(t *testing.T) {
	rules := readFile(t, rulesFile)
	tests := readFile(t, rulesTestFile)
	alerts := alertRe.FindAllStringSubmatch(rules, -1)
	require.NotEmpty(t, alerts, "no alerts in %s", rulesFile)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, m := range testCaseRe.FindAllStringSubmatch(tests, -1) {
		if strings.TrimSpace(m[2]) == "[]" {
			quiet[m[1]] = true
		} else {
			fires[m[1]] = true
		}
	}
	var names []string
	for _, a := range alerts {
		names = append(names, a[1])
		assert.True(t, fires[a[1]], "alert %s has no unit test in %s where it fires", a[1], rulesTestFile)
		assert.True(t, quiet[a[1]], "alert %s has no unit test in %s where it stays quiet", a[1], rulesTestFile)
	}
	for name := range fires {
		assert.Contains(t, names, name, "%s tests alert %s, which %s does not define", rulesTestFile, name, rulesFile)
	}
	// Each alert block: from its "- alert:" line to the next rule.
	blocks := strings.Split(rules, "- alert: ")[1:]
	for _, b := range blocks {
		name, _, _ := strings.Cut(b, "\n")
		assert.Regexp(t, forRe, b, "alert %s has no for:", name)
		assert.Regexp(t, severityRe, b, "alert %s has no severity label", name)
		assert.Regexp(t, summaryRe, b, "alert %s has no summary annotation", name)
	}
	for _, r := range recordRe.FindAllStringSubmatch(rules, -1) {
		assert.Regexp(t, recordNames, r[1], "recording rule %s: name it level:metric:operations (Prometheus's convention)", r[1])
	}
}

// TestComposePrometheusConfig: the observe profile's prometheus.yml is a
// valid configuration whose rule file is the one tested here
// (`promtool check config`, with the container's rule path mapped to the
// repository's).
func TestComposePrometheusConfig(t *testing.T) {
	cfg := readFile(t, "prometheus/prometheus.yml")
	require.Contains(t, cfg, "/etc/prometheus/rules/servio.rules.yml")
	dir := t.TempDir()
	abs, err := filepath.Abs(rulesFile)
	require.NoError(t, err)
	local := strings.ReplaceAll(cfg, "/etc/prometheus/rules/servio.rules.yml", abs)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(local), 0o600))
	runPromtool(t, dir, "check", "config", "prometheus.yml")
	// docker-compose.yml mounts these paths.
	compose := readFile(t, "../docker-compose.yml")
	for _, mount := range []string{"./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml",
		"./deploy/prometheus/rules:/etc/prometheus/rules", "./deploy/grafana/provisioning:/etc/grafana/provisioning",
		"./deploy/grafana/dashboards:/var/lib/grafana/dashboards"} {
		assert.Contains(t, compose, mount)
	}
	assert.Contains(t, readFile(t, "grafana/provisioning/dashboards/servio.yml"), "path: /var/lib/grafana/dashboards")
}

// dashboard is the part of Grafana's dashboard JSON model the tests read.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID          int    `json:"id"`
		Type        string `json:"type"`
		Title       string `json:"title"`
		Description string `json:"description"`
		Datasource  struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct {
			H, W, X, Y int
		} `json:"gridPos"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Targets []struct {
			RefID        string `json:"refId"`
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
			Datasource   struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboards: the four dashboards of the seed's "Key Dashboards" are
// there, each a Grafana 10+ dashboard model (schemaVersion ≥ 36) with a
// unique uid, a Prometheus data source variable every panel and query
// uses (so an import asks for no input and provisioning needs no fixed
// uid), unique panel ids, panels that fit the 24-column grid without
// overlapping, a unit and a description on every panel, and at least one
// PromQL query per panel, each with its own refId.
func TestDashboards(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	require.NoError(t, err)
	var titles []string
	uids := map[string]string{}
	for _, f := range files {
		var d dashboard
		require.NoError(t, json.Unmarshal([]byte(readFile(t, f)), &d), f)
		titles = append(titles, d.Title)
		require.NotEmpty(t, d.UID, f)
		assert.Empty(t, uids[d.UID], "%s and %s share uid %s", f, uids[d.UID], d.UID)
		uids[d.UID] = f
		assert.GreaterOrEqual(t, d.SchemaVersion, 36, "%s: schemaVersion of Grafana 10 or later", f)
		var vars []string
		for _, v := range d.Templating.List {
			vars = append(vars, v.Name+":"+v.Type)
		}
		assert.Contains(t, vars, "datasource:datasource", f)
		require.NotEmpty(t, d.Panels, f)
		ids := map[int]bool{}
		type cell struct{ x, y int }
		taken := map[cell]int{}
		for _, p := range d.Panels {
			where := f + ": panel " + p.Title
			assert.False(t, ids[p.ID], "%s: duplicate id %d", where, p.ID)
			ids[p.ID] = true
			assert.Contains(t, []string{"timeseries", "stat"}, p.Type, where)
			assert.NotEmpty(t, p.Title, where)
			assert.NotEmpty(t, p.Description, where)
			assert.NotEmpty(t, p.FieldConfig.Defaults.Unit, "%s: no unit", where)
			assert.Equal(t, "prometheus", p.Datasource.Type, where)
			assert.Equal(t, "${datasource}", p.Datasource.UID, where)
			g := p.GridPos
			assert.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.Y >= 0 && g.X+g.W <= 24, "%s: gridPos %+v outside the 24-column grid", where, g)
			for x := g.X; x < g.X+g.W; x++ {
				for y := g.Y; y < g.Y+g.H; y++ {
					if other, ok := taken[cell{x, y}]; ok {
						t.Errorf("%s overlaps panel %d at column %d, row %d", where, other, x, y)
						y, x = g.Y+g.H, g.X+g.W
						continue
					}
					taken[cell{x, y}] = p.ID
				}
			}
			require.NotEmpty(t, p.Targets, where)
			refs := map[string]bool{}
			for _, q := range p.Targets {
				assert.NotEmpty(t, q.Expr, where)
				assert.False(t, refs[q.RefID], "%s: duplicate refId %s", where, q.RefID)
				refs[q.RefID] = true
				assert.Equal(t, "${datasource}", q.Datasource.UID, where)
				assert.Equal(t, strings.Count(q.Expr, "("), strings.Count(q.Expr, ")"), "%s: unbalanced parentheses in %s", where, q.Expr)
			}
		}
	}
	slices.Sort(titles)
	assert.Equal(t, []string{"Servio / API performance", "Servio / Cache", "Servio / Database", "Servio / External APIs"}, titles)
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	return string(b)
}
