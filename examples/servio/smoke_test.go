package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
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

	port := testenv.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir() // embedded defaults write their files here
	cmd.Env = append(cleanEnv(), "ADDR=127.0.0.1:"+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/health"
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "GET %s never answered 200", url)

	// The README's first request: the demo data is there at once.
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/restaurants/1/menu")
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

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		assert.NoError(t, err, "servio must exit cleanly on SIGTERM")
	case <-time.After(20 * time.Second):
		t.Fatal("servio did not exit within 20s of SIGTERM")
	}
}

// cleanEnv is the environment without the service settings, so the smoke
// test runs the embedded defaults as a new user would.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "ADDR", "DATABASE_URL", "REDIS_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "STATSD_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT",
			"DATA_DIR", "REDIS_PREFIX", "RATE_LIMIT", "DEMO_DATA", "UPLOAD_MAX_BYTES", "SIM_LLM_LATENCY", "SIM_LLM_FAILURE_RATE", "AUTH_SECRET":
			continue
		}
		env = append(env, kv)
	}
	return env
}
