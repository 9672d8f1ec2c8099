package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// backend is what the Redis limiters of one Group share: the client, the
// scripts, one circuit breaker and the instruments.
type backend struct {
	cfg     Config
	client  redis.UniversalClient
	scripts [3]*redis.Script // by Algorithm
	breaker *gobreaker.CircuitBreaker[[]int64]
	in      *instruments
	log     *slog.Logger
	locals  *localCache // fallback limiters, one per tier name
}

// errCallerGone marks a failure caused by the caller's context, which says
// nothing about Redis's health.
var errCallerGone = errors.New("ratelimit: caller context done")

func newBackend(cfg Config, in *instruments, locals *localCache) *backend {
	b := &backend{
		cfg:     cfg,
		locals:  locals,
		client:  cfg.Redis,
		scripts: [3]*redis.Script{redis.NewScript(gcraScript), redis.NewScript(slidingScript), redis.NewScript(fixedScript)},
		in:      in,
		log:     cfg.Logger,
	}
	failures := uint32(cfg.BreakerFailures)
	b.breaker = gobreaker.NewCircuitBreaker[[]int64](gobreaker.Settings{
		Name:        "ratelimit-redis",
		Timeout:     cfg.BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsExcluded:  func(err error) bool { return errors.Is(err, errCallerGone) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			lvl := slog.LevelWarn
			if to == gobreaker.StateClosed {
				lvl = slog.LevelInfo
			}
			b.log.Log(context.Background(), lvl, "ratelimit: redis breaker state changed",
				"from", from.String(), "to", to.String())
		},
	})
	if !contextTimeouts(cfg.Redis) {
		b.log.Warn("ratelimit: redis client has ContextTimeoutEnabled=false; a hung Redis can stall decisions past Config.Timeout")
	}
	return b
}

