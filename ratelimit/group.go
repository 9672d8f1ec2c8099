package ratelimit

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// Config configures a Group (and NewRedis). The zero value is usable: a
// Group of local limiters, default metrics and logging.
type Config struct {
	// Redis, when set, makes limits hold across instances; nil makes every
	// limiter of the Group local (in memory). Build it with
	// perfkit.RedisOptions: without ContextTimeoutEnabled go-redis ignores
	// the per-decision deadline and a hung Redis stalls requests. A
	// *redis.ClusterClient works: each decision touches one hash slot.
	Redis redis.UniversalClient
	// KeyPrefix starts every Redis key (default "ratelimit:"). Keys are
	// KeyPrefix + "{" + key + "}:" + tier name.
	KeyPrefix string
	// RedisTimeout bounds each Redis decision (default DefaultRedisTimeout);
	// past it the tier's failure policy decides and the decision is counted
	// in Stats.Timeouts and perfkit.ratelimit.fallbacks {reason="timeout"}.
	// It covers waiting for a pooled connection, so it must exceed a healthy
	// Redis's slowest answers under load, not only its median.
	RedisTimeout time.Duration
	// Instances is how many instances share the limits (default 1). While
	// Redis is down, each fails open to a local limit of Limit ÷ Instances.
	Instances int
	// MaxKeys bounds the keys each local limiter remembers (default
	// DefaultMaxKeys, rounded up to a multiple of 64). When full, keys whose
	// quota is whole again are dropped first (forgetting them changes
	// nothing); if that is not enough, arbitrary keys are dropped, which
	// forgives their recent use. Memory stays bounded however many keys come.
	MaxKeys int
	// BreakerConsecutiveFailures is how many consecutive Redis failures on
	// one node open that node's circuit breaker (default 5, as everywhere in
	// perfkit; it was 3 before). While open, decisions for the node's keys
	// skip Redis.
	BreakerConsecutiveFailures int
	// BreakerOpenTimeout is how long a breaker stays open before one
	// decision probes Redis again (default 5 s: a probe is one cheap
	// command).
	BreakerOpenTimeout time.Duration
	// MeterProvider defaults to otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// DefaultRedisTimeout is the default Config.RedisTimeout. 64 decisions in
// flight (the load generator's default) on a loopback Redis on a loaded
// two-core machine took up to 57 ms in two runs and 131 ms in the worst of
// three later ones (BenchmarkRedisDeadlineUnderLoad measures it), so the
// former 50 ms fell back to the local limiter now and then; 250 ms leaves
// about 2× over the worst seen and still bounds a hung Redis to a quarter
// second per request until the breaker opens.
const DefaultRedisTimeout = 250 * time.Millisecond

// Defaults of the Redis circuit breakers (Config.BreakerConsecutiveFailures
// and Config.BreakerOpenTimeout).
const (
	DefaultBreakerConsecutiveFailures = 5
	DefaultBreakerOpenTimeout         = 5 * time.Second
)

// Group builds limiters for tiers on one backend: Redis when Config.Redis is
// set (one circuit breaker per Redis node), local (in memory) otherwise.
// Give a limiter to Middleware to limit HTTP requests, or to Wrap, Wrap1 and
// Wait to limit calls. A Group starts no goroutines. It is safe for
// concurrent use.
type Group struct {
	cfg    Config
	in     *instruments
	b      *backend // nil without Redis
	locals *localCache
}

// localCache hands out one local limiter per tier name, so every route limited by
// the Global tier shares one Global quota per key.
type localCache struct {
	mu sync.Mutex
	m  map[string]*local
}

// get returns the local limiter of t (under id), creating it on first use. A tier
// name already used with another definition is an error: the tiers would
// share Redis keys and local state.
func (c *localCache) get(id string, t Tier, maxKeys int) (*local, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.m[id]; ok {
		if l.tiers[0] != t {
			return nil, errInvalid(fmt.Sprintf("tier %q used with two definitions: %v and %v", t.Name, l.tiers[0].Limit, t.Limit))
		}
		return l, nil
	}
	l, err := newLocal(localConfig{Tier: t, MaxKeys: maxKeys})
	if err != nil {
		return nil, err
	}
	l.order = len(c.m)
	c.m[id] = l
	return l, nil
}

func newLocalCache() *localCache { return &localCache{m: map[string]*local{}} }

// NewGroup validates cfg and returns a Group. With cfg.Redis nil (as in
// Config{}) every limiter it makes is local; it needs no services. A
// rejected cfg gives an error wrapping ErrInvalidConfig.
func NewGroup(cfg Config) (*Group, error) {
	switch {
	case cfg.RedisTimeout < 0:
		return nil, errInvalid(fmt.Sprintf("RedisTimeout %v < 0", cfg.RedisTimeout))
	case cfg.Instances < 0:
		return nil, errInvalid(fmt.Sprintf("Instances %d < 0", cfg.Instances))
	case cfg.MaxKeys < 0:
		return nil, errInvalid(fmt.Sprintf("MaxKeys %d < 0", cfg.MaxKeys))
	case cfg.BreakerConsecutiveFailures < 0:
		return nil, errInvalid(fmt.Sprintf("BreakerConsecutiveFailures %d < 0", cfg.BreakerConsecutiveFailures))
	case cfg.BreakerOpenTimeout < 0:
		return nil, errInvalid(fmt.Sprintf("BreakerOpenTimeout %v < 0", cfg.BreakerOpenTimeout))
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "ratelimit:"
	}
	if cfg.RedisTimeout == 0 {
		cfg.RedisTimeout = DefaultRedisTimeout
	}
	if cfg.Instances == 0 {
		cfg.Instances = 1
	}
	if cfg.BreakerConsecutiveFailures == 0 {
		cfg.BreakerConsecutiveFailures = DefaultBreakerConsecutiveFailures
	}
	if cfg.BreakerOpenTimeout == 0 {
		cfg.BreakerOpenTimeout = DefaultBreakerOpenTimeout
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
	g := &Group{cfg: cfg, in: in, locals: newLocalCache()}
	if cfg.Redis != nil {
		g.b = newBackend(cfg, in, g.locals)
	}
	return g, nil
}

// Limiter returns a limiter that checks every tier given on each decision,
// all-or-nothing (a denied request counts in no tier) and reporting the
// binding tier: a *Redis (one script, one round trip for all tiers) when the
// Group has Redis, else a *local for one tier or an atomic chain of them for
// several. Limiters of one Group share state per tier name (locally and in
// Redis), so the Global tier on every route is one quota; a tier listed
// twice counts once; a name given two definitions is an error. With no
// tiers it uses Tiers().API.
func (g *Group) Limiter(tiers ...Tier) (TieredLimiter, error) {
	tiers, err := uniqueTiers(tiers)
	if err != nil {
		return nil, err
	}
	// a Redis Group registers the tiers too, so a name means one thing
	ls := make([]*local, 0, len(tiers))
	for _, t := range tiers {
		l, err := g.locals.get("tier/"+t.Name, t, g.cfg.MaxKeys)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	if g.b != nil {
		return newRedis(g.b, tiers)
	}
	if len(tiers) == 1 {
		return ls[0], nil
	}
	return newLocalChain(tiers, ls), nil
}

// uniqueTiers validates tiers (none means Tiers().API) and drops repeats of
// a tier given before, so a tier listed twice is one quota counted once. A
// name given two definitions is an error.
func uniqueTiers(tiers []Tier) ([]Tier, error) {
	if len(tiers) == 0 {
		return []Tier{Tiers().API}, nil
	}
	out := make([]Tier, 0, len(tiers))
next:
	for _, t := range tiers {
		if err := t.validate(); err != nil {
			return nil, err
		}
		for _, u := range out {
			if u.Name != t.Name {
				continue
			}
			if u != t {
				return nil, errInvalid(fmt.Sprintf("tier %q given with two definitions: %v/%v and %v/%v", t.Name, u.Limit, u.Algorithm, t.Limit, t.Algorithm))
			}
			continue next
		}
		out = append(out, t)
	}
	return out, nil
}
