package main

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit"
	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func itoa(n int64) string              { return strconv.FormatInt(n, 10) }
func stringsReader(s string) io.Reader { return strings.NewReader(s) }
func rebindTest(a *testApp, q string) string {
	if a.st.Dialect() == store.Postgres {
		return strings.Replace(q, "?", "$1", 1)
	}
	return q
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ADDR": ":9090", "DATABASE_URL": "postgres://x/y", "UPLOAD_MAX_BYTES": "2048",
		"SIM_LLM_LATENCY": "5ms", "SIM_LLM_FAILURE_RATE": "0.5", "OPENAI_API_KEY": "sk-test", "DEMO_DATA": "false", "REDIS_TIMEOUT": "2s"}
	cfg, err := parseConfig("t", []string{"-addr", ":7070"}, func(k string) string { return env[k] }, io.Discard, nil)
	require.NoError(t, err)
	assert.Equal(t, ":7070", cfg.Addr, "a flag wins over the environment")
	assert.Equal(t, "postgres://x/y", cfg.DatabaseURL)
	assert.Equal(t, int64(2048), cfg.UploadMaxBytes)
	assert.Equal(t, 5*time.Millisecond, cfg.SimLLMLatency)
	assert.InDelta(t, 0.5, cfg.SimLLMFailureRate, 1e-9)
	assert.Equal(t, "sk-test", cfg.OpenAIAPIKey)
	assert.False(t, cfg.DemoData)
	assert.Equal(t, 2*time.Second, cfg.RedisTimeout)

	def, err := parseConfig("t", nil, func(string) string { return "" }, io.Discard, nil)
	require.NoError(t, err)
	assert.Equal(t, ":8080", def.Addr)
	assert.Equal(t, "./data", def.DataDir)
	assert.Equal(t, int64(10<<20), def.UploadMaxBytes)
	assert.True(t, def.DemoData)
	assert.Zero(t, def.RedisTimeout, "0: the packages' own deadlines")

	bad := []map[string]string{
		{"UPLOAD_MAX_BYTES": "ten"}, {"UPLOAD_MAX_BYTES": "-1"}, {"SIM_LLM_FAILURE_RATE": "2"},
		{"SIM_LLM_LATENCY": "soon"}, {"DEMO_DATA": "maybe"}, {"LOG_LEVEL": "loud"}, {"DRAIN_DELAY": "-1s"},
		{"REDIS_TIMEOUT": "-1s"},
	}
	for _, e := range bad {
		_, err := parseConfig("t", nil, func(k string) string { return e[k] }, io.Discard, nil)
		assert.Error(t, err, "env %v must be refused", e)
	}
	_, err = parseConfig("t", []string{"extra"}, func(string) string { return "" }, io.Discard, nil)
	assert.Error(t, err)
}

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	h, err := hashPassword("s3cret", 1000)
	require.NoError(t, err)
	assert.True(t, checkPassword(h, "s3cret"))
	assert.False(t, checkPassword(h, "s3creT"))
	assert.False(t, checkPassword(h, ""))
	for _, bad := range []string{"", "plain", "pbkdf2-sha256$x$y$z", "pbkdf2-sha256$0$AA$AA", "md5$1$AA$AA"} {
		assert.False(t, checkPassword(bad, "s3cret"), "hash %q", bad)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := &tokenSigner{key: []byte("k"), ttl: time.Hour, now: func() time.Time { return now }}
	tok, exp, err := s.issue(store.User{ID: 7, Email: "a@b", Role: "staff"})
	require.NoError(t, err)
	assert.Equal(t, now.Add(time.Hour), exp)
	c, err := s.verify(tok)
	require.NoError(t, err)
	assert.Equal(t, int64(7), c.Sub)

	other := &tokenSigner{key: []byte("other"), ttl: time.Hour, now: s.now}
	_, err = other.verify(tok)
	assert.ErrorIs(t, err, errBadToken, "another key must not verify")
	_, err = s.verify(tok[:len(tok)-2] + "xx")
	assert.ErrorIs(t, err, errBadToken, "a changed signature must not verify")
	later := &tokenSigner{key: []byte("k"), ttl: time.Hour, now: func() time.Time { return now.Add(2 * time.Hour) }}
	_, err = later.verify(tok)
	assert.ErrorIs(t, err, errBadToken, "an expired token must not verify")
}

