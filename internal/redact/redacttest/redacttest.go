// Package redacttest holds the leak table that every perfkit package's
// tests push through its logging and reporting paths: secret-bearing inputs
// of each shape internal/redact covers, fixed and generated, with the
// secret each must never let out.
package redacttest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// Case is one secret-bearing input.
type Case struct {
	Name   string // the shape
	Input  string // text, a URL or a DSN holding Secret
	Secret string // what must not appear in any output
}

// Shape builds an input around a secret drawn from Alphabet.
type Shape struct {
	Name     string
	Build    func(secret string) string
	Alphabet string // the characters a secret of this shape may hold
}

const (
	alnum  = "abcdefghijklmnopqrstuvwyzABCDEFGHIJKLMNOPQRSTUVWYZ0123456789" // no x: the mask is xxxxx
	b64    = alnum + "+/="
	pwChar = alnum + "+/=!$%^*()[]{}~,;.-_@?#"
	qChar  = alnum + "-_.~%"
)

// Shapes are the secret shapes covered, one builder each.
func Shapes() []Shape {
	return []Shape{
		{"url-password", func(s string) string { return "postgres://app:" + s + "@db.internal:5432/orders?sslmode=disable" }, alnum},
		{"url-password-slash", func(s string) string { return "https://svc:" + s + "@api.internal/health" }, b64},
		{"url-password-at", func(s string) string { return "redis://user:" + s + "@cache.internal:6379/0" }, pwChar},
		{"parse-error-quote", func(s string) string {
			return `health: bad URL: parse "https://svc:` + s + `@api.internal/health": invalid port ":` + s[:len(s)/2] + `" after host`
		}, b64},
		{"token-userinfo", func(s string) string { return "https://ghp_" + s + "@github.com/servio/perfkit.git" }, alnum + "_"},
		{"token-user-with-x-oauth", func(s string) string { return "https://ghp_" + s + ":x-oauth-basic@github.com/o/r" }, alnum},
		{"bare-user-pass", func(s string) string { return "dial user:" + s + "@cache.internal:6379: connection refused" }, alnum + "@!$%^*"},
		{"query-api-key", func(s string) string { return "https://api.example.com/v1/chat?api-key=" + s + "&q=1" }, qChar},
		{"query-key", func(s string) string { return "https://maps.example.com/geo?key=AIza" + s }, qChar},
		{"query-sig", func(s string) string { return "https://acct.blob.core.windows.net/c/b?sv=2022&sig=" + s + "&se=2026" }, qChar},
		{"query-token", func(s string) string { return "wss://push.example.com/ws?token=" + s }, qChar},
		{"query-access-token", func(s string) string { return "https://graph.example.com/me?access_token=" + s }, qChar},
		{"fragment-token", func(s string) string { return "https://app.example.com/cb#access_token=" + s + "&state=1" }, qChar},
		{"dsn-password", func(s string) string { return "host=db user=app password=" + s + " dbname=orders" }, pwChar},
		{"dsn-password-quoted", func(s string) string { return "host=db user=app password='" + s + " " + s + "' dbname=orders" }, pwChar},
		{"dsn-sslpassword", func(s string) string { return "host=db sslpassword=" + s + " sslmode=verify-full" }, pwChar},
		{"private-key", func(s string) string { return "private_key=" + s }, b64},
		{"client-secret", func(s string) string { return "client_secret=" + s + "&grant_type=client_credentials" }, qChar},
		{"json-token", func(s string) string { return `{"token": "` + s + `", "user": "app"}` }, pwChar},
		{"json-password", func(s string) string { return `{"password":"` + s + `"}` }, pwChar},
		{"header-authorization", func(s string) string { return "Authorization: Bearer " + s }, b64 + "-._~"},
		{"header-basic", func(s string) string { return "Authorization: Basic " + s }, b64},
		{"header-x-api-key", func(s string) string { return "X-Api-Key: " + s }, qChar},
		{"header-x-auth", func(s string) string { return "X-Auth-Token: " + s }, qChar},
		{"header-x-auth-key", func(s string) string { return "x-auth-key=" + s }, qChar},
		{"bare-bearer", func(s string) string { return "retrying with bearer " + s + " after 401" }, b64},
		{"webhook-slack", func(s string) string { return "https://hooks.slack.com/services/T0000/B0000/" + s }, alnum},
		{"webhook-discord", func(s string) string { return "https://discord.com/api/webhooks/1234567/" + s }, alnum + "-_"},
		{"webhook-teams", func(s string) string {
			return "https://acme.webhook.office.com/webhookb2/" + s + "/IncomingWebhook/abc"
		}, alnum + "-"},
		{"webhook-generic", func(s string) string { return "https://ci.example.com/hooks/" + s }, alnum},
		{"telegram-bot", func(s string) string { return "https://api.telegram.org/bot123456:" + s + "/sendMessage" }, alnum + "-_"},
		{"url-error", func(s string) string {
			return `Post "https://api.example.com/v1/chat/completions?api-key=` + s + `": dial tcp 10.0.0.1:443: connect: connection refused`
		}, qChar},
		{"panic-value", func(s string) string { return "dial postgres://app:" + s + "@db:5432/x: connection refused" }, alnum},
		{"cluster-list", func(s string) string { return "redis://:" + s + "@n1:6379,redis://:" + s + "@n2:6379" }, alnum},
	}
}

// Cases returns every shape with a fixed secret and n generated ones
// (seeded, so a failure reproduces).
func Cases(n int) []Case {
	rng := rand.New(rand.NewPCG(24, 24))
	var cs []Case
	for _, sh := range Shapes() {
		fixed := "S3cr3tQ" + strings.Map(func(r rune) rune {
			if strings.ContainsRune(sh.Alphabet, r) {
				return r
			}
			return -1
		}, "Zm9v/YmFy+cXV4@p")
		cs = append(cs, Case{sh.Name, sh.Build(fixed), fixed})
		for i := range n {
			s := Secret(rng, sh.Alphabet)
			cs = append(cs, Case{fmt.Sprintf("%s/%d", sh.Name, i), sh.Build(s), s})
		}
	}
	return cs
}

// Secret returns a random secret of 8 to 40 characters of alphabet that
// starts with a letter (a password starting with digits and a '/' reads as
// a port; see internal/redact) and holds a lower-case letter and a digit.
func Secret(rng *rand.Rand, alphabet string) string {
	n := 8 + rng.IntN(33)
	b := make([]byte, n)
	b[0] = "abcdefghijklmnopqrstuvwyz"[rng.IntN(25)]
	for i := 1; i < n; i++ {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	b[n-1] = "0123456789"[rng.IntN(10)]
	return string(b)
}

// NoLeak fails t when out holds c's secret.
func NoLeak(t testing.TB, c Case, out string) {
	t.Helper()
	if i := strings.Index(out, c.Secret); i >= 0 {
		lo, hi := max(0, i-200), min(len(out), i+len(c.Secret)+200)
		t.Errorf("%s: secret %q leaked:\ninput:  %s\noutput: …%s…", c.Name, c.Secret, c.Input, out[lo:hi])
	}
}
