package health

import (
	"unicode/utf8"

	"github.com/servio/perfkit/internal/redact"
)

// maxOutput bounds the length of a check's output in bytes.
const maxOutput = 1024

// Redact returns s with secrets hidden and cut to 1 KiB. It is a thin
// wrapper of perfkit's one redaction rule set (the same in every package):
// URL userinfo (postgres://user:secret@host → postgres://user:xxxxx@host,
// also when the password holds '/' or '@'; a token as userinfo is masked
// whole), query, fragment, DSN, JSON and header values whose name is secret
// (password, sslpassword, token, access_token, secret, api-key, key, sig,
// private_key, authorization, x-api-key, x-auth…), bearer and basic
// credentials, webhook paths and user:secret@host. Every check output,
// measurement string and component id passes through it (with
// Config.SecretNames added); use it for your own messages too.
func Redact(s string) string { return truncate(redact.String(s)) }

// redact is Redact under the Checker's rules.
func (c *Checker) redact(s string) string { return truncate(c.rules.String(s)) }

func truncate(s string) string {
	if len(s) > maxOutput {
		cut := maxOutput
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
