package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSmokeRunCommand builds the binary the README's run command builds,
// starts it with no services configured, waits for /health and stops it
// with SIGTERM, expecting a clean exit.
func TestSmokeRunCommand(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "servio")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	// Port 0: the binary picks a free port and logs it, so no other test
	// can take the port between choosing and binding it.
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir() // embedded defaults write their files here
	cmd.Env = append(cleanEnv(), "ADDR=127.0.0.1:0", "LOG_LEVEL=info")
	logs := &listenWatcher{addr: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("servio output:\n%s", logs.String())
		}
	})

	var addr string
	select {
	case addr = <-logs.addr:
	case err := <-done:
		done <- err
		t.Fatalf("servio exited before listening: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("servio did not log its listening address within 60s")
	}
	resp, err := http.Get("http://" + addr + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "GET /health")

	// The README's first request: the demo data is there at once.
	resp, err = http.Get("http://" + addr + "/restaurants/1/menu")
	require.NoError(t, err)
	var menu struct {
		RestaurantID int64 `json:"restaurant_id"`
		Items        []struct {
			Name       string `json:"name"`
			PriceCents int64  `json:"price_cents"`
		} `json:"items"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&menu))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, menu.Items, "GET /restaurants/1/menu must return the demo menu")

	// The resource reaches Prometheus as target_info, with the version from
	// the build info, not "unknown": the module's (pseudo-)version or VCS
	// revision go build stamps, or "devel" where it stamps none (a git
	// worktree, GOFLAGS=-buildvcs=false); metrics.TestBuildVersion covers
	// each case.
	resp, err = http.Get("http://" + addr + "/health/metrics")
	require.NoError(t, err)
	scraped, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	var target string
	for line := range strings.Lines(string(scraped)) {
		if strings.HasPrefix(line, "target_info{") {
			target = line
		}
	}
	assert.Contains(t, target, `service_name="servio"`)
	assert.Regexp(t, `service_version="[^"]+"`, target)
	assert.NotContains(t, target, `service_version="unknown"`)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		done <- err // for the cleanup
		assert.NoError(t, err, "servio must exit cleanly on SIGTERM")
	case <-time.After(30 * time.Second):
		t.Fatal("servio did not exit within 30s of SIGTERM")
	}
}

// listenWatcher collects the binary's output and sends the address of its
// "servio listening" log line on addr, once.
type listenWatcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	addr chan string
	sent bool
}

func (w *listenWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.sent {
		for line := range strings.Lines(w.buf.String()) {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "servio listening" {
				w.addr <- rec.Addr
				w.sent = true
				break
			}
		}
	}
	return len(p), nil
}

func (w *listenWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// cleanEnv is the environment without the service settings, so the smoke
// test runs the embedded defaults as a new user would.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "ADDR", "DATABASE_URL", "REDIS_URL", "REDIS_PREFIX", "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL",
			"ASSISTANT_TIMEOUT", "STATSD_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT", "DATA_DIR", "UPLOAD_MAX_BYTES", "DEMO_DATA",
			"BASELINE", "RATE_LIMIT", "TRUSTED_PROXIES", "SIM_LLM_LATENCY", "SIM_LLM_FAILURE_RATE", "AUTH_SECRET",
			"DRAIN_DELAY", "LOG_LEVEL":
			continue
		}
		env = append(env, kv)
	}
	return env
}
