package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logLines decodes the JSON lines written to b.
func logLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "log line %q", l)
		out = append(out, m)
	}
	return out
}

// TestLogSampling: of 1,000 identical failures in one interval one line is
// written; the next after the interval carries the count dropped; another
// error, and records without an error, are not held back.
func TestLogSampling(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(1_000_000, 0)
	log := slog.New(newSamplingHandler(slog.NewJSONHandler(&buf, nil), 10*time.Second, func() time.Time { return now }))
	down := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	for range 1000 {
		log.Warn("database unavailable", "path", "/orders", "err", down)
		log.Info("request served")
	}
	log.Warn("database unavailable", "err", errors.New("another failure"))
	now = now.Add(10 * time.Second)
	log.With("instance", "a").Warn("database unavailable", "err", down)

	lines := logLines(t, &buf)
	var warns []map[string]any
	for _, l := range lines {
		if l["level"] == "WARN" {
			warns = append(warns, l)
		}
	}
	require.Len(t, warns, 3, "first failure, another error, the one after the interval")
	assert.Nil(t, warns[0]["suppressed"])
	assert.Equal(t, "another failure", warns[1]["err"])
	assert.Equal(t, float64(999), warns[2]["suppressed"], "the count dropped in the interval")
	assert.Len(t, lines, 1003, "INFO records are never sampled")
}

// TestRedisLoggerJSON: go-redis's log lines come out as servio's JSON
// records.
func TestRedisLoggerJSON(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := redisLogger{log: slog.New(slog.NewJSONHandler(&buf, nil))}
	l.Printf(context.Background(), "redis: %s: discarding bad PubSub connection: %v\n", "127.0.0.1:6379", "EOF")
	lines := logLines(t, &buf)
	require.Len(t, lines, 1)
	assert.Equal(t, "go-redis", lines[0]["component"])
	assert.Equal(t, "redis: 127.0.0.1:6379: discarding bad PubSub connection: EOF", lines[0]["err"])
}
