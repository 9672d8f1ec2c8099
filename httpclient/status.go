package httpclient

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/servio/perfkit/internal/redact"
	"github.com/servio/perfkit/resilience"
)

// StatusBodyLimit is the most of a failing response's body a [StatusError]
// keeps (after masking secrets).
const StatusBodyLimit = 512

// statusReadLimit is how much of the body is read before masking: more than
// StatusBodyLimit, so a secret whose marker follows it (user:secret@host)
// is still recognised when the cut falls in between.
const statusReadLimit = 4 << 10

// StatusError is a response with a failing status (4xx or 5xx) as an error,
// returned by [CheckStatus]. It carries what a caller, a log line or a
// resilience policy needs, and nothing secret:
//
//   - RetryAfter() is the server's Retry-After (delay-seconds or HTTP-date),
//     so it satisfies resilience.RetryAfterer: resilience's Retry waits
//     exactly that long before the next attempt (or gives up when it is
//     longer than RetryConfig.MaxRetryAfter or the deadline).
//   - URL is scheme://host plus the route template set with [WithRoute],
//     never the raw path, query or user info (for a webhook the path is the
//     secret).
//   - Body is the start of the response body (at most StatusBodyLimit
//     bytes) with every secret of perfkit's redaction rules and every piece
//     of the request URL masked.
//
// Match it with errors.As. CheckStatus wraps a 4xx other than 408 and 429
// in resilience.NotFailure, so resilience.IsNotFailure(err) is true for it:
// the caller's mistake is neither retried nor counted by a breaker.
type StatusError struct {
	StatusCode int    // the response status, 400–599
	Method     string // the request method
	URL        string // scheme://host plus the route template
	Body       string // the start of the body, secrets masked
	retryAfter time.Duration
}

// Error describes the request and the status, then the body's start:
// "httpclient: GET https://api.example.com/v1/orders/{id}: 503 Service
// Unavailable: try later".
func (e *StatusError) Error() string {
	s := "httpclient: " + e.Method + " " + e.URL + ": " + strconv.Itoa(e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		s += " " + t
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// RetryAfter returns the wait the server asked for in its Retry-After
// header, or 0 when it sent none (or a date in the past). It implements
// resilience.RetryAfterer.
func (e *StatusError) RetryAfter() time.Duration { return e.retryAfter }

var _ resilience.RetryAfterer = (*StatusError)(nil)

// CheckStatus turns a failing response into an error, so that an HTTP call
// can be wrapped by resilience without glue:
//
//	get := resilience.Wrap1(pipe, func(ctx context.Context, url string) ([]byte, error) {
//		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
//		if err != nil {
//			return nil, err
//		}
//		resp, err := httpclient.CheckStatus(client.Do(req))
//		if err != nil {
//			return nil, err
//		}
//		defer resp.Body.Close()
//		return io.ReadAll(resp.Body)
//	})
//
// It takes what http.Client.Do returns. A transport error comes back
// unchanged, and so does a response below 400, body unread. For a status of
// 400 or more it reads the start of the body, drains (up to 64 KiB) and
// closes it so the connection is reused, and returns a nil response and a
// *StatusError:
//
//   - 408, 429 and 5xx: the dependency's failure: resilience's breakers
//     count it and its Retry retries it, after the server's Retry-After
//     when there is one;
//   - any other 4xx: wrapped in resilience.NotFailure (the request is
//     wrong, not the dependency): not retried, not counted by a breaker.
//
// It is a function over Do's results rather than a client option or a
// Get/JSON helper so that it works with any *http.Client (or SDK hook) and
// any way of reading the body, and leaves a client used by SDKs returning
// plain responses. When the call is wrapped in a resilience pipeline that
// retries, build the client with Config.DisableRetry so the two retry
// loops do not multiply the attempts.
func CheckStatus(resp *http.Response, err error) (*http.Response, error) {
	if err != nil || resp == nil || resp.StatusCode < 400 {
		return resp, err
	}
	se := newStatusError(resp, time.Now())
	if notFailureStatus(se.StatusCode) {
		return nil, resilience.NotFailure(se)
	}
	return nil, se
}

// notFailureStatus reports whether a failing status is the caller's fault:
// a 4xx other than 408 Request Timeout and 429 Too Many Requests.
func notFailureStatus(code int) bool {
	return code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}

// newStatusError reads resp's status, Retry-After and the start of its
// body (masked), then drains and closes the body.
func newStatusError(resp *http.Response, now time.Time) *StatusError {
	se := &StatusError{StatusCode: resp.StatusCode}
	se.retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	req := resp.Request
	if req != nil {
		se.Method = req.Method
		if se.Method == "" {
			se.Method = http.MethodGet
		}
		if req.URL != nil {
			se.URL = redact.Endpoint(req.URL, RouteFromRequest(req))
		}
	}
	if resp.Body == nil {
		return se
	}
	buf := make([]byte, statusReadLimit)
	n, _ := io.ReadFull(resp.Body, buf)
	drain(resp.Body, DefaultDrainLimit)
	if n == 0 {
		return se
	}
	text := strings.ToValidUTF8(string(buf[:n]), "\uFFFD")
	if req != nil && req.URL != nil {
		text = redactTextRoute(redact.Rules{}, text, req.URL, RouteFromRequest(req))
	} else {
		text = redact.String(text)
	}
	se.Body = strings.TrimSpace(truncateUTF8(text, StatusBodyLimit))
	return se
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
