package health

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxOutput bounds the length of a check's output in bytes.
const maxOutput = 1024

var (
	// scheme://user:password@host → scheme://user:xxxxx@host, as url.Redacted.
	reURLUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#@\s:"']*):[^/?#@\s"']*@`)
	// password=..., token: ..., api_key=... in DSNs, queries and messages.
	reSecretPair = regexp.MustCompile(`(?i)\b((?:[a-z0-9]+[_-])*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|credentials?|signature))(["']?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,"']+)`)
	// Authorization: Bearer abc / Basic dXNlcjpwYXNz.
	reBearer = regexp.MustCompile(`\b([Bb]earer|BEARER|Basic)\s+[A-Za-z0-9\-._~+/]{6,}=*`)
)

// Redact returns s with secrets hidden: the password of any URL's userinfo
// (postgres://user:secret@host → postgres://user:xxxxx@host), values of
// password=, token=, secret=, api_key= and similar pairs, and bearer or basic
// credentials. The result is cut to 1 KiB. Every check output passes through
// it; use it for your own messages too.
func Redact(s string) string {
	if s == "" {
		return s
	}
	if strings.Contains(s, "://") {
		s = reURLUserinfo.ReplaceAllString(s, "${1}${2}:xxxxx@")
	}
	s = reSecretPair.ReplaceAllString(s, "${1}${2}xxxxx")
	s = reBearer.ReplaceAllString(s, "${1} xxxxx")
	if len(s) > maxOutput {
		cut := maxOutput
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
