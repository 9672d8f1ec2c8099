package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/servio/perfkit/internal/redact"
)

// MiddlewareConfig configures Middleware. The zero value keys by RemoteIP,
// denies with 429 and writes the IETF headers.
type MiddlewareConfig struct {
	// Key picks the key of a request (default RemoteIP). An empty key lets
	// the request through unlimited.
	Key KeyFunc
	// Shadow decides and counts (outcome "shadow_denied") and logs at Debug
	// but never denies and writes no headers: for trying a limit in
	// production.
	Shadow bool
	// LegacyHeaders adds X-RateLimit-Limit, X-RateLimit-Remaining and
	// X-RateLimit-Reset (seconds) beside the IETF fields.
	LegacyHeaders bool
	// RetryAfterJitter is the most added to Retry-After, at random, so
	// denied clients do not all come back at once (default 1 s; negative
	// for none).
	RetryAfterJitter time.Duration
	// Denied, if set, writes the response for a denied request instead of
	// the default application/problem+json body. status is 429 when the
	// quota is used up and 503 when Redis cannot decide for a fail-closed
	// tier; the RateLimit and Retry-After headers are already set, and
	// retryAfter is the Retry-After value in whole seconds.
	Denied func(w http.ResponseWriter, r *http.Request, res Result, status int, retryAfter int64)
	// MeterProvider defaults to otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// tierHeader holds what the headers of one tier need, built once.
type tierHeader struct {
	name      string
	rlPrefix  string // `"api";r=`
	legacyLim []string
	outcomes  [4][]metric.AddOption // allowed, denied, shadow_denied, unavailable
}

const (
	outAllowed = iota
	outDenied
	outShadow
	outUnavailable
)

type middleware struct {
	l      TieredLimiter
	cfg    MiddlewareConfig
	next   http.Handler
	policy []string // RateLimit-Policy value
	tiers  []tierHeader
	in     *instruments
	jitter int64
}

// Middleware returns net/http middleware that limits each request with l.
// On allow it sets RateLimit-Policy (every tier, see below) and RateLimit
// (the binding tier: `"api";r=59;t=1`, r the events allowed right now) as
// in draft-ietf-httpapi-ratelimit-headers, and calls the next handler.
//
// A policy's q is never less than what passes in a window of w seconds. For
// a GCRA tier, w is the period (in whole seconds) and q the most a greedy
// client gets through in any w-second window: the burst plus what refills
// meanwhile, so PerMinute(60) states `"api";q=119;w=60`. For a fixed
// window, q is the limit per epoch-aligned window of w seconds; for the
// sliding window, q is the limit the estimate holds to (the counter
// approximation weighs the previous window as if spread evenly).
// On deny
// it answers 429 with Retry-After (whole seconds plus jitter) and an
// application/problem+json body of type
// https://iana.org/assignments/http-problem-types#quota-exceeded naming the
// violated policy. When Redis cannot decide for a fail-closed tier it
// answers 503 the same way. Other limiter errors let the request through
// (logged). Decisions are counted in perfkit.ratelimit.decisions {tier,
// outcome}.
// The handlers it returns are safe for concurrent use; the limiter is
// asked with the request's context, so a Redis decision ends when the
// client goes away.
func Middleware(l TieredLimiter, cfg MiddlewareConfig) (func(http.Handler) http.Handler, error) {
	if l == nil {
		return nil, errInvalid("Middleware needs a limiter")
	}
	if len(l.Tiers()) == 0 {
		return nil, errInvalid("Middleware needs a limiter with at least one tier")
	}
	if cfg.Key == nil {
		cfg.Key = RemoteIP
	}
	if cfg.RetryAfterJitter == 0 {
		cfg.RetryAfterJitter = time.Second
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in, err := newInstruments(cfg.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: metrics: %w", err)
	}
	m := &middleware{l: l, cfg: cfg, in: in, jitter: int64(max(cfg.RetryAfterJitter, 0))}
	var pol []string
	for _, t := range l.Tiers() {
		q, w := policyOf(t)
		pol = append(pol, strconv.Quote(t.Name)+";q="+strconv.FormatInt(q, 10)+";w="+strconv.FormatInt(w, 10))
		lim := t.Limit.Rate
		if t.Algorithm == GCRA {
			lim = t.Limit.burst()
		}
		th := tierHeader{name: t.Name, rlPrefix: strconv.Quote(t.Name) + ";r=", legacyLim: []string{strconv.Itoa(lim)}}
		for i, o := range []string{"allowed", "denied", "shadow_denied", "unavailable"} {
			th.outcomes[i] = addOpts(attribute.String("tier", t.Name), attribute.String("outcome", o))
		}
		// The outcomes this middleware can count start at 0, so rate() and
		// increase() see the first one (a series born at 3 shows no rise).
		denied := outDenied
		if cfg.Shadow {
			denied = outShadow
		}
		zero := []int{outAllowed, denied}
		if t.OnFailure == FailClosed {
			zero = append(zero, outUnavailable)
		}
		for _, o := range zero {
			in.decisions.Add(context.Background(), 0, th.outcomes[o]...)
		}
		m.tiers = append(m.tiers, th)
	}
	m.policy = []string{strings.Join(pol, ", ")}
	return func(next http.Handler) http.Handler {
		mm := *m
		mm.next = next
		return &mm
	}, nil
}

func (m *middleware) tier(name string) *tierHeader {
	for i := range m.tiers {
		if m.tiers[i].name == name {
			return &m.tiers[i]
		}
	}
	return &m.tiers[0]
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := m.cfg.Key(r)
	if key == "" {
		m.next.ServeHTTP(w, r)
		return
	}
	ctx := r.Context()
	res, err := m.l.Allow(ctx, key)
	th := m.tier(res.Tier)
	switch {
	case err != nil && errors.Is(err, ErrUnavailable):
		m.in.decisions.Add(ctx, 1, th.outcomes[outUnavailable]...)
		if m.cfg.Shadow {
			break
		}
		m.deny(w, r, th, res, http.StatusServiceUnavailable)
		return
	case err != nil:
		if ctx.Err() == nil {
			m.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "ratelimit: limiter failed; request let through",
				slog.String("tier", th.name), slog.String("err", redact.String(err.Error())))
		}
	case res.Allowed:
		m.in.decisions.Add(ctx, 1, th.outcomes[outAllowed]...)
		if !m.cfg.Shadow {
			m.setHeaders(w.Header(), th, res)
		}
	case m.cfg.Shadow:
		m.in.decisions.Add(ctx, 1, th.outcomes[outShadow]...)
		m.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "ratelimit: shadow mode would deny",
			slog.String("tier", th.name), slog.String("key", key), slog.Duration("retry_after", res.RetryAfter))
	default:
		m.in.decisions.Add(ctx, 1, th.outcomes[outDenied]...)
		m.deny(w, r, th, res, http.StatusTooManyRequests)
		return
	}
	m.next.ServeHTTP(w, r)
}

