package redact_test

import (
	"errors"
	"io/fs"
	"net/url"
	"strings"
	"testing"

	"github.com/servio/perfkit/internal/redact"
	"github.com/servio/perfkit/internal/redact/redacttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"connection refused", "connection refused"},
		{"password authentication failed for user app", "password authentication failed for user app"},
		{"dial postgres://app:hunter2@db:5432/x: refused", "dial postgres://app:xxxxx@db:5432/x: refused"},
		{`parse "https://svc:Zm9v/YmFy+cXV4@api.internal/health": invalid port ":Zm9v" after host`,
			`parse "https://svc:xxxxx@api.internal/health": invalid port ":xxxxx" after host`},
		{"postgres://user:p@ss@host/db", "postgres://user:xxxxx@host/db"},
		{"https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r.git", "https://xxxxx@github.com/o/r.git"},
		{"https://ghp_abc:x-oauth-basic@github.com/o/r", "https://xxxxx@github.com/o/r"},
		{"redis://:hunter2@cache:6379/0,redis://:pw22@c2:6379", "redis://:xxxxx@cache:6379/0,redis://:xxxxx@c2:6379"},
		{"https://api.example.com/v1?key=AIza1&sig=abc&q=1#access_token=t0k3n", "https://api.example.com/v1?key=xxxxx&sig=xxxxx&q=1#access_token=xxxxx"},
		{"https://api.example.com/v1?api-key=k1&X-Auth-Key=k2&private_key=k3&limit=5", "https://api.example.com/v1?api-key=xxxxx&X-Auth-Key=xxxxx&private_key=xxxxx&limit=5"},
		{"url=https://hooks.slack.com/services/T0000/B0000/XXXXSECRETXXXX status=503", "url=https://hooks.slack.com/xxxxx status=503"},
		{"https://discord.com/api/webhooks/123/abcSECRET?wait=true", "https://discord.com/api/webhooks/xxxxx?wait=true"},
		{"https://api.telegram.org/bot123456:ABCSECRET/sendMessage", "https://api.telegram.org/botxxxxx/sendMessage"},
		{"http://host:8080/users/@me", "http://host:8080/users/@me"},
		{"host=db user=app password=hunter2 sslpassword='a b' dbname=x", "host=db user=app password=xxxxx sslpassword='xxxxx' dbname=x"},
		{"Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer xxxxx"},
		{"X-Auth-Token: abcd X-Api-Key: kkkk", "X-Auth-Token: xxxxx X-Api-Key: xxxxx"},
		{`{"token": "abc.def", "password":"p\"w", "user":"app"}`, `{"token": "xxxxx", "password":"xxxxx", "user":"app"}`},
		{"dial user:p@ss@host:6379: refused", "dial user:xxxxx@host:6379: refused"},
		{"client_secret=shh&grant_type=x", "client_secret=xxxxx&grant_type=x"},
		{"retry with Bearer abcdef123", "retry with Bearer xxxxx"},
		{`error: "{\"token\": \"abc\", \"user\": \"app\"}"`, `error: "{\"token\": \"xxxxx\", \"user\": \"app\"}"`},
		{"SELECT 1 FROM users WHERE password = $1 AND token=?", "SELECT 1 FROM users WHERE password = $1 AND token=?"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, redact.String(tt.in), "String(%q)", tt.in)
	}
}

// TestLeakTable is the promise: no secret of a covered shape survives.
func TestLeakTable(t *testing.T) {
	t.Parallel()
	for _, c := range redacttest.Cases(200) {
		redacttest.NoLeak(t, c, redact.String(c.Input))
		redacttest.NoLeak(t, c, redact.Error(errors.New(c.Input)).Error())
	}
}

func TestExtraNames(t *testing.T) {
	t.Parallel()
	r := redact.New("Pin", " ")
	assert.Equal(t, "https://x.example/?card_pin=xxxxx&n=1", r.String("https://x.example/?card_pin=1234&n=1"))
	assert.Equal(t, "pin=xxxxx", r.String("pin=1234"))
	assert.Equal(t, "pin=1234", redact.String("pin=1234"), "extra names are opt-in")
}

func TestSecretName(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"password", "sslpassword", "PASSWD", "pwd", "pass", "secret", "client_secret", "token",
		"access_token", "X-Auth-Token", "api-key", "api_key", "apikey", "x-api-key", "key", "private_key", "sig",
		"signature", "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "x-auth", "x-auth-user", "jwt", "credentials"} {
		assert.True(t, redact.SecretName(n), n)
	}
	for _, n := range []string{"", "user", "host", "sslmode", "monkey", "limit", "q", "author", "dbname", "keyspace"} {
		assert.False(t, redact.SecretName(n), n)
	}
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	u, err := url.Parse("https://u:p@hooks.slack.com:8443/services/T/B/SECRET?token=t#f")
	require.NoError(t, err)
	assert.Equal(t, "https://hooks.slack.com:8443", redact.Endpoint(u, ""))
	assert.Equal(t, "https://hooks.slack.com:8443/services/{team}/{bot}/{key}", redact.Endpoint(u, "/services/{team}/{bot}/{key}"))
	assert.Equal(t, "", redact.Endpoint(nil, ""))
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"https://svc:Zm9v/YmFy+cXV4@api.internal/health",
		"https://svc:Zm9v?YmFy@api.internal/health",
		"https://svc:Zm9vYmFy@api.internal:port/health",
		"https://svc:Zm9vYmFy@api internal/health",
		"https://svc:Zm9vYmFy@api.internal/%zz",
	} {
		u, err := redact.ParseURL(raw)
		require.Error(t, err, raw)
		assert.Nil(t, u)
		assert.NotContains(t, err.Error(), "Zm9v", raw)
		_, isURLErr := errors.AsType[*url.Error](err)
		assert.True(t, isURLErr, raw)
	}
	u, err := redact.ParseURL("https://svc:Zm9v%2FYmFy@api.internal/health")
	require.NoError(t, err)
	pw, _ := u.User.Password()
	assert.Equal(t, "Zm9v/YmFy", pw)
}

func TestErrorUnwraps(t *testing.T) {
	t.Parallel()
	base := &fs.PathError{Op: "open", Path: "postgres://a:hunter2@h", Err: fs.ErrNotExist}
	err := redact.Error(base)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.Same(t, err, redact.Error(err), "wrapping twice")
	assert.NoError(t, redact.Error(nil))
}

// FuzzString asserts the property, not only the absence of a crash: for
// every shape, a secret drawn from the shape's alphabet never appears in
// the output, whatever text follows it.
func FuzzString(f *testing.F) {
	shapes := redacttest.Shapes()
	for i, c := range redacttest.Cases(0) {
		f.Add(uint8(i), c.Secret, "")
		f.Add(uint8(i), c.Secret, c.Input)
	}
	f.Fuzz(func(t *testing.T, shape uint8, secret, noise string) {
		sh := shapes[int(shape)%len(shapes)]
		out := redact.String(secret + noise)
		_ = out // any input: no panic
		if len(secret) < 6 || !isLetterByte(secret[0]) || strings.Trim(secret, sh.Alphabet) != "" {
			return
		}
		in := sh.Build(secret) + " " + noise
		// Skip a secret the surroundings produce by themselves.
		if strings.Contains(noise, secret) || strings.Contains(redact.String(sh.Build(strings.Repeat("Q", len(secret)))+" "+noise), secret) {
			return
		}
		if got := redact.String(in); strings.Contains(got, secret) {
			t.Fatalf("%s: secret %q survived:\nin:  %q\nout: %q", sh.Name, secret, in, got)
		}
	})
}

func isLetterByte(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
