package cache_test

import (
	"context"
	"errors"
	"github.com/servio/perfkit/internal/testenv"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/internal/redact/redacttest"
	"github.com/stretchr/testify/require"
)

// TestNoSecretInLogs pushes the leak table through the cache's log lines
// that carry a loader's error or panic (a loader calling an API may fail
// with an error quoting its URL and key): the background refresh of a
// stale value.
func TestNoSecretInLogs(t *testing.T) {
	t.Parallel()
	cases := redacttest.Cases(2)
	var logs testenv.SyncBuffer
	clk := newClock()
	c := newL1(t, cache.Config{StaleFor: time.Hour, TTLJitter: -1, Now: clk.Now, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx := context.Background()
	for i, tc := range cases {
		key := "k" + string(rune('A'+i%26)) + strings.Repeat("x", i/26)
		in := tc.Input
		_, err := cache.GetOrSet(ctx, c, key, 10*time.Second, func(context.Context) (int, error) { return 1, nil })
		require.NoError(t, err)
		clk.Add(11 * time.Second)
		fail := func(context.Context) (int, error) {
			if i%2 == 0 {
				panic(in)
			}
			return 0, errors.New(in)
		}
		_, err = cache.GetOrSet(ctx, c, key, 10*time.Second, fail) // stale served, refresh in the background
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		out := logs.String()
		return strings.Count(out, "cache: background refresh failed")+strings.Count(out, "cache: background load panicked") >= len(cases)
	}, settle, time.Millisecond, "every refresh logged")
	out := logs.String()
	for _, tc := range cases {
		redacttest.NoLeak(t, tc, out)
	}
}
