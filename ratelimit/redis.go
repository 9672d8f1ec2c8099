package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/internal/nodebreaker"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// backend is what the Redis limiters of one Group share: the client, the
// scripts, the circuit breakers (one per Redis node) and the instruments.
type backend struct {
	cfg      Config
	client   redis.UniversalClient
	decide   *redis.Script
	refund   *redis.Script
	breakers *nodebreaker.Breakers[[]int64]
	in       *instruments
	log      *slog.Logger
	locals   *localCache // fallback limiters, one per tier name
	stats    stats
}

// errCallerGone marks a failure caused by the caller's context, which says
// nothing about Redis's health.
var errCallerGone = errors.New("ratelimit: caller context done")

func newBackend(cfg Config, in *instruments, locals *localCache) *backend {
	b := &backend{
		cfg:    cfg,
		locals: locals,
		client: cfg.Redis,
		decide: redis.NewScript(decideScript),
		refund: redis.NewScript(refundScript),
		in:     in,
		log:    cfg.Logger,
	}
	failures := uint32(cfg.BreakerConsecutiveFailures)
	b.breakers = nodebreaker.New[[]int64](cfg.Redis, gobreaker.Settings{
		Name:        "ratelimit-redis",
		Timeout:     cfg.BreakerOpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsExcluded:  func(err error) bool { return errors.Is(err, errCallerGone) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			lvl := slog.LevelWarn
			if to == gobreaker.StateClosed {
				lvl = slog.LevelInfo
			}
			b.log.Log(context.Background(), lvl, "ratelimit: redis breaker state changed",
				"breaker", name, "from", from.String(), "to", to.String())
		},
	})
	if !contextTimeouts(cfg.Redis) {
		b.log.Warn("ratelimit: redis client has ContextTimeoutEnabled=false; a hung Redis can stall decisions past Config.RedisTimeout")
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
// Each decision runs one Lua script for all its tiers, whatever their
// algorithms, on keys that share a hash slot: one round trip, atomic and
// all-or-nothing (a request one tier denies counts in no tier).
//
// A decision that Redis cannot make within Config.RedisTimeout, or while the
// circuit breaker of the key's Redis node is open, is made by each tier's
// failure policy: FailOpen asks a local limiter at Limit ÷ Instances and
// returns a nil error; FailClosed denies and returns an error wrapping
// ErrUnavailable. Both count in perfkit.ratelimit.fallbacks {reason} and in
// Group.Stats. On Redis Cluster each master node has its own breaker, so
// one dead master sends only the keys it owns to the failure policy. Redis
// is safe for concurrent use and starts no goroutines; the caller owns and
// closes the client.
type Redis struct {
	b        *backend
	tiers    []Tier
	args     []any       // script arguments after the cost: algorithm and two numbers per tier
	fallback []*local    // nil for FailClosed tiers
	fbChain  *localChain // the FailOpen tiers' fallback limiters, nil when none
	fbIdx    []int       // index in tiers of each limiter of fbChain
	fbOpts   [][fallbackReasons][]metric.AddOption
	maxN     int
}

var _ TieredLimiter = (*Redis)(nil)

// NewRedis returns a Redis limiter for the tiers (default Tiers().API) on
// cfg.Redis, which must be set. Limiters made by one Group share breakers
// and stats; NewRedis makes its own.
func NewRedis(cfg Config, tiers ...Tier) (*Redis, error) {
	if cfg.Redis == nil {
		return nil, errInvalid("NewRedis needs Config.Redis")
	}
	g, err := NewGroup(cfg)
	if err != nil {
		return nil, err
	}
	if tiers, err = uniqueTiers(tiers); err != nil {
		return nil, err
	}
	return newRedis(g.b, tiers)
}

// newRedis takes tiers checked by uniqueTiers.
func newRedis(b *backend, tiers []Tier) (*Redis, error) {
	r := &Redis{b: b, tiers: tiers, maxN: int(^uint(0) >> 1)}
	var fbTiers []Tier
	var fbLs []*local
	for i, t := range tiers {
		if t.Algorithm == GCRA {
			r.args = append(r.args, int(GCRA), float64(t.Limit.emission())/float64(time.Microsecond), t.Limit.burst())
			r.maxN = min(r.maxN, t.Limit.burst())
		} else {
			r.args = append(r.args, int(t.Algorithm), int64(t.Limit.Period/time.Microsecond), t.Limit.Rate)
			r.maxN = min(r.maxN, t.Limit.Rate)
		}
		var fb *local
		if t.OnFailure == FailOpen {
			lt := t
			lt.Limit = t.Limit.divide(b.cfg.Instances)
			var err error
			if fb, err = b.locals.get("fallback/"+t.Name, lt, b.cfg.MaxKeys); err != nil {
				return nil, err
			}
			fbTiers, fbLs = append(fbTiers, lt), append(fbLs, fb)
			r.fbIdx = append(r.fbIdx, i)
		}
		r.fallback = append(r.fallback, fb)
		var opts [fallbackReasons][]metric.AddOption
		for reason := range opts {
			opts[reason] = addOpts(attribute.String("tier", t.Name), attribute.String("policy", t.OnFailure.String()),
				attribute.String("reason", reasonNames[reason]))
			b.in.fallbacks.Add(context.Background(), 0, opts[reason]...) // starts at 0 for rate()
		}
		r.fbOpts = append(r.fbOpts, opts)
	}
	if len(fbLs) > 0 {
		r.fbChain = newLocalChain(fbTiers, fbLs)
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
// tier's (see Result.Tier). It waits at most Config.RedisTimeout for Redis; a
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
		return Result{Limit: r.tiers[0].Limit.burst(), Tier: r.tiers[0].Name}, ErrInvalidN
	}
	if err := ctx.Err(); err != nil {
		return Result{Tier: r.tiers[0].Name}, err
	}
	keys := r.keys(key)
	dctx, cancel := context.WithTimeout(ctx, r.b.cfg.RedisTimeout)
	br := r.b.breakers.ForKey(dctx, keys[0])
	start := time.Now()
	vals, err := br.Execute(func() ([]int64, error) {
		args := make([]any, 0, 1+len(r.args))
		v, err := r.b.decide.Run(dctx, r.b.client, keys, append(append(args, n), r.args...)...).Int64Slice()
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", errCallerGone, err)
		}
		return v, err
	})
	timedOut := err != nil && ctx.Err() == nil && isTimeout(err)
	cancel()
	rejected := errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
	if !rejected {
		opts := r.b.in.redisOK
		switch {
		case timedOut:
			opts = r.b.in.redisTimeout
		case err != nil:
			opts = r.b.in.redisErr
		}
		r.b.in.redisDur.Record(ctx, time.Since(start).Seconds(), opts...)
	}
	if err == nil && len(vals) < 4*len(r.tiers) {
		err = fmt.Errorf("ratelimit: script returned %d numbers for %d tiers", len(vals), len(r.tiers))
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return Result{Tier: r.tiers[0].Name}, cerr
		}
		reason := reasonError
		switch {
		case rejected:
			reason = reasonBreakerOpen
			r.b.stats.rejected.Add(1)
		case timedOut:
			reason = reasonTimeout
			r.b.stats.timeouts.Add(1)
		default:
			r.b.stats.errors.Add(1)
		}
		return r.fallBack(ctx, key, n, err, reason, br, out)
	}
	r.b.stats.redis.Add(1)
	for i := range r.tiers {
		o := 4 * i
		out[i] = Result{
			Allowed:    vals[o] == 1,
			Limit:      r.limitOf(i),
			Remaining:  int(max(vals[o+1], 0)),
			ResetAfter: time.Duration(vals[o+2]) * time.Microsecond,
			RetryAfter: time.Duration(vals[o+3]) * time.Microsecond,
			Tier:       r.tiers[i].Name,
		}
	}
	return binding(out), nil
}

