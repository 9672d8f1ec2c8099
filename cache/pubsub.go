package cache

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servio/perfkit/internal/redact"
)

// message is an invalidation broadcast to the other instances. ID is the
// sending instance, Seq numbers its messages: together they identify one
// announcement, which an instance subscribed on several cluster nodes
// receives once per node and applies once.
type message struct {
	ID      string   `json:"id"`
	Seq     uint64   `json:"n,omitempty"`
	Keys    []string `json:"k,omitempty"`
	Pattern string   `json:"p,omitempty"`
	Tags    []string `json:"t,omitempty"`
	Flush   bool     `json:"f,omitempty"`
}

// message encodes an invalidation from this instance, or returns nil when
// pub/sub is off.
func (c *Cache) message(keys []string, pattern string, tags []string) []byte {
	if c.rdb == nil || c.cfg.DisablePubSub {
		return nil
	}
	b, _ := json.Marshal(message{ID: c.id, Seq: c.subs.seq.Add(1), Keys: keys, Pattern: pattern, Tags: tags})
	return b
}

// flushMessage encodes "flush your L1" from this instance.
func (c *Cache) flushMessage() []byte {
	b, _ := json.Marshal(message{ID: c.id, Seq: c.subs.seq.Add(1), Flush: true})
	return b
}

// subsRefresh is how often a cluster's masters are listed again, to
// subscribe on a new master (after a failover or a resharding) and drop a
// removed one.
const subsRefresh = time.Second

// dedupeSize is how many recent announcements an instance remembers to
// drop their copies from the other nodes.
const dedupeSize = 4096

// subscriptions are the invalidation subscriptions of a Cache: one
// PubSub on a single-node client (keyed ""), one per master on a
// cluster. A classic PUBLISH reaches every node of a cluster, so any live
// master's subscription hears every announcement: a dead node stops none.
type subscriptions struct {
	seq     atomic.Uint64                   // numbers this instance's messages
	masters atomic.Pointer[[]*redis.Client] // a cluster's masters, last listed

	mu      sync.Mutex
	ps      map[string]*redis.PubSub
	via     map[string]redis.UniversalClient // the client each PubSub was made with
	closed  bool
	stop    context.CancelFunc // ends watchMasters
	waiting atomic.Int32       // initial subscriptions not yet confirmed
	ready   sync.Once

	seenMu sync.Mutex
	seen   map[string]struct{}
	ring   [dedupeSize]string
	next   int
}

// firstCopy reports whether the announcement key was not seen before.
func (s *subscriptions) firstCopy(key string) bool {
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if _, ok := s.seen[key]; ok {
		return false
	}
	if s.seen == nil {
		s.seen = make(map[string]struct{}, dedupeSize)
	}
	delete(s.seen, s.ring[s.next])
	s.ring[s.next] = key
	s.next = (s.next + 1) % dedupeSize
	s.seen[key] = struct{}{}
	return true
}

// subscribe starts the listeners and waits briefly for the subscriptions
// to be confirmed, so L1 writes made right after New are not flushed by
// them. On a cluster it subscribes on every master and starts the
// goroutine that follows the masters.
func (c *Cache) subscribe() {
	ctx := context.Background()
	c.subs.ps = map[string]*redis.PubSub{}
	c.subs.via = map[string]redis.UniversalClient{}
	var err error
	if cl, ok := c.rdb.(*redis.ClusterClient); ok {
		mctx, cancel := context.WithTimeout(ctx, time.Second)
		var ms []*redis.Client
		ms, err = masters(mctx, cl)
		cancel()
		if len(ms) > 0 {
			c.subs.masters.Store(&ms)
		}
		c.subs.waiting.Store(int32(len(ms)))
		for _, n := range ms {
			if serr := c.addSub(ctx, n.Options().Addr, n); err == nil {
				err = serr
			}
		}
		var wctx context.Context
		wctx, c.subs.stop = context.WithCancel(ctx)
		c.wg.Add(1)
		go c.watchMasters(wctx, cl)
		if len(ms) == 0 {
			c.subs.ready.Do(func() { close(c.ready) })
		}
	} else {
		c.subs.waiting.Store(1)
		err = c.addSub(ctx, "", c.rdb)
	}
	if err != nil {
		c.cfg.Logger.Warn("cache: subscribe failed, retrying in the background", "cache", c.cfg.Name, "err", redact.String(err.Error()))
		return
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-c.ready:
	case <-t.C:
	}
}

