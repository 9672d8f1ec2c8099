package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
)

// servioBin is the service binary built once for the whole suite.
var servioBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "servio-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	servioBin = filepath.Join(dir, "servio")
	if out, err := exec.Command("go", "build", "-o", servioBin, "..").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "faults: go build servio: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one running servio process.
type instance struct {
	t      testing.TB
	URL    string
	cmd    *exec.Cmd
	logs   *testenv.SyncBuffer
	exited chan error
	client *http.Client
	// token is the demo admin's bearer token, got by logging in as a user
	// would before the first request to a staff route (see needsToken).
	tokenOnce sync.Once
	token     string
	// guest holds order tokens by path (see guestOrder); written before
	// load starts, read-only after.
	guest map[string]string
}

// startServio starts servio on a free loopback port with the given
// environment (KEY=value) on top of a clean one: its own data directory,
// a shared AUTH_SECRET and loopback trusted as a proxy. It waits until
// /health/ready answers 200 and stops the process when the test ends.
func startServio(t testing.TB, env ...string) *instance {
	t.Helper()
	for attempt := 1; ; attempt++ {
		in, err := tryStart(t, env)
		if err == nil {
			t.Cleanup(in.stop)
			return in
		}
		// FreePort's port can be taken by another test before servio binds it
		if attempt < 3 && strings.Contains(in.logs.String(), "address already in use") {
			continue
		}
		t.Fatalf("%v\n%s", err, tail(in.logs.String(), 4000))
	}
}

