package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Logging rules:
//
//   - Everything servio and the libraries it uses log goes through one
//     slog JSON handler: go-redis's own lines too (redisLogger).
//   - Repeated identical failures are sampled: of WARN and ERROR records
//     with the same message and the same "err", the first is logged, then
//     at most one per logSampleEvery, carrying "suppressed": how many were
//     dropped since the last one. A database outage under load then writes
//     a line every few seconds, not one per failed request. (The count of
//     the last interval is written with the next occurrence; when the
//     failures stop it is not written.)

// logSampleEvery is how often a repeated failure is logged again.
const logSampleEvery = 10 * time.Second

// maxSampledKeys bounds the sampler's memory; past it the table restarts.
const maxSampledKeys = 1024

// samplingHandler is a slog.Handler that samples repeated failures (see
// above) and passes everything else through. It is safe for concurrent use.
type samplingHandler struct {
	next  slog.Handler
	every time.Duration
	now   func() time.Time
	state *sampleState // shared by the handlers WithAttrs/WithGroup derive
}

type sampleState struct {
	mu   sync.Mutex
	seen map[string]*sampled
}

type sampled struct {
	last       time.Time
	suppressed int
}

// newSamplingHandler wraps next; every ≤ 0 means logSampleEvery.
func newSamplingHandler(next slog.Handler, every time.Duration, now func() time.Time) *samplingHandler {
	if every <= 0 {
		every = logSampleEvery
	}
	return &samplingHandler{next: next, every: every, now: now, state: &sampleState{seen: map[string]*sampled{}}}
}

// Enabled reports whether next handles level.
func (h *samplingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes r on unless it repeats a failure logged less than every
// ago.
func (h *samplingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	var errText string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "error" {
			errText = a.Value.String()
			return false
		}
		return true
	})
	if errText == "" {
		return h.next.Handle(ctx, r)
	}
	key := r.Level.String() + "\x00" + r.Message + "\x00" + errText
	now := h.now()
	s := h.state
	s.mu.Lock()
	e := s.seen[key]
	if e != nil && now.Sub(e.last) < h.every {
		e.suppressed++
		s.mu.Unlock()
		return nil
	}
	if len(s.seen) >= maxSampledKeys {
		s.seen = map[string]*sampled{}
	}
	suppressed := 0
	if e != nil {
		suppressed = e.suppressed
	}
	s.seen[key] = &sampled{last: now}
	s.mu.Unlock()
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed), slog.String("suppressed_over", h.every.String()))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a handler with attrs that shares this one's samples.
func (h *samplingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	return &c
}

// WithGroup returns a handler in group name that shares this one's samples.
func (h *samplingHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// redisLogger writes go-redis's internal log lines (reconnects, pub/sub
// resubscribes, pool errors) as WARN records of servio's logger, with the
// line as "err" so repeated ones are sampled like any other failure.
type redisLogger struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "component", "go-redis", "err", strings.TrimSpace(fmt.Sprintf(format, v...)))
}