// contextTimeouts reports whether the client honours context deadlines
// (true when it cannot tell).
func contextTimeouts(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// Redis is a limiter whose state lives in Redis, exact across instances.
// Each decision runs one Lua script per algorithm among its tiers (all in one
// pipeline, so one round trip) on the keys of one client, which share a hash
// slot. Tiers of one algorithm are decided atomically and all-or-nothing.
//
// A decision that Redis cannot make within Config.Timeout, or while the
// breaker is open, is made by each tier's failure policy: FailOpen asks a
// local limiter at Limit ÷ Instances and returns a nil error; FailClosed
// denies and returns an error wrapping ErrUnavailable. Both count in
// ratelimit.fallbacks. Redis is safe for concurrent use and starts no
// goroutines; the caller owns and closes the client.
type Redis struct {
	b        *backend
	tiers    []Tier
	groups   []scriptGroup
	fallback []*Local // nil for FailClosed tiers
	fbOpts   [][]metric.AddOption
	maxN     int
}

// scriptGroup is the tiers of one algorithm: their indexes and the script
// arguments after the cost.
type scriptGroup struct {
	script *redis.Script
	tiers  []int
	args   []any
}

var _ TieredLimiter = (*Redis)(nil)

// NewRedis returns a Redis limiter for the tiers (default Tiers().API) on
// cfg.Redis, which must be set. Limiters made by one Group share a breaker;
// NewRedis makes a breaker of its own.
func NewRedis(cfg Config, tiers ...Tier) (*Redis, error) {
	if cfg.Redis == nil {
		return nil, errInvalid("NewRedis needs Config.Redis")
	}
	g, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if len(tiers) == 0 {
		tiers = []Tier{Tiers().API}
	}
	for _, t := range tiers {
		if err := t.validate(); err != nil {
			return nil, err
		}
	}
	return newRedis(g.b, tiers)
}

func newRedis(b *backend, tiers []Tier) (*Redis, error) {
	seen := map[string]bool{}
	r := &Redis{b: b, tiers: tiers, maxN: int(^uint(0) >> 1)}
	byAlgo := map[Algorithm]int{}
	for i, t := range tiers {
		if seen[t.Name] {
			return nil, errInvalid("tier " + t.Name + " given twice")
		}
		seen[t.Name] = true
		gi, ok := byAlgo[t.Algorithm]
		if !ok {
			gi = len(r.groups)
			byAlgo[t.Algorithm] = gi
			r.groups = append(r.groups, scriptGroup{script: b.scripts[t.Algorithm]})
		}
		g := &r.groups[gi]
		g.tiers = append(g.tiers, i)
		if t.Algorithm == GCRA {
			g.args = append(g.args, float64(t.Limit.emission())/float64(time.Microsecond), t.Limit.burst())
			r.maxN = min(r.maxN, t.Limit.burst())
		} else {
			g.args = append(g.args, int64(t.Limit.Period/time.Microsecond), t.Limit.Rate)
			r.maxN = min(r.maxN, t.Limit.Rate)
		}
		var fb *Local
		if t.OnFailure == FailOpen {
			lt := t
			lt.Limit = t.Limit.divide(b.cfg.Instances)
			var err error
			if fb, err = b.locals.get("fallback/"+t.Name, lt, b.cfg.MaxKeys); err != nil {
				return nil, err
			}
		}
		r.fallback = append(r.fallback, fb)
		r.fbOpts = append(r.fbOpts, addOpts(attribute.String("tier", t.Name), attribute.String("policy", t.OnFailure.String())))
	}
	return r, nil
}

// Tiers returns the tiers every decision checks.
func (r *Redis) Tiers() []Tier { return r.tiers }

// Allow reports whether one event for key may happen now. See AllowN.
func (r *Redis) Allow(ctx context.Context, key string) (Result, error) {
	return r.AllowN(ctx, key, 1)
}

// AllowN reports whether n events for key may happen now in every tier,
// counting them in all tiers only if all allow. The result is the binding
// tier's (see Result.Policy). It waits at most Config.Timeout for Redis; a
// cancelled ctx returns ctx's error with a denying Result.
func (r *Redis) AllowN(ctx context.Context, key string, n int) (Result, error) {
	var buf [4]Result
	rs := buf[:0]
	if len(r.tiers) > len(buf) {
		rs = make([]Result, 0, len(r.tiers))
	}
	return r.AllowTiers(ctx, key, n, rs[:len(r.tiers)])
}

// AllowTiers is AllowN that also fills out (len ≥ len(Tiers())) with each
// tier's result, in the order of Tiers().
func (r *Redis) AllowTiers(ctx context.Context, key string, n int, out []Result) (Result, error) {
	if len(out) < len(r.tiers) {
		return Result{}, errInvalid("AllowTiers: out shorter than Tiers()")
	}
	out = out[:len(r.tiers)]
	if n < 1 || n > r.maxN {
		return Result{Limit: r.tiers[0].Limit.burst(), Policy: r.tiers[0].Name}, ErrInvalidN
	}
	if err := ctx.Err(); err != nil {
		return Result{Policy: r.tiers[0].Name}, err
	}
	keys := make([]string, len(r.tiers))
	if len(keys) == 1 {
		keys[0] = r.b.cfg.Prefix + "{" + key + "}:" + r.tiers[0].Name
	} else {
		base := r.b.cfg.Prefix + "{" + key + "}:"
		for i, t := range r.tiers {
			keys[i] = base + t.Name
		}
	}
	dctx, cancel := context.WithTimeout(ctx, r.b.cfg.Timeout)
	start := time.Now()
	vals, err := r.b.breaker.Execute(func() ([]int64, error) {
		v, err := r.eval(dctx, keys, n)
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", errCallerGone, err)
		}
		return v, err
	})
	cancel()
	if !errors.Is(err, gobreaker.ErrOpenState) && !errors.Is(err, gobreaker.ErrTooManyRequests) {
		opts := r.b.in.redisOK
		if err != nil {
			opts = r.b.in.redisErr
		}
		r.b.in.redisDur.Record(ctx, time.Since(start).Seconds(), opts...)
	}
	if err == nil && len(vals) < 4*len(r.tiers) {
		err = fmt.Errorf("ratelimit: script returned %d numbers for %d tiers", len(vals), len(r.tiers))
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return Result{Policy: r.tiers[0].Name}, cerr
		}
		return r.fallBack(ctx, key, n, err, out)
	}
	for i := range r.tiers {
		o := 4 * i
		out[i] = Result{
			Allowed:    vals[o] == 1,
			Limit:      r.limitOf(i),
			Remaining:  int(max(vals[o+1], 0)),
			ResetAfter: time.Duration(vals[o+2]) * time.Microsecond,
			RetryAfter: time.Duration(vals[o+3]) * time.Microsecond,
			Policy:     r.tiers[i].Name,
		}
	}
	return binding(out), nil
}

