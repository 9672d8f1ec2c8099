package cache

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/servio/perfkit/internal/nodebreaker"
)

// Defaults used for zero Config fields (see each field of Config).
const (
	DefaultMaxEntries                 = 100_000
	DefaultL1TTL                      = 60 * time.Second
	DefaultTTL                        = 300 * time.Second
	DefaultRedisTimeout               = 100 * time.Millisecond
	DefaultLoadTimeout                = 30 * time.Second
	DefaultTTLJitter                  = 0.1
	DefaultBreakerConsecutiveFailures = 5
	DefaultBreakerOpenTimeout         = 5 * time.Second
	DefaultChannel                    = "perfkit:cache:invalidate"
)

// Errors returned by the cache. Match them with errors.Is.
var (
	// ErrMiss is returned by Get when neither tier holds the key.
	ErrMiss = errors.New("cache: miss")
	// ErrNotFound is what a loader returns (wrapped) for "no such thing";
	// with Config.NegativeTTL set such results are cached.
	ErrNotFound = errors.New("cache: not found")
	// ErrCorrupt wraps the reason an L2 value was rejected: bad magic,
	// version, codec, flags or payload. Callers never get it: such values
	// are logged, counted in Stats.Corrupt, deleted and read as misses.
	ErrCorrupt = errors.New("cache: corrupt value")
	// ErrUnavailable is returned by writes (Set, SetMany, Delete, the
	// invalidations and Flush) when Redis failed or the breaker in front of
	// it is open. Reads never return it: they treat Redis failures as misses.
	ErrUnavailable = errors.New("cache: redis unavailable")
	// ErrClosed is returned by operations on a closed Cache.
	ErrClosed = errors.New("cache: closed")
	// ErrType is returned when a key holds a value of another type than the
	// one asked for (two callers of one key disagree on V).
	ErrType = errors.New("cache: value of another type")
	// ErrInvalidConfig is wrapped by New for a Config it cannot use.
	ErrInvalidConfig = errors.New("cache: invalid config")
)

// Config configures a Cache. The zero value of every field means the
// documented default, so Config{} is an L1-only cache.
type Config struct {
	// Redis is the L2. nil (the default) makes an L1-only cache. Any
	// redis.UniversalClient works: *redis.Client, failover (Sentinel) or
	// *redis.ClusterClient. Build it with perfkit.RedisOptions: for
	// RedisTimeout to bound socket I/O too, the client needs
	// ContextTimeoutEnabled (New logs a warning otherwise).
	Redis redis.UniversalClient
	// KeyPrefix is prepended to every Redis key and to the default pub/sub
	// channel (e.g. "servio:"). Default "". Tag sets live at
	// KeyPrefix+"tag:"+tag.
	KeyPrefix string
	// MaxEntries is the L1 capacity in entries (each entry costs 1, ristretto's
	// internal cost is ignored, so N really holds about N). Default 100,000.
	MaxEntries int
	// L1TTL is how long a value stays in L1. Default 60 s. It is capped by
	// the per-call TTL.
	L1TTL time.Duration
	// TTL is how long a value stays in L2 when the call passes ttl 0.
	// Default 300 s.
	TTL time.Duration
	// TTLJitter shortens every TTL by a random fraction in [0, TTLJitter)
	// so keys written together do not expire together. Default 0.1; negative
	// turns it off; at most 1.
	TTLJitter float64
	// StaleFor turns on stale-while-revalidate: a value is kept StaleFor past
	// its TTL, and a read in that window gets the stale value at once while
	// one background load refreshes it. Default 0 (off).
	StaleFor time.Duration
	// NegativeTTL turns on negative caching: a loader error for which
	// IsNegative reports true is cached for NegativeTTL and returned to
	// callers without running the loader. Default 0 (errors are not cached).
	NegativeTTL time.Duration
	// IsNegative picks the loader errors that negative caching keeps.
	// Default: errors.Is(err, ErrNotFound).
	IsNegative func(error) bool
	// Codec encodes L2 values. Default JSON{}.
	Codec Codec
	// RedisTimeout bounds each Redis call (one GET, one pipeline). Default
	// 100 ms.
	RedisTimeout time.Duration
	// LoadTimeout bounds a loader run. The loader runs detached from its
	// callers' cancellation (a caller that gives up does not cancel the load
	// others wait for) but keeps their context values. Default 30 s.
	LoadTimeout time.Duration
	// BreakerConsecutiveFailures is how many consecutive failures of a
	// Redis node open that node's breaker (one per master on a Cluster, one
	// for any other client); while it is open, L2 is skipped for the keys
	// that node owns. Default 5.
	BreakerConsecutiveFailures int
	// BreakerOpenTimeout is how long a node's breaker stays open before one
	// probe is let through. Default 5 s.
	BreakerOpenTimeout time.Duration
	// Channel is the pub/sub channel for cross-instance L1 invalidation.
	// Default KeyPrefix+"perfkit:cache:invalidate".
	Channel string
	// DisablePubSub turns cross-instance invalidation off (a single instance,
	// or a Redis without pub/sub). Default false.
	DisablePubSub bool
	// Name is the cache.name attribute of the metrics. Default "default".
	Name string
	// MeterProvider receives the metrics. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger logs background failures. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for stale-while-revalidate deadlines. Default time.Now.
	Now func() time.Time
}

