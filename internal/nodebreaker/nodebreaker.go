// Package nodebreaker gives a go-redis client one circuit breaker per Redis
// node, so a dead node opens only its own circuit.
//
// On a *redis.ClusterClient each master node (by address) has its own
// gobreaker/v2 breaker, and a key's breaker is that of the master owning the
// key's hash slot (ClusterClient.MasterForKey, so hash tags count). With one
// master of three dead and cluster-require-full-coverage off, keys on the
// healthy masters keep going to Redis while the dead master's keys fail fast.
// Any other client (*redis.Client, a failover client, a Ring) has a single
// breaker.
//
// Promises:
//   - A failure counts only in the breaker of the node that owns the key; a
//     breaker's state never changes by calls for keys of another node.
//   - When the cluster's slot map cannot be read, calls share one breaker
//     named after the client as a whole ("<Name>@cluster"), so an unreachable
//     cluster still fails fast once that breaker opens.
//
// Breakers are created on first use and kept: one per node address ever
// seen, which a cluster's size bounds (a failover adds the promoted node's
// address). The package is internal: shared mechanics of ratelimit and cache,
// not perfkit API.
package nodebreaker

import (
	"context"
	"sort"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// Breakers holds the breakers of one client's nodes. It is safe for
// concurrent use and starts no goroutines.
type Breakers[T any] struct {
	cluster  *redis.ClusterClient // nil: one breaker for the client
	settings gobreaker.Settings
	single   *gobreaker.CircuitBreaker[T]
	unknown  *gobreaker.CircuitBreaker[T] // cluster whose slot map is unknown

	mu    sync.RWMutex
	nodes map[string]*gobreaker.CircuitBreaker[T]
}

// New returns the breakers of client c, each made with st. Each breaker is
// named st.Name + "@" + the node's address (st.Name defaults to "redis"),
// and that name is what st.OnStateChange receives.
func New[T any](c redis.UniversalClient, st gobreaker.Settings) *Breakers[T] {
	if st.Name == "" {
		st.Name = "redis"
	}
	b := &Breakers[T]{settings: st, nodes: map[string]*gobreaker.CircuitBreaker[T]{}}
	switch c := c.(type) {
	case *redis.ClusterClient:
		b.cluster = c
		b.unknown = b.newBreaker("cluster")
	case *redis.Client:
		b.single = b.newBreaker(c.Options().Addr)
		b.nodes[c.Options().Addr] = b.single
	default:
		b.single = b.newBreaker("client")
		b.nodes["client"] = b.single
	}
	return b
}

func (b *Breakers[T]) newBreaker(node string) *gobreaker.CircuitBreaker[T] {
	st := b.settings
	st.Name = b.settings.Name + "@" + node
	return gobreaker.NewCircuitBreaker[T](st)
}

// ForKey returns the breaker of the node that owns key. On a cluster it may
// read the slot map first (a round trip bounded by ctx, only when the
// client has none yet).
func (b *Breakers[T]) ForKey(ctx context.Context, key string) *gobreaker.CircuitBreaker[T] {
	if b.cluster == nil {
		return b.single
	}
	n, err := b.cluster.MasterForKey(ctx, key)
	if err != nil {
		return b.unknown
	}
	return b.ForAddr(n.Options().Addr)
}

// ForAddr returns the breaker of the node at addr ("host:port"), for
// callers that already work per node (a pipeline per master). On a
// single-node client every addr gives the one breaker.
func (b *Breakers[T]) ForAddr(addr string) *gobreaker.CircuitBreaker[T] {
	if b.cluster == nil {
		return b.single
	}
	b.mu.RLock()
	cb := b.nodes[addr]
	b.mu.RUnlock()
	if cb != nil {
		return cb
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cb = b.nodes[addr]; cb == nil {
		cb = b.newBreaker(addr)
		b.nodes[addr] = cb
	}
	return cb
}

// Execute runs fn through the breaker of key's node: it returns
// gobreaker.ErrOpenState or gobreaker.ErrTooManyRequests without calling fn
// while that breaker refuses.
func (b *Breakers[T]) Execute(ctx context.Context, key string, fn func() (T, error)) (T, error) {
	return b.ForKey(ctx, key).Execute(fn)
}

// State is one breaker's state, for metrics and health reports.
type State struct {
	Name  string // Settings.Name + "@" + node address
	State gobreaker.State
}

// States returns the state of every breaker created so far, sorted by name.
func (b *Breakers[T]) States() []State {
	b.mu.RLock()
	out := make([]State, 0, len(b.nodes)+1)
	for _, cb := range b.nodes {
		out = append(out, State{cb.Name(), cb.State()})
	}
	b.mu.RUnlock()
	if b.unknown != nil {
		out = append(out, State{b.unknown.Name(), b.unknown.State()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Open reports whether any breaker is open (or half-open): some node is
// being kept from traffic.
func (b *Breakers[T]) Open() bool {
	for _, s := range b.States() {
		if s.State != gobreaker.StateClosed {
			return true
		}
	}
	return false
}
