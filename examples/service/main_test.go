package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestService runs the README's wiring example against a private Redis and
// a fake supplier: a price is fetched once and then served from the cache,
// a supplier 404 becomes a 502 without a retry, the caller's quota is
// enforced, and health and metrics are served.
func TestService(t *testing.T) {
	rs := testenv.StartRedis(t)
	var asked counts
	supplier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.add(r.URL.Path)
		if r.URL.Path != "/prices/tea" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"sku":"tea","cents":250}`)
	}))
	defer supplier.Close()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, addr, rs.URL(), supplier.URL, filepath.Join(t.TempDir(), "prices.db")) }()
	base := "http://" + addr
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "the service did not start listening")
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	for range 3 {
		code, body := get("/prices/tea")
		require.Equal(t, http.StatusOK, code, body)
		assert.JSONEq(t, `{"sku":"tea","cents":250}`, body)
	}
	assert.EqualValues(t, 1, asked.get("/prices/tea"), "the second and third calls must be cache hits")

	code, body := get("/prices/nope")
	assert.Equal(t, http.StatusBadGateway, code, body)
	assert.EqualValues(t, 1, asked.get("/prices/nope"), "a supplier 404 is not retried")

	code, _ = get("/health/ready")
	assert.Equal(t, http.StatusOK, code)
	code, body = get("/health/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, name := range []string{"perfkit_cache_hits_total", "http_client_request_duration_seconds", "perfkit_ratelimit_decisions_total",
		"db_client_connections", `operation_name="prices.get"`} {
		assert.Contains(t, body, name, "every package reports to the one provider Setup installed")
	}

	cancel()
	require.NoError(t, <-done)
}

// TestREADMEShowsTheProgram keeps the README's "Use it in your service"
// section the same program as main.go, and main.go within its 120 lines.
func TestREADMEShowsTheProgram(t *testing.T) {
	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	lines := strings.Count(string(src), "\n")
	assert.LessOrEqual(t, lines, 120, "the wiring example must stay short")
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)<!-- examples/service/main.go -->\n```go\n(.*?)```").FindSubmatch(readme)
	require.NotNil(t, m, "README.md must show examples/service/main.go in a ```go block after <!-- examples/service/main.go -->")
	assert.Equal(t, string(src), string(m[1]), "README.md's copy of examples/service/main.go is out of date")
}

type counts struct{ m sync.Map }

func (s *counts) add(k string) {
	v, _ := s.m.LoadOrStore(k, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (s *counts) get(k string) int64 {
	v, ok := s.m.Load(k)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}