// isTimeout reports whether err is a deadline running out (the context's,
// or a socket deadline go-redis derived from it), not a refusal or an
// answer.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// keys returns the Redis keys of key's tiers, all in key's hash slot.
func (r *Redis) keys(key string) []string {
	keys := make([]string, len(r.tiers))
	if len(keys) == 1 {
		keys[0] = r.b.cfg.KeyPrefix + "{" + key + "}:" + r.tiers[0].Name
		return keys
	}
	base := r.b.cfg.KeyPrefix + "{" + key + "}:"
	for i, t := range r.tiers {
		keys[i] = base + t.Name
	}
	return keys
}

func (r *Redis) limitOf(i int) int {
	t := r.tiers[i]
	if t.Algorithm == GCRA {
		return t.Limit.burst()
	}
	return t.Limit.Rate
}

// fallBack decides without Redis, by each tier's failure policy: denied
// with ErrUnavailable when any tier fails closed, else by the fail-open
// tiers' local limiters together, all-or-nothing as on Redis.
func (r *Redis) fallBack(ctx context.Context, key string, n int, cause error, reason int,
	br *gobreaker.CircuitBreaker[[]int64], out []Result) (Result, error) {
	if reason != reasonBreakerOpen {
		r.b.log.Warn("ratelimit: redis decision failed; using failure policy", "key_tiers", len(r.tiers),
			"reason", reasonNames[reason], "breaker", br.Name(), "err", cause)
	}
	for i := range r.tiers {
		r.b.in.fallbacks.Add(ctx, 1, r.fbOpts[i][reason]...)
	}
	retry := time.Second
	if br.State() == gobreaker.StateOpen {
		retry = r.b.cfg.BreakerOpenTimeout
	}
	if len(r.fbIdx) < len(r.tiers) {
		// a fail-closed tier denies the whole decision, so the fail-open
		// tiers count nothing either
		var res Result
		for i, t := range r.tiers {
			out[i] = Result{Limit: r.limitOf(i), ResetAfter: r.b.cfg.BreakerOpenTimeout, RetryAfter: retry, Tier: t.Name}
			if r.fallback[i] == nil {
				res = out[i]
			}
		}
		return res, fmt.Errorf("%w: %w", ErrUnavailable, cause)
	}
	var buf [8]Result
	fo := buf[:0]
	if len(r.fbIdx) > len(buf) {
		fo = make([]Result, 0, len(r.fbIdx))
	}
	fo = fo[:len(r.fbIdx)]
	_, _ = r.fbChain.decide(key, time.Now(), min(n, r.fbChain.minBurst()), fo)
	for j, i := range r.fbIdx {
		out[i] = fo[j]
	}
	return binding(out), nil
}