func (m *middleware) setHeaders(h http.Header, th *tierHeader, res Result) {
	h["Ratelimit-Policy"] = m.policy
	var buf [64]byte
	b := append(buf[:0], th.rlPrefix...)
	b = strconv.AppendInt(b, int64(res.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(res.ResetAfter), 10)
	h["Ratelimit"] = []string{string(b)}
	if m.cfg.LegacyHeaders {
		h["X-Ratelimit-Limit"] = th.legacyLim
		h["X-Ratelimit-Remaining"] = []string{strconv.Itoa(res.Remaining)}
		h["X-Ratelimit-Reset"] = []string{strconv.FormatInt(ceilSeconds(res.ResetAfter), 10)}
	}
}

func (m *middleware) deny(w http.ResponseWriter, r *http.Request, th *tierHeader, res Result, status int) {
	h := w.Header()
	m.setHeaders(h, th, res)
	retry := max(ceilSeconds(res.RetryAfter+time.Duration(rand.Int64N(m.jitter+1))), 1)
	h.Set("Retry-After", strconv.FormatInt(retry, 10))
	if m.cfg.Denied != nil {
		m.cfg.Denied(w, r, res, status, retry)
		return
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(problemBody(status, th.name, retry))
}

// problemBody is the RFC 9457 body of a denial: the quota-exceeded problem
// type of the RateLimit draft, or temporary-reduced-capacity when Redis is
// unavailable to a fail-closed tier.
func problemBody(status int, policy string, retry int64) []byte {
	typ, title := "quota-exceeded", "Request cannot be satisfied as assigned quota has been exceeded"
	detail := "Too many requests for policy " + policy + "; retry after " + strconv.FormatInt(retry, 10) + " s."
	if status == http.StatusServiceUnavailable {
		typ, title = "temporary-reduced-capacity", "Rate limiting is temporarily unavailable"
		detail = "Rate limiting for policy " + policy + " is temporarily unavailable; retry after " + strconv.FormatInt(retry, 10) + " s."
	}
	b := make([]byte, 0, 320)
	b = append(b, `{"type":"https://iana.org/assignments/http-problem-types#`...)
	b = append(b, typ...)
	b = append(b, `","title":`...)
	b = strconv.AppendQuote(b, title)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"detail":`...)
	b = strconv.AppendQuote(b, detail)
	b = append(b, `,"violated-policies":[`...)
	b = strconv.AppendQuote(b, policy)
	b = append(b, `],"retry-after":`...)
	b = strconv.AppendInt(b, retry, 10)
	return append(b, "}\n"...)
}

// policyOf returns a tier's RateLimit-Policy quota and window (seconds).
// For GCRA (emission interval T, burst B) at most B events pass at once and
// one more each T, so a half-open window of length w admits at most
// B + ⌈w/T⌉ − 1.
func policyOf(t Tier) (q, w int64) {
	w = max(ceilSeconds(t.Limit.Period), 1)
	if t.Algorithm != GCRA {
		return int64(t.Limit.Rate), w
	}
	em := int64(t.Limit.emission())
	win := w * int64(time.Second)
	return int64(t.Limit.burst()) + (win+em-1)/em - 1, w
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
