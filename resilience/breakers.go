package resilience

import (
	"errors"
	"sync"
)

// Breakers is a bounded registry of circuit breakers by key (per host, per
// tenant), all built from one BreakerConfig. It is safe for concurrent use.
type Breakers struct {
	cfg     BreakerConfig
	maxKeys int
	mu      sync.RWMutex
	m       map[string]*CircuitBreaker
}

// NewBreakers returns a registry whose breakers use cfg, named
// cfg.Name+"/"+key (or key when cfg.Name is empty). At most maxKeys breakers
// are kept (default 1024 when 0); past that a closed breaker (or, if none is
// closed, an arbitrary one) is dropped to make room.
func NewBreakers(cfg BreakerConfig, maxKeys int) (*Breakers, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if maxKeys < 0 {
		return nil, errors.New("resilience: breakers maxKeys must not be negative")
	}
	if maxKeys == 0 {
		maxKeys = 1024
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
	if len(r.m) >= r.maxKeys {
		r.evictLocked()
	}
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
	r.m[key] = b
	return b
}

// Len returns the number of breakers held.
func (r *Breakers) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}

func (r *Breakers) evictLocked() {
	var victim string
	found := false
	for k, b := range r.m {
		if !found {
			victim, found = k, true
		}
		if b.State() == StateClosed {
			victim = k
			break
		}
	}
	if found {
		delete(r.m, victim)
	}
}
