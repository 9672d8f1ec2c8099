package health

import (
	"strings"
	"testing"
	"unicode/utf8"

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
		{`{"token": "abc.def"}`, `{"token": xxxxx}`},
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

func FuzzRedact(f *testing.F) {
	f.Add("postgres://user:pw@host/db", "hunter2")
	f.Add("x password=%s y", "s3cr3t!")
	f.Add("redis://:%s@h:1", "p@ss")
	f.Add("Bearer %s", "tok")
	f.Fuzz(func(t *testing.T, tmpl, secret string) {
		out := Redact(tmpl)
		if len(out) > maxOutput+len("…") {
			t.Fatalf("output of %d bytes", len(out))
		}
		if utf8.ValidString(tmpl) && !utf8.ValidString(out) {
			t.Fatalf("valid UTF-8 in, invalid out: %q", out)
		}
		// A password of plain characters in a URL's userinfo never survives.
		if len(secret) < 4 || strings.Trim(secret, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
			return
		}
		in := "dial postgres://app:" + secret + "@db:5432/x: " + tmpl
		if len(in) > maxOutput {
			return
		}
		if got := Redact(in); strings.Contains(got, "app:"+secret+"@") {
			t.Fatalf("secret survived: %q", got)
		}
	})
}
