package redact

import (
	"net/url"
	"slices"
	"strings"
)

// String returns s with every secret of the package's shapes masked: URLs
// are redacted structurally ([Rules.URL]), the text between them pair by
// pair.
func (r Rules) String(s string) string {
	if s == "" {
		return s
	}
	var found []string
	out := r.scan(s, &found)
	if dec := unescape(s); dec != s {
		// Percent-encoding hides a secret from the rules ("bearer%20x"):
		// scan the decoded text too and mask what it finds, in both forms.
		var more []string
		r.scan(dec, &more)
		for _, f := range more {
			found = append(found, f, url.PathEscape(f), url.QueryEscape(f))
		}
	}
	return maskAgain(out, found)
}

// unescape decodes the valid %XX sequences of s and leaves the rest.
func unescape(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

func unhex(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// scan redacts s, appending every secret it masks to found.
func (r Rules) scan(s string, found *[]string) string {
	var b strings.Builder
	pos := 0
	for {
		k := strings.Index(s[pos:], "://")
		if k < 0 {
			break
		}
		k += pos
		st := k
		for st > pos && isSchemeChar(s[st-1]) {
			st--
		}
		for st < k && !isLetter(s[st]) {
			st++ // a scheme starts with a letter
		}
		end := k + 3
		for end < len(s) && !isURLStop(s[end]) && !nextURL(s, end) {
			end++
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(r.text(s[pos:st], found))
		b.WriteString(r.url(s[st:end], found))
		pos = end
	}
	if pos == 0 {
		return r.text(s, found)
	}
	b.WriteString(r.text(s[pos:], found))
	return b.String()
}

// URL returns raw, a URL such as a configured endpoint or DSN, with its
// secrets masked: the userinfo password (or the whole userinfo when it
// holds a token), secret query and fragment parameters, and webhook paths.
// Text that is not a URL is redacted as by [Rules.String].
func (r Rules) URL(raw string) string { return r.String(raw) }

// URL returns raw with its secrets masked under the default rules.
func URL(raw string) string { return Rules{}.URL(raw) }

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSchemeChar(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '+' || c == '-' || c == '.'
}

// isURLStop reports whether c ends a URL embedded in text.
func isURLStop(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '"', '\'', '`', '<', '>':
		return true
	}
	return false
}

// userinfoEnd returns the index in rest (a URL after "scheme://") of the
// '@' that ends its userinfo, or -1. It is the last '@' of rest when an '@'
// comes before the first '/', '?' or '#', or when the authority before that
// delimiter is not a valid host[:port] (a password holding the delimiter:
// "svc:Zm9v/YmFy@host"). An '@' after a clean authority is a path's.
func userinfoEnd(rest string) int {
	last := strings.LastIndexByte(rest, '@')
	if last < 0 {
		return -1
	}
	delim := strings.IndexAny(rest, "/?#")
	if delim < 0 || delim > last {
		return last
	}
	auth := rest[:delim]
	if strings.IndexByte(auth, '@') >= 0 {
		return last
	}
	if strings.HasPrefix(auth, "[") {
		return -1 // an IPv6 literal
	}
	if c := strings.IndexByte(auth, ':'); c >= 0 && !allDigits(auth[c+1:]) {
		return last
	}
	return -1
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// tokenPrefixes start well-known credentials.
var tokenPrefixes = [...]string{
	"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xoxb-",
	"xoxp-", "xoxa-", "xoxs-", "sk-", "sk_", "rk_", "pk_", "akia", "asia", "eyj",
	"x-access-token", "oauth2",
}

// tokenLike reports whether a userinfo's user part may be a credential.
func tokenLike(user string) bool {
	if len(user) > 20 {
		return true
	}
	l := strings.ToLower(user)
	for _, p := range tokenPrefixes {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// url redacts one URL token "scheme://...".
func (r Rules) url(tok string, found *[]string) string {
	k := strings.Index(tok, "://")
	var b strings.Builder
	b.Grow(len(tok))
	b.WriteString(tok[:k+3])
	rest := tok[k+3:]
	if ui := userinfoEnd(rest); ui >= 0 {
		user, pass, hasPass := strings.Cut(rest[:ui], ":")
		if hasPass && !tokenLike(user) && !strings.ContainsAny(user, "/?#") {
			b.WriteString(user)
			b.WriteByte(':')
			*found = append(*found, pass)
		} else {
			*found = append(*found, rest[:ui])
		}
		b.WriteString(Mask)
		b.WriteByte('@')
		rest = rest[ui+1:]
	}
	hostEnd := strings.IndexAny(rest, "/?#")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	host := rest[:hostEnd]
	b.WriteString(host)
	rest = rest[hostEnd:]
	pathEnd := strings.IndexAny(rest, "?#")
	if pathEnd < 0 {
		pathEnd = len(rest)
	}
	b.WriteString(r.path(host, rest[:pathEnd], found))
	rest = rest[pathEnd:]
	if strings.HasPrefix(rest, "?") {
		q, frag, hasFrag := strings.Cut(rest[1:], "#")
		b.WriteByte('?')
		b.WriteString(r.params(q, found))
		rest = ""
		if hasFrag {
			rest = "#" + frag
		}
	}
	if strings.HasPrefix(rest, "#") {
		b.WriteByte('#')
		b.WriteString(r.params(rest[1:], found))
	}
	return b.String()
}

// webhookSegments are path segments after which a webhook URL's path is
// its secret.
var webhookSegments = [...]string{"hooks", "webhook", "webhooks", "webhookb2", "services"}

// path redacts a URL path: webhook paths are cut after their fixed prefix,
// Telegram-style bot tokens and secret matrix parameters are masked.
func (r Rules) path(host, p string, found *[]string) string {
	if p == "" || p == "/" {
		return p
	}
	h := strings.ToLower(host)
	if strings.Contains(h, "webhook") || strings.HasPrefix(h, "hooks.") {
		*found = append(*found, p[1:])
		return "/" + Mask
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		l := strings.ToLower(s)
		for _, w := range webhookSegments {
			if l == w && (w != "services" || strings.Contains(h, "slack")) {
				*found = append(*found, strings.Join(segs[i+1:], "/"))
				return strings.Join(segs[:i+1], "/") + "/" + Mask
			}
		}
		if strings.HasPrefix(l, "bot") && strings.IndexByte(s, ':') > 3 {
			*found = append(*found, s[3:])
			segs[i] = "bot" + Mask // Telegram: /bot<id>:<token>/method
			continue
		}
		segs[i] = r.text(s, found)
	}
	return strings.Join(segs, "/")
}

// params redacts a query string or fragment: the values of secret names.
func (r Rules) params(q string, found *[]string) string {
	if q == "" {
		return q
	}
	var b strings.Builder
	b.Grow(len(q))
	for part := range strings.FieldsFuncSeq(q, func(c rune) bool { return c == '&' || c == ';' }) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		key, val, hasVal := strings.Cut(part, "=")
		name := key
		if n, err := url.QueryUnescape(key); err == nil {
			name = n
		}
		if hasVal && r.SecretName(name) {
			*found = append(*found, val)
			b.WriteString(key)
			b.WriteString("=" + Mask)
			continue
		}
		if !hasVal && r.SecretName(name) {
			*found = append(*found, part)
			b.WriteString(Mask)
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

// nextURL reports whether s[i] is a ',' that starts another URL, as in a
// comma-separated list of cluster nodes.
func nextURL(s string, i int) bool {
	if s[i] != ',' {
		return false
	}
	j := i + 1
	for j < len(s) && isSchemeChar(s[j]) {
		j++
	}
	return j > i+1 && strings.HasPrefix(s[j:], "://")
}

// minPiece is the shortest piece of a found secret that maskAgain masks
// elsewhere in the text; shorter pieces would mask ordinary words.
const minPiece = 4

// maskAgain masks, anywhere in s, every secret in found and every piece of
// one between delimiters: net/url's errors quote fragments of a URL apart
// from the URL ("invalid port \":Zm9v\" after host").
func maskAgain(s string, found []string) string {
	if len(found) == 0 {
		return s
	}
	var pieces []string
	for _, f := range found {
		if len(f) >= minPiece && f != Mask {
			pieces = append(pieces, f)
		}
		for p := range strings.FieldsFuncSeq(f, func(c rune) bool { return strings.ContainsRune("/?#@:&=+;,%", c) }) {
			if len(p) >= minPiece && p != f && p != Mask {
				pieces = append(pieces, p)
			}
		}
	}
	// Longest first, so a piece inside a longer secret does not split it.
	slices.SortFunc(pieces, func(a, b string) int { return len(b) - len(a) })
	for _, p := range pieces {
		if strings.Contains(s, p) {
			s = strings.ReplaceAll(s, p, Mask)
		}
	}
	return s
}
