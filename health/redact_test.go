package health

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/servio/perfkit/internal/redact/redacttest"
	"github.com/stretchr/testify/assert"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"connection refused", "connection refused"},
		{"dial postgres://app:hunter2@db:5432/x: refused", "dial postgres://app:xxxxx@db:5432/x: refused"},
		{`Get "https://u:p%40ss@api.example.com/v1": EOF`, `Get "https://u:xxxxx@api.example.com/v1": EOF`},
		{"redis://:hunter2@cache:6379/0", "redis://:xxxxx@cache:6379/0"},
		{"https://api.example.com/v1 ok", "https://api.example.com/v1 ok"},
		{"host=db user=app password=hunter2 dbname=x", "host=db user=app password=xxxxx dbname=x"},
		{"GET /v1?api_key=abc123&q=1", "GET /v1?api_key=xxxxx&q=1"},
		{`{"token": "abc.def"}`, `{"token": "xxxxx"}`},
		{`parse "https://svc:Zm9v/YmFy+cXV4@api.internal/health": invalid port ":Zm9v" after host`, `parse "https://svc:xxxxx@api.internal/health": invalid port ":xxxxx" after host`},
		{"postgres://user:p@ss@host/db", "postgres://user:xxxxx@host/db"},
		{"https://ghp_0123456789abcdefghij0123456789abcdef@github.com/o/r", "https://xxxxx@github.com/o/r"},
		{"https://a.blob.core.windows.net/c?sv=1&sig=abc%2Bdef&se=2", "https://a.blob.core.windows.net/c?sv=1&sig=xxxxx&se=2"},
		{"https://maps.example.com/geo?key=AIzaSyA", "https://maps.example.com/geo?key=xxxxx"},
		{"host=db sslpassword=s3cr3t", "host=db sslpassword=xxxxx"},
		{"X-Auth-Token: abc123", "X-Auth-Token: xxxxx"},
		{"private_key=MIIEvQ", "private_key=xxxxx"},
		{"https://hooks.slack.com/services/T0/B0/XXXXSECRET", "https://hooks.slack.com/xxxxx"},
		{"client_secret=shh", "client_secret=xxxxx"},
		{"Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer xxxxx"},
		{"password authentication failed for user app", "password authentication failed for user app"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Redact(tt.in), tt.in)
	}
	long := Redact(strings.Repeat("é", 2000))
	assert.LessOrEqual(t, len(long), maxOutput+len("…"))
	assert.True(t, utf8.ValidString(long))
}

// FuzzRedact asserts the property, not only the absence of a crash: for
// every secret shape of the leak table, a secret drawn from the shape's
// alphabet never appears in the output, whatever text follows it; and any
// input gives bounded, valid output. The seed corpus is the leak table's
// fixed cases (plus testdata/fuzz/FuzzRedact).
func FuzzRedact(f *testing.F) {
	shapes := redacttest.Shapes()
	f.Add("postgres://user:pw@host/db", "hunter2", uint8(0))
	f.Add("x password=%s y", "s3cr3t!", uint8(13))
	for i, c := range redacttest.Cases(0) {
		f.Add(c.Input, c.Secret, uint8(i))
	}
	f.Fuzz(func(t *testing.T, tmpl, secret string, shape uint8) {
		out := Redact(tmpl)
		if len(out) > maxOutput+len("…") {
			t.Fatalf("output of %d bytes", len(out))
		}
		if utf8.ValidString(tmpl) && !utf8.ValidString(out) {
			t.Fatalf("valid UTF-8 in, invalid out: %q", out)
		}
		sh := shapes[int(shape)%len(shapes)]
		if len(secret) < 6 || secret[0]|0x20 < 'a' || secret[0]|0x20 > 'z' || strings.Trim(secret, sh.Alphabet) != "" {
			return
		}
		in := sh.Build(secret) + " " + tmpl
		// A secret that the surrounding text produces by itself is no leak.
		if strings.Contains(tmpl, secret) || strings.Contains(Redact(sh.Build(strings.Repeat("Q", len(secret)))+" "+tmpl), secret) {
			return
		}
		if got := Redact(in); strings.Contains(got, secret) {
			t.Fatalf("%s: secret %q survived:\nin:  %q\nout: %q", sh.Name, secret, in, got)
		}
	})
}