// addSub subscribes through client n (a master at addr on a cluster) and
// starts its listener.
func (c *Cache) addSub(ctx context.Context, addr string, n redis.UniversalClient) error {
	c.subs.mu.Lock()
	defer c.subs.mu.Unlock()
	if c.subs.closed {
		return nil
	}
	if old := c.subs.ps[addr]; old != nil {
		if c.subs.via[addr] == n {
			return nil
		}
		// The cluster client replaced its client of that node (the old
		// one is closed): subscribe again through the new one.
		_ = old.Close()
	}
	ps := n.Subscribe(ctx)
	err := ps.Subscribe(ctx, c.cfg.Channel)
	c.subs.ps[addr], c.subs.via[addr] = ps, n
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	c.wg.Add(1)
	go c.listen(ch)
	return err
}

// watchMasters subscribes on new masters and drops the subscriptions of
// nodes that are no longer masters, every subsRefresh, until ctx ends.
func (c *Cache) watchMasters(ctx context.Context, cl *redis.ClusterClient) {
	defer c.wg.Done()
	t := time.NewTicker(subsRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mctx, cancel := context.WithTimeout(ctx, time.Second)
		ms, err := masters(mctx, cl)
		cancel()
		if err != nil || len(ms) == 0 {
			continue
		}
		c.subs.masters.Store(&ms)
		live := map[string]bool{}
		for _, n := range ms {
			addr := n.Options().Addr
			live[addr] = true
			_ = c.addSub(ctx, addr, n)
		}
		c.subs.mu.Lock()
		for addr, ps := range c.subs.ps {
			if !live[addr] {
				_ = ps.Close()
				delete(c.subs.ps, addr)
				delete(c.subs.via, addr)
			}
		}
		c.subs.mu.Unlock()
	}
}

// closeSubs ends every subscription and the goroutine following the
// masters.
func (c *Cache) closeSubs() {
	c.subs.mu.Lock()
	defer c.subs.mu.Unlock()
	c.subs.closed = true
	if c.subs.stop != nil {
		c.subs.stop()
	}
	for _, ps := range c.subs.ps {
		_ = ps.Close()
	}
}

// listen applies invalidations from other instances until its PubSub is
// closed. Every (re)subscription after New flushes L1: messages published
// while the connection was down may be lost (on a cluster the other
// masters' subscriptions had them, so this is only caution).
func (c *Cache) listen(ch <-chan any) {
	defer c.wg.Done()
	first := true
	for m := range ch {
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			if !first || c.started.Load() {
				c.flushLocal()
			}
			if first {
				first = false
				if c.subs.waiting.Add(-1) <= 0 {
					c.subs.ready.Do(func() { close(c.ready) })
				}
			}
		case *redis.Message:
			c.apply(m.Payload)
		}
	}
}

// apply carries out one invalidation message; its own, malformed ones and
// copies of one already applied (from another cluster node) are ignored.
func (c *Cache) apply(payload string) {
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil || m.ID == c.id {
		return
	}
	if m.Seq != 0 && c.clustered() && !c.subs.firstCopy(m.ID+":"+strconv.FormatUint(m.Seq, 10)) {
		return
	}
	if m.Flush {
		c.flushLocal()
		return
	}
	if len(m.Keys) > 0 {
		c.delLocal(m.Keys...)
		c.st.invalidations.Add(uint64(len(m.Keys)))
	}
	if m.Pattern != "" {
		c.delLocalPattern(m.Pattern)
		c.st.invalidations.Add(1)
	}
	if len(m.Tags) > 0 {
		c.delLocalTags(m.Tags)
		c.st.invalidations.Add(uint64(len(m.Tags)))
	}
}
