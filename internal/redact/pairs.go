package redact

import "strings"

// authSchemes are Authorization schemes whose credential follows a space.
var authSchemes = [...]string{"bearer", "basic", "token", "digest", "negotiate", "ntlm", "hoba", "mutual", "apikey", "sharedaccesssignature", "aws4-hmac-sha256"}

func isAuthScheme(w string) bool {
	for _, s := range authSchemes {
		if strings.EqualFold(w, s) {
			return true
		}
	}
	return false
}

func isKeyChar(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '_' || c == '-' || c == '.'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// isValueStop reports whether c ends an unquoted value. ',' and ';' do not:
// a password may hold them, and masking a little too much is the safe side.
func isValueStop(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '&', '"', '\'', '`', '<', '>':
		return true
	}
	return false
}

// text redacts text that holds no "://": name=value and name: value pairs
// with a secret name, Bearer and Basic credentials, and user:secret@host.
func (r Rules) text(s string, found *[]string) string {
	if s == "" {
		return s
	}
	var b strings.Builder
	last := 0 // s[:last] is written
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=' || c == ':':
			ke := i
			if ke > 0 && (s[ke-1] == '"' || s[ke-1] == '\'') {
				ke--
				if ke > 0 && s[ke-1] == '\\' {
					ke-- // an escaped quote: \"token\": \"x\"
				}
			}
			for ke > 0 && isSpace(s[ke-1]) && c == '=' {
				ke-- // "password = x"
			}
			ks := ke
			for ks > 0 && isKeyChar(s[ks-1]) {
				ks--
			}
			if ks == ke || !r.SecretName(s[ks:ke]) {
				continue
			}
			vs, ve, next := valueSpan(s, i+1)
			if vs == ve || placeholder(s[vs:ve]) {
				continue
			}
			*found = append(*found, s[vs:ve])
			b.WriteString(s[last:vs])
			b.WriteString(Mask)
			last, i = ve, next-1
		case c == '@':
			// user:secret@host without a scheme: mask from the token's first
			// ':' to its last '@'.
			ts := i
			for ts > last && !isValueStop(s[ts-1]) {
				ts--
			}
			te := i
			for te < len(s) && !isValueStop(s[te]) {
				te++
			}
			at := ts + strings.LastIndexByte(s[ts:te], '@')
			colon := strings.IndexByte(s[ts:at], ':')
			if colon < 0 || ts+colon+1 >= at {
				continue
			}
			*found = append(*found, s[ts+colon+1:at])
			b.WriteString(s[last : ts+colon+1])
			b.WriteString(Mask)
			last, i = at, at
		case isLetter(c) && (i == 0 || !isKeyChar(s[i-1])):
			// A bare "Bearer <credential>" or "Basic <credential>".
			we := i
			for we < len(s) && isLetter(s[we]) {
				we++
			}
			w := s[i:we]
			if !strings.EqualFold(w, "bearer") && !strings.EqualFold(w, "basic") {
				i = we - 1
				continue
			}
			vs := we
			for vs < len(s) && isSpace(s[vs]) {
				vs++
			}
			ve := vs
			for ve < len(s) && !isValueStop(s[ve]) {
				ve++
			}
			if vs == we || ve-vs < 6 {
				i = we - 1
				continue
			}
			*found = append(*found, s[vs:ve])
			b.WriteString(s[last:vs])
			b.WriteString(Mask)
			last, i = ve, ve-1
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// valueSpan returns the span [vs, ve) of the value that starts at or after
// s[from] (after spaces), without its quotes, and the index to resume at.
// An Authorization-style value "Bearer x" spans the credential only.
func valueSpan(s string, from int) (vs, ve, next int) {
	j := from
	for j < len(s) && isSpace(s[j]) {
		j++
	}
	if j+1 < len(s) && s[j] == '\\' && (s[j+1] == '"' || s[j+1] == '\'') {
		// An escaped quote: JSON inside a quoted string, a %q-formatted
		// error. The value runs to the next escaped quote.
		end := strings.Index(s[j+2:], s[j:j+2])
		if end < 0 {
			return j + 2, len(s), len(s)
		}
		return j + 2, j + 2 + end, j + 4 + end
	}
	if j < len(s) && (s[j] == '"' || s[j] == '\'') {
		q := s[j]
		k := j + 1
		for k < len(s) && s[k] != q {
			if s[k] == '\\' && q == '"' {
				k++
			}
			k++
		}
		if k >= len(s) {
			return j + 1, len(s), len(s) // unterminated: mask to the end
		}
		return j + 1, k, k + 1
	}
	ve = j
	for ve < len(s) && !isValueStop(s[ve]) {
		ve++
	}
	if isAuthScheme(s[j:ve]) {
		k := ve
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		if k > ve && k < len(s) {
			e := k
			for e < len(s) && !isValueStop(s[e]) {
				e++
			}
			if e > k {
				return k, e, e
			}
		}
	}
	return j, ve, ve
}

// placeholder reports whether v is a SQL bind placeholder ($1, ?, ?2), which
// names a value rather than holding one: "WHERE password = $1" stays
// readable in a slow-query log.
func placeholder(v string) bool {
	if v == "?" {
		return true
	}
	if len(v) < 2 || (v[0] != '$' && v[0] != '?') {
		return false
	}
	return allDigits(v[1:])
}