func tryStart(t testing.TB, env []string) (*instance, error) {
	port := testenv.FreePort(t)
	cmd := exec.Command(servioBin, "-log-level", "warn")
	base := []string{
		"ADDR=127.0.0.1:" + strconv.Itoa(port),
		"DATA_DIR=" + t.TempDir(),
		"AUTH_SECRET=fault-suite-secret",
		"SIM_LLM_LATENCY=1ms",
		// Requests name their simulated client in X-Forwarded-For (see do),
		// so rate-limit tiers apply per client, not to the whole suite.
		"TRUSTED_PROXIES=127.0.0.1/32",
	}
	cmd.Env = append(append(cleanEnv(), base...), env...)
	in := &instance{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port), cmd: cmd, logs: &testenv.SyncBuffer{}, exited: make(chan error, 1),
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	if err := cmd.Start(); err != nil {
		return in, fmt.Errorf("starting servio: %w", err)
	}
	go func() { in.exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-in.exited:
			in.exited <- err
			return in, fmt.Errorf("servio exited during start: %v", err)
		default:
		}
		if st, _ := in.status("GET", "/health/ready", nil); st == http.StatusOK {
			return in, nil
		}
		if time.Now().After(deadline) {
			in.stop()
			return in, fmt.Errorf("servio not ready within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// needsToken reports whether a request goes to a route that needs a
// signed-in user; the public ones (menus, guest checkout, login, the
// assistant, health) are sent without a token, as a user's client would,
// so their rate limits count per client address.
func needsToken(method, path string) bool {
	p, _, _ := strings.Cut(path, "?")
	switch {
	case strings.HasPrefix(p, "/health"), p == "/auth/login", p == "/assistant/query",
		method == "POST" && p == "/orders", method == "GET" && strings.HasSuffix(p, "/menu"):
		return false
	}
	return true
}

// guestOrder places an order for one of restaurant rid's first menu item
// on in as a guest and returns its path; in and the others (which share
// AUTH_SECRET) then read that path with the order's own token, as the
// guest's client would — each such read counts against the client's
// address, not one signed-in user's per-user limit.
func guestOrder(t testing.TB, in *instance, rid int64, others ...*instance) string {
	t.Helper()
	item := firstItem(t, in, rid)
	st, b := in.status("POST", "/orders", map[string]any{"restaurant_id": rid, "customer_name": "fault-suite guest",
		"items": []map[string]any{{"menu_item_id": item, "quantity": 1}}})
	if st != http.StatusCreated {
		t.Fatalf("guest order: %d %s", st, b)
	}
	o := jsonOf[struct {
		ID    int64  `json:"id"`
		Token string `json:"order_token"`
	}](t, b)
	path := "/orders/" + strconv.FormatInt(o.ID, 10)
	for _, x := range append([]*instance{in}, others...) {
		if x.guest == nil {
			x.guest = map[string]string{}
		}
		x.guest[path] = o.Token
	}
	return path
}

// authToken returns the demo admin's token, logging in on first use.
func (in *instance) authToken() string {
	in.tokenOnce.Do(in.login)
	return in.token
}

// login signs in as the demo admin (every restaurant's staff routes) and
// keeps the token. A failed login (no demo data, Redis down for the
// fail-closed Auth tier) leaves the instance anonymous: requests to staff
// routes then get 401, which the test reports.
func (in *instance) login() {
	for range 20 {
		st, b := in.status("POST", "/auth/login", map[string]string{"email": "admin@servio.dev", "password": "servio-demo"})
		if st == http.StatusOK {
			var res struct {
				Token string `json:"token"`
			}
			_ = json.Unmarshal(b, &res)
			in.token = res.Token
			return
		}
		if st != http.StatusServiceUnavailable && st != http.StatusTooManyRequests {
			in.t.Logf("login as admin@servio.dev: %d %s; continuing without a token", st, b)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	in.t.Logf("login as admin@servio.dev kept failing; continuing without a token")
}

// stop sends SIGTERM and waits for a clean exit.
func (in *instance) stop() {
	if in.cmd.ProcessState != nil {
		return
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.exited:
		in.exited <- err
		if err != nil {
			in.t.Errorf("servio exited with %v:\n%s", err, tail(in.logs.String(), 4000))
		}
	case <-time.After(20 * time.Second):
		_ = in.cmd.Process.Kill()
		in.t.Errorf("servio did not stop within 20s of SIGTERM")
	}
	in.client.CloseIdleConnections()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "ADDR", "DATABASE_URL", "REDIS_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "STATSD_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT", "DATA_DIR", "TRUSTED_PROXIES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

var clients atomic.Uint32

// nextClient names a new simulated client (an address of the benchmarking
// range 198.18.0.0/15, only ever sent as a header value) for each request
// that does not name its own.
func nextClient() string {
	n := clients.Add(1)
	return fmt.Sprintf("198.18.%d.%d", (n>>8)&0xff, n&0xff)
}

// do sends one request and returns the status, the body and how long it took.
func (in *instance) do(method, path string, body any, header ...string) (int, []byte, time.Duration) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, in.URL+path, r)
	if err != nil {
		in.t.Fatalf("request %s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Forwarded-For", nextClient())
	if tok, ok := in.guest[path]; ok {
		req.Header.Set("Authorization", "Bearer "+tok)
	} else if needsToken(method, path) {
		if tok := in.authToken(); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := in.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error()), time.Since(start)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, time.Since(start)
}

func (in *instance) status(method, path string, body any, header ...string) (int, []byte) {
	st, b, _ := in.do(method, path, body, header...)
	return st, b
}

// jsonOf decodes b into a T, failing the test on bad JSON.
func jsonOf[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
	return v
}

// sample is one request's outcome under load.
type sample struct {
	path    string
	status  int
	latency time.Duration
	at      time.Time
}

// loadResult collects the samples of an open-loop run.
type loadResult struct {
	mu      sync.Mutex
	samples []sample
}

func (l *loadResult) add(s sample) {
	l.mu.Lock()
	l.samples = append(l.samples, s)
	l.mu.Unlock()
}

// between returns the samples sent in [from, to).
func (l *loadResult) between(from, to time.Time) []sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sample
	for _, s := range l.samples {
		if !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// splitPath separates the samples of path from the others.
func splitPath(ss []sample, path string) (of, others []sample) {
	for _, s := range ss {
		if s.path == path {
			of = append(of, s)
		} else {
			others = append(others, s)
		}
	}
	return of, others
}

// maxSendGap is the longest time between two consecutive sends of ss:
// how long the sender (the test process) was stalled at worst.
func maxSendGap(ss []sample) time.Duration {
	at := make([]time.Time, len(ss))
	for i, s := range ss {
		at[i] = s.at
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	var gap time.Duration
	for i := 1; i < len(at); i++ {
		gap = max(gap, at[i].Sub(at[i-1]))
	}
	return gap
}

func p99(ss []sample) time.Duration {
	if len(ss) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(ss))
	for i, s := range ss {
		ds[i] = s.latency
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[(len(ds)*99+99)/100-1]
}

func count5xx(ss []sample) (n int, statuses map[int]int) {
	statuses = map[int]int{}
	for _, s := range ss {
		statuses[s.status]++
		if s.status >= 500 || s.status == 0 {
			n++
		}
	}
	return n, statuses
}

// openLoad sends GETs of paths round-robin over the instances at a fixed
// rate until ctx ends, each request on its own goroutine (open loop: a slow
// answer does not delay the next request).
func openLoad(ctx context.Context, rate int, ins []*instance, paths []string) *loadResult {
	res := &loadResult{}
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer func() { tick.Stop(); wg.Wait() }()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return res
		case <-tick.C:
		}
		in, path := ins[i%len(ins)], paths[i%len(paths)]
		wg.Go(func() {
			at := time.Now()
			st, _, lat := in.do("GET", path, nil)
			res.add(sample{path, st, lat, at})
		})
	}
}

// background runs openLoad in a goroutine and returns a func that stops it
// and returns the result.
func background(rate int, ins []*instance, paths []string) func() *loadResult {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *loadResult, 1)
	go func() { done <- openLoad(ctx, rate, ins, paths) }()
	return func() *loadResult { cancel(); return <-done }
}