// Cache is a two-tier cache. Use it through the generic functions
// (GetOrSet, Get, Set, GetMany, SetMany) and its methods. It is safe for
// concurrent use. Close it when done.
type Cache struct {
	l1         *ristretto.Cache[string, *entry]
	flushEpoch atomic.Uint64 // L1 entries of an older epoch are gone
	l1Hits     atomic.Uint64

	cfg  Config
	rdb  redis.UniversalClient
	cb   *nodebreaker.Breakers[struct{}] // one per Redis node
	id   string
	seed maphash.Seed
	inv  atomic.Uint64 // bumped by every pattern/tag invalidation and flush
	gens [256]atomic.Uint64
	// l1mu keeps L1 writes (read-locked, from a fill's snapshot check to
	// its settle) apart from Clear and Close (write-locked: ristretto
	// panics or hangs on a write racing Close), and is the barrier of
	// invalidations (settleFills: locked and unlocked once). No network
	// call is made while it is held.
	l1mu sync.RWMutex

	mu    sync.Mutex
	calls map[string]*call

	epochKeysOnce sync.Once
	epochKeys     []string    // on a cluster, the epoch key of each slot
	rounds        epochRounds // on a cluster, the replacements of every slot's epoch

	st  counters
	met *instruments

	subs      subscriptions      // one per master on a cluster, else one
	pend      pending            // invalidations waiting for Redis
	replayMu  sync.RWMutex       // a replay round (write-locked) vs the Redis part of writes
	stopRetry context.CancelFunc // ends retryPending
	ready     chan struct{}
	started   atomic.Bool
	wg        sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once
}

// New returns a Cache configured by cfg, or an error wrapping
// ErrInvalidConfig. With cfg.Redis set (and pub/sub on) it starts the
// invalidation subscriber and waits up to a second for Redis to confirm the
// subscription (longer only while the client dials an unreachable host, up
// to its DialTimeout); it does not fail when Redis is down: the subscriber
// reconnects in the background and flushes L1 when it does.
func New(cfg Config) (*Cache, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Cache{
		cfg:   cfg,
		rdb:   cfg.Redis,
		seed:  maphash.MakeSeed(),
		calls: make(map[string]*call),
		id:    instanceID(),
		ready: make(chan struct{}),
		pend: pending{keys: map[string]struct{}{}, patterns: map[string]struct{}{}, tags: map[string]struct{}{},
			kick: make(chan struct{}, 1), recovered: make(chan struct{}, 1)},
	}
	l1, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters:        int64(cfg.MaxEntries) * 10,
		MaxCost:            int64(cfg.MaxEntries),
		BufferItems:        64,
		IgnoreInternalCost: true,
		OnReject:           func(*ristretto.Item[*entry]) { c.st.l1Drops.Add(1) },
	})
	if err != nil {
		return nil, fmt.Errorf("%w: ristretto: %w", ErrInvalidConfig, err)
	}
	c.l1 = l1
	c.cb = nodebreaker.New[struct{}](cfg.Redis, gobreaker.Settings{
		Name:        "cache:" + cfg.Name,
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpenTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return int64(n.ConsecutiveFailures) >= int64(cfg.BreakerConsecutiveFailures)
		},
		IsExcluded: func(err error) bool {
			return errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			cfg.Logger.Warn("cache: redis breaker", "cache", cfg.Name, "breaker", name, "from", from.String(), "to", to.String())
			if to == gobreaker.StateClosed {
				c.pend.nodeRecovered()
			}
		},
	})
	if c.met, err = newInstruments(c); err != nil {
		l1.Close()
		return nil, err
	}
	if c.rdb != nil {
		warnContextTimeout(c.rdb, cfg.Logger)
		if !cfg.DisablePubSub {
			c.subscribe()
		}
		var ctx context.Context
		ctx, c.stopRetry = context.WithCancel(context.Background())
		c.wg.Add(1)
		go c.retryPending(ctx)
	}
	c.started.Store(true)
	return c, nil
}