func (r *Redis) limitOf(i int) int {
	t := r.tiers[i]
	if t.Algorithm == GCRA {
		return t.Limit.burst()
	}
	return t.Limit.Rate
}

// groupArgs returns the keys and arguments of script group gi.
func (r *Redis) groupArgs(gi int, keys []string, n int) ([]string, []any) {
	g := &r.groups[gi]
	gk := make([]string, len(g.tiers))
	for j, ti := range g.tiers {
		gk[j] = keys[ti]
	}
	args := make([]any, 0, 1+len(g.args))
	return gk, append(append(args, n), g.args...)
}

// eval runs the scripts and returns four numbers per tier in tier order.
func (r *Redis) eval(ctx context.Context, keys []string, n int) ([]int64, error) {
	if len(r.groups) == 1 {
		g := &r.groups[0]
		args := make([]any, 0, 1+len(g.args))
		args = append(append(args, n), g.args...)
		return g.script.Run(ctx, r.b.client, keys, args...).Int64Slice()
	}
	vals := make([]int64, 4*len(r.tiers))
	cmds := make([]*redis.Cmd, len(r.groups))
	_, err := r.b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for gi := range r.groups {
			gk, args := r.groupArgs(gi, keys, n)
			cmds[gi] = r.groups[gi].script.EvalSha(ctx, p, gk, args...)
		}
		return nil
	})
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Run again only the scripts Redis did not know (Run loads them):
		// the others have already counted this request.
		err = nil
		for gi, c := range cmds {
			if c.Err() != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
				gk, args := r.groupArgs(gi, keys, n)
				cmds[gi] = r.groups[gi].script.Run(ctx, r.b.client, gk, args...)
			}
			if err == nil {
				err = cmds[gi].Err()
			}
		}
	}
	if err != nil {
		return nil, err
	}
	for gi, c := range cmds {
		gv, err := c.Int64Slice()
		if err != nil {
			return nil, err
		}
		if len(gv) < 4*len(r.groups[gi].tiers) {
			return nil, fmt.Errorf("ratelimit: script returned %d numbers for %d tiers", len(gv), len(r.groups[gi].tiers))
		}
		for j, ti := range r.groups[gi].tiers {
			copy(vals[4*ti:4*ti+4], gv[4*j:4*j+4])
		}
	}
	return vals, nil
}

// fallBack decides without Redis, by each tier's failure policy.
func (r *Redis) fallBack(ctx context.Context, key string, n int, cause error, out []Result) (Result, error) {
	if !errors.Is(cause, gobreaker.ErrOpenState) && !errors.Is(cause, gobreaker.ErrTooManyRequests) {
		r.b.log.Warn("ratelimit: redis decision failed; using failure policy", "key_tiers", len(r.tiers), "err", cause)
	}
	now := time.Now()
	closed := false
	for i, t := range r.tiers {
		r.b.in.fallbacks.Add(ctx, 1, r.fbOpts[i]...)
		if fb := r.fallback[i]; fb != nil {
			out[i], _ = fb.AllowAt(key, now, min(n, fb.burst))
			continue
		}
		closed = true
		out[i] = Result{Limit: r.limitOf(i), ResetAfter: r.b.cfg.BreakerOpen, RetryAfter: r.retryClosed(), Policy: t.Name}
	}
	res := binding(out)
	if closed || !res.Allowed {
		// all-or-nothing, as on Redis: tiers that counted the events give
		// them back when another tier denies
		for i, fb := range r.fallback {
			if fb != nil && out[i].Allowed {
				fb.refund(key, min(n, fb.burst))
			}
		}
	}
	if closed {
		res.Allowed = false
		for i := range out {
			if r.fallback[i] == nil {
				res = out[i]
			}
		}
		return res, fmt.Errorf("%w: %w", ErrUnavailable, cause)
	}
	return res, nil
}

// retryClosed is the Retry-After of a fail-closed denial: about when the
// breaker will next let a decision try Redis.
func (r *Redis) retryClosed() time.Duration {
	if r.b.breaker.State() == gobreaker.StateOpen {
		return r.b.cfg.BreakerOpen
	}
	return time.Second
}

// String describes the limiter for logs: the tiers and the prefix.
func (r *Redis) String() string {
	s := "ratelimit.Redis{prefix=" + strconv.Quote(r.b.cfg.Prefix)
	for _, t := range r.tiers {
		s += " " + t.Name + "=" + t.Limit.String() + "/" + t.Algorithm.String()
	}
	return s + "}"
}