func TestNormalizeQuestion(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"What's vegan?", "what's vegan"},
		{"  what's   VEGAN \n", "what's vegan"},
		{"Hello!!!", "hello"},
		{"?!", ""},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, normalizeQuestion(tc.in), "normalizeQuestion(%q)", tc.in)
	}
	assert.Equal(t, assistantKey(question{Text: normalizeQuestion("What's vegan?")}), assistantKey(question{Text: normalizeQuestion("what's VEGAN")}))
	assert.NotEqual(t, assistantKey(question{RestaurantID: 1, Text: "x"}), assistantKey(question{RestaurantID: 2, Text: "x"}),
		"answers are per restaurant")
}

func TestNewRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		cluster bool
		addrs   []string
	}{
		{"redis://127.0.0.1:6379/0", false, []string{"127.0.0.1:6379"}},
		{"rediss://user:pw@cache.example:6380", false, []string{"cache.example:6380"}},
		{"10.0.0.1:7000,10.0.0.2:7000, 10.0.0.3:7000", true, []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}},
		{"redis://10.0.0.1:7000,redis://10.0.0.2:7000", true, []string{"10.0.0.1:7000", "10.0.0.2:7000"}},
		{"10.0.0.1:7000", true, []string{"10.0.0.1:7000"}},
	}
	for _, tc := range tests {
		c, err := newRedis(tc.url)
		require.NoError(t, err, tc.url)
		if tc.cluster {
			cc, ok := c.(*redis.ClusterClient)
			require.True(t, ok, "%s must make a cluster client", tc.url)
			assert.Equal(t, tc.addrs, cc.Options().Addrs)
			assert.True(t, cc.Options().ContextTimeoutEnabled)
			assert.Equal(t, perfkit.RedisDialAttempts, cc.Options().DialerRetries, "a refused dial is retried once")
		} else {
			rc, ok := c.(*redis.Client)
			require.True(t, ok, "%s must make a single-node client", tc.url)
			assert.Equal(t, tc.addrs[0], rc.Options().Addr)
			assert.True(t, rc.Options().ContextTimeoutEnabled)
			o := rc.Options()
			assert.Equal(t, []any{perfkit.RedisDialAttempts, perfkit.RedisMaxRetries, perfkit.RedisMinRetryBackoff, perfkit.RedisMaxRetryBackoff},
				[]any{o.DialerRetries, o.MaxRetries, o.MinRetryBackoff, o.MaxRetryBackoff}, "fail fast: perfkit.RedisOptions")
		}
		require.NoError(t, c.Close())
	}
	for _, bad := range []string{"http://x", "nohostport", "a:1,,b", "redis://h:1,bad"} {
		c, err := newRedis(bad)
		if err == nil {
			_ = c.Close()
		}
		assert.Error(t, err, "REDIS_URL %q must be refused", bad)
	}
	c, err := newRedis("")
	assert.NoError(t, err)
	assert.Nil(t, c)

	for _, bad := range []string{"redis://u:s3cret@h:port", "redis://u:s3cret@h:1/db", "redis://h:1,redis://u:s3cret@h:x"} {
		c, err := newRedis(bad)
		if err == nil {
			_ = c.Close()
		}
		require.Error(t, err, "REDIS_URL %q must be refused", bad)
		assert.NotContains(t, err.Error(), "s3cret", "the error must not show the password")
	}
}

func TestDBUnavailable(t *testing.T) {
	t.Parallel()
	down := []error{
		dbpool.ErrAcquireTimeout, fmt.Errorf("x: %w", dbpool.ErrConnectTimeout), driver.ErrBadConn, sql.ErrConnDone,
		&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, &pgconn.PgError{Code: "57P01"}, &pgconn.PgError{Code: "08006"},
		errors.New("read: conn closed"),
	}
	for _, err := range down {
		assert.True(t, dbUnavailable(err), "%v means the database is unavailable", err)
	}
	bugs := []error{nil, errors.New("syntax error"), &pgconn.PgError{Code: "42601"}, &pgconn.PgError{Code: "23505"}, sql.ErrNoRows}
	for _, err := range bugs {
		assert.False(t, dbUnavailable(err), "%v is not an outage", err)
	}
}
