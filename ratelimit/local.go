package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxKeys is how many keys each local limiter of a Group remembers
// when Config.MaxKeys is zero.
const DefaultMaxKeys = 100_000

const localShards = 64

// localConfig configures newLocal. The zero value is usable.
type localConfig struct {
	// Tier is the limit enforced; the zero Tier means Tiers().API.
	// Algorithm and OnFailure are ignored: local limiters use GCRA.
	Tier Tier
	// MaxKeys bounds the keys remembered (default DefaultMaxKeys, rounded
	// up to a multiple of 64). When a shard is full, keys whose quota is
	// whole again are dropped first (forgetting them changes nothing); if
	// that is not enough, arbitrary keys are dropped, which forgives their
	// recent use. Memory therefore stays bounded however many keys come.
	MaxKeys int
}

// local is an in-memory GCRA limiter: one timestamp (the theoretical
// arrival time) per key in a sharded map. A decision on a known key takes
// one shard lock and allocates nothing. It starts no goroutines and needs no
// Close. It is safe for concurrent use. A Group without Redis hands these
// out (one per tier name), and a Redis limiter falls back to them.
type local struct {
	tiers     []Tier
	name      string
	emission  int64 // ns per event
	tolerance int64 // emission × burst
	burst     int
	shardCap  int
	seed      maphash.Seed
	epoch     time.Time
	order     int // lock order among the local limiters of one Group (see localChain)
	evicted   atomic.Int64
	shards    [localShards]localShard
}

type localShard struct {
	mu sync.Mutex
	m  map[string]*int64 // key → theoretical arrival time, ns since epoch
	_  [48]byte          // 8 (mutex) + 8 (map) + 48: one 64-byte cache line per shard
}

var _ TieredLimiter = (*local)(nil)

// newLocal returns a local limiter for cfg.Tier.
func newLocal(cfg localConfig) (*local, error) {
	t := cfg.Tier
	if t == (Tier{}) {
		t = Tiers().API
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	if cfg.MaxKeys < 0 {
		return nil, errInvalid(fmt.Sprintf("MaxKeys %d < 0", cfg.MaxKeys))
	}
	maxKeys := cfg.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &local{
		tiers:    []Tier{t},
		name:     t.Name,
		emission: int64(t.Limit.emission()),
		burst:    t.Limit.burst(),
		shardCap: (maxKeys + localShards - 1) / localShards,
		seed:     maphash.MakeSeed(),
		epoch:    time.Now(),
	}
	l.tolerance = l.emission * int64(l.burst)
	for i := range l.shards {
		l.shards[i].m = make(map[string]*int64)
	}
	return l, nil
}

// Tiers returns the one tier l enforces.
func (l *local) Tiers() []Tier { return l.tiers }

// Allow reports whether one event for key may happen now. It never blocks
// and never fails; ctx is not used.
func (l *local) Allow(_ context.Context, key string) (Result, error) {
	// time.Since reads only the monotonic clock: half the cost of time.Now.
	return l.allow(key, int64(time.Since(l.epoch)), 1)
}

// AllowN reports whether n events for key may happen now.
func (l *local) AllowN(_ context.Context, key string, n int) (Result, error) {
	return l.allow(key, int64(time.Since(l.epoch)), n)
}

// AllowAt is AllowN at time now, for tests and simulations that drive the
// clock. Times should not go backwards by much for one key: a decision in
// the past is judged against the state of the future.
func (l *local) AllowAt(key string, now time.Time, n int) (Result, error) {
	return l.allow(key, int64(now.Sub(l.epoch)), n)
}

// shard returns the shard holding key.
func (l *local) shard(key string) *localShard {
	return &l.shards[maphash.String(l.seed, key)&(localShards-1)]
}

// tat returns the theoretical arrival time stored for key in s (locked),
// or t when there is none or it is past.
func tatOf(s *localShard, key string, t int64) int64 {
	if p := s.m[key]; p != nil && *p > t {
		return *p
	}
	return t
}

// judge decides n events at t against the theoretical arrival time tat
// (≥ t). When allowed it returns the new TAT to store.
func (l *local) judge(tat, t int64, n int) (Result, int64) {
	newTat := tat + l.emission*int64(n)
	allowAt := newTat - l.tolerance
	if t < allowAt {
		return Result{
			Limit:      l.burst,
			Remaining:  int(max(t-(tat-l.tolerance), 0) / l.emission), // < 0 only for a time in the past (AllowAt)
			ResetAfter: time.Duration(tat - t),
			RetryAfter: time.Duration(allowAt - t),
			Tier:       l.name,
		}, 0
	}
	return Result{
		Allowed:    true,
		Limit:      l.burst,
		Remaining:  int((t - allowAt) / l.emission),
		ResetAfter: time.Duration(newTat - t),
		Tier:       l.name,
	}, newTat
}

// store sets key's TAT in s (locked), making room when the shard is full.
func (l *local) store(s *localShard, key string, t, tat int64) {
	if p := s.m[key]; p != nil {
		*p = tat
		return
	}
	if len(s.m) >= l.shardCap {
		l.evict(s, t)
	}
	p := new(int64)
	*p = tat
	s.m[key] = p
}

// allow decides at t, in ns since l.epoch.
func (l *local) allow(key string, t int64, n int) (Result, error) {
	if n < 1 || n > l.burst {
		return Result{Limit: l.burst, Tier: l.name}, ErrInvalidN
	}
	s := l.shard(key)
	s.mu.Lock()
	p := s.m[key]
	tat := t
	if p != nil && *p > t {
		tat = *p
	}
	r, newTat := l.judge(tat, t, n)
	switch {
	case !r.Allowed:
	case p != nil:
		*p = newTat
	default:
		l.store(s, key, t, newTat)
	}
	s.mu.Unlock()
	return r, nil
}

// Reset forgets key: its whole quota is available again (for example
// after a successful login). It never fails; ctx is not used.
func (l *local) Reset(_ context.Context, key string) error {
	s := l.shard(key)
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// Refund gives back n events that key was allowed, as cancelling a
// reservation does: the quota grows by n, but never beyond whole. It is
// meant for work that was allowed and then not done. It never fails for
// 1 ≤ n ≤ burst; ctx is not used.
func (l *local) Refund(_ context.Context, key string, n int) error {
	return l.RefundAt(key, time.Now(), n)
}

// RefundAt is Refund at time now, for tests and simulations that drive the
// clock (see AllowAt).
func (l *local) RefundAt(key string, now time.Time, n int) error {
	if n < 1 || n > l.burst {
		return ErrInvalidN
	}
	t := int64(now.Sub(l.epoch))
	s := l.shard(key)
	s.mu.Lock()
	if p := s.m[key]; p != nil {
		if *p -= l.emission * int64(n); *p <= t {
			delete(s.m, key)
		}
	}
	s.mu.Unlock()
	return nil
}

// evict makes room in a full shard: it drops every key whose quota is
// whole, then arbitrary keys until the shard is at most 7/8 full, so the
// next sweep is at least cap/8 inserts away.
func (l *local) evict(s *localShard, now int64) {
	for k, tat := range s.m {
		if *tat <= now {
			delete(s.m, k)
		}
	}
	target := l.shardCap - max(l.shardCap/8, 1)
	for k := range s.m {
		if len(s.m) <= target {
			break
		}
		delete(s.m, k)
		l.evicted.Add(1)
	}
}

// Len returns the number of keys l remembers.
func (l *local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Evicted returns how many keys were dropped while still in use because
// MaxKeys was reached.
func (l *local) Evicted() int64 { return l.evicted.Load() }
