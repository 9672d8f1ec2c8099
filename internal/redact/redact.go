// Package redact is perfkit's one rule set for hiding secrets in text that
// leaves the process: log lines, health output, error messages and metric
// labels. Every public package routes such text through it (health.Redact
// and httpclient.RedactURL are thin wrappers), so a shape of secret is
// covered everywhere or nowhere.
//
// The promise: for the shapes below, the secret part of the input never
// appears in the output.
//
//   - URL userinfo, found structurally (not by a pattern) so that a password
//     holding '/', '?', '#' or '@' (user:p@ss@host, base64 secrets) is masked
//     whole: scheme://user:xxxxx@host. A userinfo without a colon, or whose
//     user part looks like a token (longer than 20 bytes or a known token
//     prefix such as ghp_), is masked whole: https://xxxxx@github.com.
//   - Query and fragment parameters, key=value and key: value pairs (DSNs,
//     JSON, headers) whose name is secret (see [Rules.SecretName]): the value
//     is masked, quoted or not; an "Authorization: Bearer x" keeps its scheme.
//   - "Bearer x" and "Basic x" credentials anywhere.
//   - Webhook URLs (Slack, Discord, Teams, any path with a hooks, webhook or
//     webhooks segment, Telegram bot tokens): the path after the fixed
//     prefix is masked, since there the path is the secret.
//   - user:secret@host without a scheme.
//
// A password whose text before its first '/', '?' or '#' is all digits
// cannot be told apart from a port (scheme://user:123/x@host is also a
// valid URL whose host is user, port 123); such a URL must be
// percent-encoded — [ParseURL] rejects the ambiguous shape.
//
// Rules are values: the zero value is the default rule set; [New] adds
// names. They are safe for concurrent use.
package redact

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// Rules is a rule set: the default deny-list plus extra secret names. The
// zero value holds the defaults. Rules is safe for concurrent use.
type Rules struct {
	extra []string // lower-case
}

// New returns the default rules plus extra secret names: a parameter or
// header whose name contains one of them (case-insensitive) is secret.
// Empty names are ignored.
func New(extra ...string) Rules {
	var r Rules
	for _, n := range extra {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			r.extra = append(r.extra, n)
		}
	}
	return r
}

// String returns s with every secret of the package's shapes masked.
func String(s string) string { return Rules{}.String(s) }

// SecretName reports whether a parameter or header name is secret under the
// default rules.
func SecretName(name string) bool { return Rules{}.SecretName(name) }

// Endpoint renders u as scheme://host plus route, under the default rules.
func Endpoint(u *url.URL, route string) string { return Rules{}.Endpoint(u, route) }

// Error wraps err so that its text is redacted by the default rules.
func Error(err error) error { return Rules{}.Error(err) }

// ParseURL is url.Parse whose error never quotes the raw URL, under the
// default rules.
func ParseURL(raw string) (*url.URL, error) { return Rules{}.ParseURL(raw) }

// secretWords are names that are secret wherever they occur inside a name.
var secretWords = [...]string{
	"password", "passwd", "secret", "token", "apikey", "api_key", "api-key",
	"accesskey", "access_key", "access-key", "privatekey", "private_key",
	"private-key", "credential", "signature", "authorization", "cookie",
	"session", "x-auth", "x_auth",
}

// secretParts are names that are secret as a whole part of a name split at
// '-', '_' and '.': key, x-api-key and private_key but not monkey.
var secretParts = [...]string{"key", "pwd", "pass", "sig", "auth", "jwt", "dsn"}

// SecretName reports whether a query parameter, header, DSN keyword or JSON
// field of this name holds a secret: names containing password, passwd,
// secret, token, api-key (any separator), access-key, private-key,
// credential, signature, authorization, cookie, session or x-auth; names
// with a part key, pwd, pass, sig, auth, jwt or dsn; and names containing
// an extra name of r. Case is ignored.
func (r Rules) SecretName(name string) bool {
	if name == "" {
		return false
	}
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	for _, w := range r.extra {
		if strings.Contains(n, w) {
			return true
		}
	}
	for part := range strings.FieldsFuncSeq(n, func(c rune) bool { return c == '-' || c == '_' || c == '.' }) {
		for _, w := range secretParts {
			if part == w {
				return true
			}
		}
	}
	return false
}

// Endpoint renders u for a log line or label as scheme://host followed by
// route (a template such as "/v1/orders/{id}"), never the raw path, query,
// fragment or userinfo: for a webhook the path is the secret. An empty route
// gives scheme://host alone.
func (r Rules) Endpoint(u *url.URL, route string) string {
	if u == nil {
		return r.String(route)
	}
	var b strings.Builder
	if u.Scheme != "" {
		b.WriteString(u.Scheme)
		b.WriteString("://")
	}
	b.WriteString(u.Host)
	b.WriteString(r.String(route))
	return b.String()
}

// Error returns err wrapped so that Error() is r.String of its text;
// errors.Is and errors.As see the original. A nil err gives nil.
func (r Rules) Error(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*redacted); ok {
		return err
	}
	return &redacted{err: err, rules: r}
}

type redacted struct {
	err   error
	rules Rules
}

func (e *redacted) Error() string { return e.rules.String(e.err.Error()) }
func (e *redacted) Unwrap() error { return e.err }

// ErrAmbiguousURL is the error of [Rules.ParseURL] for a URL whose userinfo
// holds an unescaped '/', '?' or '#': net/url would read part of the
// password as host, port or path.
var ErrAmbiguousURL = errors.New("userinfo holds an unescaped '/', '?' or '#'; percent-encode the password")

// ParseURL is url.Parse for URLs that may carry credentials. Its error is a
// *url.Error whose URL is redacted and whose message quotes no part of the
// raw URL (net/url's own errors quote the raw URL and fragments of it, such
// as an "invalid port" that is really a password). A URL whose userinfo
// holds an unescaped delimiter is rejected with [ErrAmbiguousURL] even where
// net/url would accept it, since net/url would then show the password as
// part of the host or path.
func (r Rules) ParseURL(raw string) (*url.URL, error) {
	shown := r.String(raw)
	if k := strings.Index(raw, "://"); k >= 0 {
		rest := raw[k+3:]
		if ui := userinfoEnd(rest); ui >= 0 && strings.ContainsAny(rest[:ui], "/?#") {
			return nil, &url.Error{Op: "parse", URL: shown, Err: ErrAmbiguousURL}
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		msg := err.Error()
		if ue, ok := errors.AsType[*url.Error](err); ok {
			msg = ue.Err.Error()
		}
		return nil, &url.Error{Op: "parse", URL: shown, Err: errors.New(dropQuoted(msg))}
	}
	return u, nil
}

// dropQuoted removes Go-quoted strings from msg: net/url quotes pieces of
// the raw URL ("invalid port \":Zm9v\" after host").
func dropQuoted(msg string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			b.WriteString(msg)
			break
		}
		b.WriteString(msg[:i])
		q, err := strconv.QuotedPrefix(msg[i:])
		if err != nil {
			break // an unterminated quote: drop the rest
		}
		b.WriteString(`"…"`)
		msg = msg[i+len(q):]
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
