package resilience

import (
	"sync"
)

// DefaultMaxKeys is the number of breakers a Breakers registry keeps when
// NewBreakers is given 0 (httpclient's DefaultMaxHosts).
const DefaultMaxKeys = 1024

// overflowKey names the breaker shared by keys that find the registry full
// of open or half-open breakers.
const overflowKey = "_overflow"

// Breakers is a bounded registry of circuit breakers by key (per host, per
// tenant), all built from one BreakerConfig. It is safe for concurrent use.
//
// Its bound never forgets a failing dependency: only closed breakers are
// evicted to make room, so an open (or half-open) breaker keeps rejecting
// its key until it closes on its own. When every held breaker is open or
// half-open, new keys share one extra overflow breaker (named
// cfg.Name+"/_overflow") until room frees, so memory stays bounded by
// maxKeys+1 breakers. An evicted breaker stops reporting
// perfkit.resilience.breaker.state.
type Breakers struct {
	cfg     BreakerConfig
	maxKeys int
	mu      sync.RWMutex
	m       map[string]*CircuitBreaker
	over    *CircuitBreaker // lazily built overflow breaker
}

// NewBreakers returns a registry whose breakers use cfg, named
// cfg.Name+"/"+key (or key when cfg.Name is empty). At most maxKeys breakers
// are kept (default DefaultMaxKeys when 0); see Breakers for what happens
// past that.
func NewBreakers(cfg BreakerConfig, maxKeys int) (*Breakers, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if maxKeys < 0 {
		return nil, invalid("breakers maxKeys must not be negative")
	}
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Breakers{cfg: cfg, maxKeys: maxKeys, m: make(map[string]*CircuitBreaker)}, nil
}

// Get returns the breaker for key, creating it on first use.
func (r *Breakers) Get(key string) *CircuitBreaker {
	r.mu.RLock()
	b := r.m[key]
	r.mu.RUnlock()
	if b != nil {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b = r.m[key]; b != nil {
		return b
	}
	if len(r.m) >= r.maxKeys && !r.evictLocked() {
		if r.over == nil {
			r.over = r.newBreaker(overflowKey)
		}
		return r.over
	}
	b = r.newBreaker(key)
	r.m[key] = b
	return b
}

// Lookup returns the breaker held for key without creating one.
func (r *Breakers) Lookup(key string) (*CircuitBreaker, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	b, ok := r.m[key]
	return b, ok
}

func (r *Breakers) newBreaker(key string) *CircuitBreaker {
	cfg := r.cfg
	if cfg.Name == "" {
		cfg.Name = key
	} else {
		cfg.Name += "/" + key
	}
	// cfg was validated in NewBreakers; only a metrics error can occur, and
	// the breaker must exist regardless, so retry without metrics.
	b, err := NewCircuitBreaker(cfg)
	if err != nil {
		cfg.MeterProvider = noopProvider()
		b, _ = NewCircuitBreaker(cfg)
	}
	return b
}

// Len returns the number of breakers held (the overflow breaker aside).
func (r *Breakers) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}

// evictLocked drops one closed breaker and reports whether it found one.
// Open and half-open breakers are never dropped: a fresh closed breaker
// would send a dead dependency traffic again.
func (r *Breakers) evictLocked() bool {
	for k, b := range r.m {
		if b.State() == StateClosed {
			delete(r.m, k)
			b.stopObserving()
			return true
		}
	}
	return false
}