// Reset forgets key in every tier, on Redis (one DEL) and in the local
// fallback limiters. It waits at most Config.RedisTimeout for Redis and returns
// its error (wrapping ErrUnavailable) when Redis cannot be reached; the
// local fallbacks are reset either way.
func (r *Redis) Reset(ctx context.Context, key string) error {
	for _, fb := range r.fallback {
		if fb != nil {
			_ = fb.Reset(ctx, key)
		}
	}
	keys := r.keys(key)
	dctx, cancel := context.WithTimeout(ctx, r.b.cfg.RedisTimeout)
	defer cancel()
	_, err := r.b.breakers.ForKey(dctx, keys[0]).Execute(func() ([]int64, error) {
		return nil, r.b.client.Del(dctx, keys...).Err()
	})
	if err != nil {
		return fmt.Errorf("%w: reset: %w", ErrUnavailable, err)
	}
	return nil
}

// Refund gives back n events that key was allowed, in every tier, on Redis
// in one script (a GCRA tier's TAT moves back by n emission intervals but
// not before now; a window's count drops by n but not below zero). When
// Redis cannot be reached (or the key's breaker is open) the events go back
// to the local fallback limiters, which are then what decides, and the error
// wraps ErrUnavailable. It waits at most Config.RedisTimeout.
func (r *Redis) Refund(ctx context.Context, key string, n int) error {
	if n < 1 || n > r.maxN {
		return ErrInvalidN
	}
	keys := r.keys(key)
	dctx, cancel := context.WithTimeout(ctx, r.b.cfg.RedisTimeout)
	defer cancel()
	_, err := r.b.breakers.ForKey(dctx, keys[0]).Execute(func() ([]int64, error) {
		args := make([]any, 0, 1+len(r.args))
		return nil, r.b.refund.Run(dctx, r.b.client, keys, append(append(args, n), r.args...)...).Err()
	})
	if err != nil {
		if r.fbChain != nil {
			r.fbChain.refund(key, time.Now(), n)
		}
		return fmt.Errorf("%w: refund: %w", ErrUnavailable, err)
	}
	return nil
}

// String describes the limiter for logs: the tiers and the key prefix.
func (r *Redis) String() string {
	s := "ratelimit.Redis{key_prefix=" + strconv.Quote(r.b.cfg.KeyPrefix)
	for _, t := range r.tiers {
		s += " " + t.Name + "=" + t.Limit.String() + "/" + t.Algorithm.String()
	}
	return s + "}"
}
