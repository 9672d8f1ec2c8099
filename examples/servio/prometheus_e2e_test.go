package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/internal/netem"
	"github.com/servio/perfkit/internal/testenv"
	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	rulesPath      = "../../deploy/prometheus/rules/servio.rules.yml"
	dashboardsGlob = "../../deploy/grafana/dashboards/*.json"
)

// deployQuery is one PromQL query of the deploy/ files and where it is.
type deployQuery struct {
	where, expr string
}

// dashboardQueries returns every query of every dashboard panel.
func dashboardQueries(t testing.TB) []deployQuery {
	t.Helper()
	files, err := filepath.Glob(dashboardsGlob)
	require.NoError(t, err)
	require.NotEmpty(t, files, "no dashboards at %s", dashboardsGlob)
	var out []deployQuery
	for _, f := range files {
		var d struct {
			Title  string `json:"title"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					RefID string `json:"refId"`
					Expr  string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &d), f)
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				out = append(out, deployQuery{where: fmt.Sprintf("%s / %s / %s", d.Title, p.Title, q.RefID), expr: q.Expr})
			}
		}
	}
	return out
}

// rulesPromQL returns the rule file's lines that hold PromQL (not
// comments, nor the templates of labels and annotations), for the metric
// names it uses.
func rulesPromQL(t testing.TB) deployQuery {
	t.Helper()
	rules, err := os.ReadFile(rulesPath)
	require.NoError(t, err)
	var promql []string
	for line := range strings.Lines(string(rules)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") && !strings.Contains(line, "{{") {
			promql = append(promql, line)
		}
	}
	return deployQuery{where: rulesPath, expr: strings.Join(promql, "")}
}

// metricNameRe finds the metric names of PromQL selectors: a name followed
// by a label matcher or a range (submatch 1).
var metricNameRe = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)[{\[]`)

// promQLWord reports whether a selector name is Prometheus's own (up)
// rather than one of servio's metrics.
func promQLWord(m string) bool { return m == "up" }

// rulesForTest returns the rule file with every `for:` shortened to
// forDur and every range of minutes to window, so the alerts act within
// seconds; the expressions are otherwise the file's own.
func rulesForTest(t testing.TB, forDur, window string) string {
	t.Helper()
	b, err := os.ReadFile(rulesPath)
	require.NoError(t, err)
	s := regexp.MustCompile(`(?m)^(\s*for:) \S+`).ReplaceAllString(string(b), "$1 "+forDur)
	return regexp.MustCompile(`\[\d+m\]`).ReplaceAllString(s, "["+window+"]")
}

// promServer is a Prometheus process on a private port and data directory.
type promServer struct {
	url    string
	cmd    *exec.Cmd
	logs   *testenv.SyncBuffer
	client *http.Client
	exited chan error
}

// startPrometheus runs /usr/bin/prometheus (or the one on PATH) scraping
// target's /health/metrics every second, evaluating rules every second,
// and stops it when the test ends.
func startPrometheus(t *testing.T, target, rules string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found: install the Debian package `prometheus` (apt-get install -y prometheus); scripts/test does it")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(rules), 0o600))
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: servio
    metrics_path: /health/metrics
    static_configs:
      - targets: [%q]
`, target)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600))
	for attempt := 1; ; attempt++ {
		p := &promServer{logs: &testenv.SyncBuffer{}, client: &http.Client{Timeout: 10 * time.Second}, exited: make(chan error, 1)}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
		p.url = "http://" + addr
		p.cmd = exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data%d", attempt)), "--web.listen-address="+addr,
			"--log.level=warn", "--web.console.templates="+dir, "--web.console.libraries="+dir)
		p.cmd.Dir = dir
		p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
		require.NoError(t, p.cmd.Start())
		go func() { p.exited <- p.cmd.Wait() }()
		if p.waitReady(30 * time.Second) {
			t.Cleanup(p.stop)
			return p
		}
		p.stop()
		if attempt == 3 || !strings.Contains(p.logs.String(), "address already in use") {
			t.Fatalf("prometheus did not become ready:\n%s", p.logs.String())
		}
	}
}

func (p *promServer) waitReady(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.exited:
			p.exited <- err
			return false
		default:
		}
		if resp, err := p.client.Get(p.url + "/-/ready"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func (p *promServer) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case err := <-p.exited:
		p.exited <- err
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.client.CloseIdleConnections()
}

// api GETs a Prometheus HTTP API path and decodes its data field into out.
func (p *promServer) api(path string, params url.Values, out any) error {
	resp, err := p.client.Get(p.url + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// alert is one entry of /api/v1/alerts.
type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p *promServer) alerts() ([]alert, error) {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	err := p.api("/api/v1/alerts", nil, &data)
	return data.Alerts, err
}

// alertState returns the state (pending, firing or "") of the alert name
// whose labels include match.
func (p *promServer) alertState(name string, match map[string]string) string {
	as, err := p.alerts()
	if err != nil {
		return "error: " + err.Error()
	}
	state := ""
outer:
	for _, a := range as {
		if a.Labels["alertname"] != name {
			continue
		}
		for k, v := range match {
			if a.Labels[k] != v {
				continue outer
			}
		}
		if a.State == "firing" || state == "" {
			state = a.State
		}
	}
	return state
}

// summary lists every alert and its state, for failure messages.
func (p *promServer) summary() string {
	as, err := p.alerts()
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s%v=%s", a.Labels["alertname"], a.Labels, a.State))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// query runs an instant query and reports whether it returned at least one
// sample with a number (not NaN) in it.
func (p *promServer) query(expr string) (bool, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return false, err
	}
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(v) {
			return true, nil
		}
	}
	return false, nil
}

// expected is an alert the test waits for: its name and labels to match.
type expected struct {
	name  string
	match map[string]string
}

func (e expected) String() string { return fmt.Sprintf("%s%v", e.name, e.match) }

// waitAlerts waits until every alert in want is firing (or, with
// firing false, until none of them is pending or firing).
func waitAlerts(t *testing.T, p *promServer, firing bool, d time.Duration, want ...expected) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		var left []string
		for _, w := range want {
			st := p.alertState(w.name, w.match)
			if (firing && st != "firing") || (!firing && st != "") {
				left = append(left, fmt.Sprintf("%s: %q", w, st))
			}
		}
		if len(left) == 0 {
			t.Logf("%d alerts %s after %v", len(want), map[bool]string{true: "firing", false: "cleared"}[firing], time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			what := "firing"
			if !firing {
				what = "cleared"
			}
			t.Fatalf("within %v these alerts were not %s:\n%s\nall alerts now:\n%s", d, what, strings.Join(left, "\n"), p.summary())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// e2eLoad drives servio with a steady open-loop mix: menu reads (cache
// hits), staff reads of orders and low stock (database), assistant
// questions (cache, or the LLM when unique is set), and a wrong login now
// and then (4xx). Every request names a client of its own in
// X-Forwarded-For and staff reads rotate over many signed-in users, so
// rate-limit tiers count them apart. dbWorkers adds closed-loop readers of
// the orders list (to fill the pool when the database is slow).
type e2eLoad struct {
	app     *testApp
	client  *http.Client
	tokens  []string
	n       atomic.Uint64
	unique  atomic.Bool
	wg      sync.WaitGroup
	stopped chan struct{}
	sent    atomic.Int64
	skipped atomic.Int64
}

func newE2ELoad(a *testApp) *e2eLoad {
	l := &e2eLoad{app: a, stopped: make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	for i := range 400 {
		tok, _, err := a.tokens.issue(store.User{ID: 1<<40 + int64(i), Email: fmt.Sprintf("e2e-%d@servio.dev", i), Role: store.RoleAdmin})
		require.NoError(a.t, err)
		l.tokens = append(l.tokens, tok)
	}
	return l
}

func (l *e2eLoad) send(i uint64) {
	method, path, body, tok := http.MethodGet, "/restaurants/1/menu", "", ""
	switch i % 10 {
	case 1, 7:
		path, tok = "/restaurants/1/orders?limit=5", l.tokens[i%uint64(len(l.tokens))]
	case 4:
		path, tok = "/restaurants/1/inventory/low-stock", l.tokens[i%uint64(len(l.tokens))]
	case 2, 5, 8:
		q := fmt.Sprintf("what is vegan? (%d)", i%3)
		if l.unique.Load() {
			q = fmt.Sprintf("what is gluten-free? (%d)", i)
		}
		method, path, body = http.MethodPost, "/assistant/query", fmt.Sprintf(`{"restaurant_id":1,"question":%q}`, q)
	case 9:
		method, path, body = http.MethodPost, "/auth/login", `{"email":"nobody@servio.dev","password":"wrong"}`
	}
	if i%50 == 6 { // now and then an order with a phone: its SMS job feeds the External APIs panels
		method, path, tok = http.MethodPost, "/orders", ""
		body = fmt.Sprintf(`{"restaurant_id":1,"customer_name":"E2E","customer_phone":%q,"items":[{"menu_item_id":1,"quantity":1}]}`, testPhone)
	}
	l.do(i, method, path, body, tok)
}

func (l *e2eLoad) do(i uint64, method, path, body, tok string) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, l.app.URL+path, r)
	if err != nil {
		return
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.18.%d.%d", (i>>8)&0xff, i&0xff))
	resp, err := l.client.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.sent.Add(1)
}

// run sends rate requests a second, each on its own goroutine, at most
// maxInFlight at once (beyond that a tick is skipped and counted), until stop.
func (l *e2eLoad) run(rate, maxInFlight int) {
	sem := make(chan struct{}, maxInFlight)
	l.wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-l.stopped:
				return
			case <-tick.C:
			}
			select {
			case sem <- struct{}{}:
			default:
				l.skipped.Add(1)
				continue
			}
			i := l.n.Add(1)
			l.wg.Go(func() {
				defer func() { <-sem }()
				l.send(i)
			})
		}
	})
}

// dbWorkers starts n closed-loop readers of the orders list until the
// returned func is called (which waits for them).
func (l *e2eLoad) dbWorkers(n int) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for k := uint64(0); ; k++ {
				select {
				case <-done:
					return
				case <-l.stopped:
					return
				default:
				}
				i := l.n.Add(1)
				l.do(i, http.MethodGet, "/restaurants/1/orders?limit=5", "", l.tokens[(uint64(w)*7+k)%uint64(len(l.tokens))])
			}
		})
	}
	return func() { close(done); wg.Wait() }
}

func (l *e2eLoad) stop() {
	close(l.stopped)
	l.wg.Wait()
	l.client.CloseIdleConnections()
}

// TestPrometheusAlertsAndDashboards runs deploy/'s rules in a real
// Prometheus (1 s scrapes and evaluations; `for:` cut to 2 s and ranges of
// minutes to 10 s in a temporary copy, the expressions unchanged) that
// scrapes a servio on private Redis and PostgreSQL servers under a steady
// load. First, healthy, none of the alerts below is pending or firing;
// then it injects the faults they are for:
//
//   - Redis killed, the LLM upstream failing, and questions nobody asked
//     before: ServioHealthCheckFailing{redis}, ServioRateLimitFailingOpen,
//     ServioCircuitBreakerOpen{openai.breaker}, ServioErrorRateHigh and
//     ServioCacheHitRateLow fire, and clear once Redis is back, the LLM
//     answers again and questions repeat;
//   - PostgreSQL slowed by 600 ms each way (internal/netem) while readers
//     fill the pool: ServioSlowQueries, ServioDBPoolSaturated,
//     ServioDBQueryP95OverTarget and ServioLatencyP99OverTarget fire, and
//     clear once the delay is gone.
//
// Meanwhile every dashboard panel's queries run against that Prometheus
// every few seconds; each must return a number at least once. At the end
// the metrics docs/METRICS.md lists as `fault` must be on servio's scrape.
func TestPrometheusAlertsAndDashboards(t *testing.T) {
	rs := testenv.StartRedis(t)
	pg := testenv.StartPostgres(t)
	proxy, err := netem.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.Port)), 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })

	cfg := testConfig(t, "sqlite")
	cfg.DatabaseURL = "postgres://postgres@" + proxy.Addr() + "/postgres?sslmode=disable"
	cfg.RedisURL = rs.URL()
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	opts := testAppOptions
	opts.healthInterval = time.Second
	opts.llmPolicy = func(p *resilience.PipelineConfig) {
		testAppOptions.llmPolicy(p)
		p.Breaker.OpenTimeout = 2 * time.Second
	}
	app := startAppWith(t, cfg, opts)
	u, err := url.Parse(app.URL)
	require.NoError(t, err)
	prom := startPrometheus(t, u.Host, rulesForTest(t, "2s", "10s"))

	load := newE2ELoad(app)
	load.run(20, 64)
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			load.stop()
		}
	}
	t.Cleanup(stopLoad)

	// Every panel query, polled in the background until the end.
	queries := dashboardQueries(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	queryErrs := map[string]string{}
	pollDone := make(chan struct{})
	var poller sync.WaitGroup
	poller.Go(func() {
		tick := time.NewTicker(3 * time.Second)
		defer tick.Stop()
		for {
			for _, q := range queries {
				mu.Lock()
				done := seen[q.where]
				mu.Unlock()
				if done {
					continue
				}
				expr := strings.NewReplacer("$job", "servio", "$__rate_interval", "10s", "$__range", "5m").Replace(q.expr)
				ok, err := prom.query(expr)
				mu.Lock()
				if err != nil {
					queryErrs[q.where] = fmt.Sprintf("%s: %v", expr, err)
				}
				seen[q.where] = seen[q.where] || ok
				mu.Unlock()
			}
			select {
			case <-pollDone:
				return
			case <-tick.C:
			}
		}
	})
	stopPoller := func() {
		select {
		case <-pollDone:
		default:
			close(pollDone)
			poller.Wait()
		}
	}
	t.Cleanup(stopPoller)

	const fire, clear = 90 * time.Second, 90 * time.Second
	// Warm up: the scrape target is up and the first windows fill.
	require.Eventually(t, func() bool {
		ok, _ := prom.query(`up{job="servio"} == 1`)
		return ok
	}, 30*time.Second, 250*time.Millisecond, "Prometheus never scraped servio:\n%s", prom.logs.String())
	phase1 := []expected{
		{"ServioHealthCheckFailing", map[string]string{"health_check_name": "redis", "severity": "warning"}},
		{"ServioRateLimitFailingOpen", nil},
		{"ServioCircuitBreakerOpen", map[string]string{"resilience_policy": "openai.breaker"}},
		{"ServioErrorRateHigh", nil},
		{"ServioCacheHitRateLow", map[string]string{"cache_name": "servio"}},
	}
	phase2 := []expected{
		{"ServioSlowQueries", map[string]string{"db_client_connection_pool_name": "servio"}},
		{"ServioDBPoolSaturated", map[string]string{"db_client_connection_pool_name": "servio"}},
		{"ServioDBQueryP95OverTarget", map[string]string{"db_client_connection_pool_name": "servio"}},
		{"ServioLatencyP99OverTarget", nil},
	}
	// Healthy, under load, with the windows full: none of them is pending
	// or firing (the cache's cold start has passed), so each that fires
	// below fires for its fault.
	time.Sleep(12 * time.Second)
	waitAlerts(t, prom, false, clear, append(append([]expected{}, phase1...), phase2...)...)

	// Redis killed, the LLM failing, cold questions.
	rs.Kill()
	app.sim.setFailureRate(1)
	load.unique.Store(true)
	waitAlerts(t, prom, true, fire, phase1...)
	rs.Restart()
	app.sim.setFailureRate(0)
	load.unique.Store(false)
	waitAlerts(t, prom, false, clear, phase1...)

	// PostgreSQL slow, and enough readers to fill the pool.
	proxy.SetDelay(600 * time.Millisecond)
	stopDB := load.dbWorkers(28)
	waitAlerts(t, prom, true, fire, phase2...)
	proxy.SetDelay(0)
	stopDB()
	waitAlerts(t, prom, false, clear, phase2...)

	// The panels have had every fault; give the last ones a final poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for _, q := range queries {
			if !seen[q.where] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	stopPoller()
	stopLoad()
	t.Logf("load: %d requests answered, %d ticks skipped (in-flight cap)", load.sent.Load(), load.skipped.Load())
	mu.Lock()
	for _, q := range queries {
		assert.True(t, seen[q.where], "dashboard query %s never returned data; last error: %s\n%s", q.where, queryErrs[q.where], q.expr)
	}
	mu.Unlock()

	// The fault-only metrics of docs/METRICS.md are on the scrape now.
	code, body := app.do(http.MethodGet, "/health/metrics", "")
	require.Equal(t, http.StatusOK, code)
	checkAgainstDoc(t, string(body), "always", "redis", "fault")
}