func (cfg *Config) setDefaults() error {
	switch {
	case cfg.MaxEntries < 0:
		return fmt.Errorf("%w: MaxEntries %d < 0", ErrInvalidConfig, cfg.MaxEntries)
	case cfg.L1TTL < 0, cfg.TTL < 0, cfg.StaleFor < 0, cfg.NegativeTTL < 0,
		cfg.RedisTimeout < 0, cfg.LoadTimeout < 0, cfg.BreakerOpenTimeout < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	case cfg.BreakerConsecutiveFailures < 0:
		return fmt.Errorf("%w: BreakerConsecutiveFailures %d < 0", ErrInvalidConfig, cfg.BreakerConsecutiveFailures)
	case cfg.TTLJitter > 1 || math.IsNaN(cfg.TTLJitter):
		return fmt.Errorf("%w: TTLJitter %v > 1", ErrInvalidConfig, cfg.TTLJitter)
	}
	cfg.MaxEntries = cmp.Or(cfg.MaxEntries, DefaultMaxEntries)
	cfg.L1TTL = cmp.Or(cfg.L1TTL, DefaultL1TTL)
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	if cfg.TTLJitter == 0 {
		cfg.TTLJitter = DefaultTTLJitter
	} else if cfg.TTLJitter < 0 {
		cfg.TTLJitter = 0
	}
	if cfg.IsNegative == nil {
		cfg.IsNegative = func(err error) bool { return errors.Is(err, ErrNotFound) }
	}
	if cfg.Codec == nil {
		cfg.Codec = JSON{}
	}
	cfg.RedisTimeout = cmp.Or(cfg.RedisTimeout, DefaultRedisTimeout)
	cfg.LoadTimeout = cmp.Or(cfg.LoadTimeout, DefaultLoadTimeout)
	cfg.BreakerConsecutiveFailures = cmp.Or(cfg.BreakerConsecutiveFailures, DefaultBreakerConsecutiveFailures)
	cfg.BreakerOpenTimeout = cmp.Or(cfg.BreakerOpenTimeout, DefaultBreakerOpenTimeout)
	if cfg.Channel == "" {
		cfg.Channel = cfg.KeyPrefix + DefaultChannel
	}
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// warnContextTimeout logs once when the client ignores context deadlines,
// since then RedisTimeout cannot cut a read from a hung server short.
func warnContextTimeout(rdb redis.UniversalClient, log *slog.Logger) {
	enabled := true
	switch c := rdb.(type) {
	case *redis.Client:
		enabled = c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		enabled = c.Options().ContextTimeoutEnabled
	}
	if !enabled {
		log.Warn("cache: redis client has ContextTimeoutEnabled=false; a hung Redis is bounded by its ReadTimeout, not RedisTimeout (the breaker still opens)")
	}
}

func instanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close stops the invalidation subscriber and the replay of failed
// invalidations (any still waiting for Redis are dropped, with a warning),
// waits for background loads and refreshes (each bounded by LoadTimeout)
// and releases L1. It does not close
// the Redis client. Close is idempotent; later calls return nil. Operations
// after Close return ErrClosed (reads via GetOrSet run the loader directly).
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock() // no load may join after this
		c.closed.Store(true)
		c.mu.Unlock()
		c.closeSubs()
		if c.stopRetry != nil {
			c.stopRetry()
		}
		c.wg.Wait()
		if n := c.pendingCount(); n > 0 {
			c.cfg.Logger.Warn("cache: closed with invalidations still waiting for Redis; L2 keeps their old values until their TTL",
				"cache", c.cfg.Name, "pending", n)
		}
		c.met.close()
		c.l1mu.Lock()
		c.l1.Close()
		c.l1mu.Unlock()
	})
	return nil
}

// snapshot returns a number that changes whenever key may have been
// invalidated: a value read before the change must not fill L1 after it.
func (c *Cache) snapshot(key string) uint64 {
	return c.gens[c.bucket(key)].Load() + c.inv.Load() + c.flushEpoch.Load()
}

// bucket is the index of key's generation in gens.
func (c *Cache) bucket(key string) int { return int(maphash.String(c.seed, key) & 255) }

// bumpKey marks key as invalidated for racing loads.
func (c *Cache) bumpKey(key string) {
	c.gens[c.bucket(key)].Add(1)
}

// ttls resolves a call's TTL into the L1 and L2 TTLs, jittered.
func (c *Cache) ttls(ttl time.Duration, o *itemOptions) (l1, l2 time.Duration) {
	l2 = ttl
	if l2 <= 0 {
		l2 = c.cfg.TTL
	}
	l1 = c.cfg.L1TTL
	if o != nil && o.l1TTL > 0 {
		l1 = o.l1TTL
	} else if c.rdb == nil && ttl > 0 {
		// With no L2, the per-call TTL is L1's.
		l1 = ttl
	}
	l1 = min(l1, l2)
	return c.jitter(l1), c.jitter(l2)
}

func (c *Cache) jitter(d time.Duration) time.Duration {
	if c.cfg.TTLJitter == 0 || d <= 0 {
		return d
	}
	cut := time.Duration(mrand.Float64() * c.cfg.TTLJitter * float64(d))
	if d-cut < time.Millisecond {
		return d
	}
	return d - cut
}

// redisKey maps a cache key to its Redis key.
func (c *Cache) redisKey(key string) string {
	if c.cfg.KeyPrefix == "" {
		return key
	}
	return c.cfg.KeyPrefix + key
}

func (c *Cache) tagKey(tag string) string { return c.cfg.KeyPrefix + "tag:" + tag }
