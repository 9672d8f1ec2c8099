package cache

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servio/perfkit/internal/redact"
)

// message is an invalidation broadcast to the other instances.
type message struct {
	ID      string   `json:"id"`
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
	b, _ := json.Marshal(message{ID: c.id, Keys: keys, Pattern: pattern, Tags: tags})
	return b
}

// subscribe starts the listener and waits briefly for the subscription to
// be confirmed, so L1 writes made right after New are not flushed by it.
func (c *Cache) subscribe() {
	ctx := context.Background()
	c.ps = c.rdb.Subscribe(ctx)
	err := c.ps.Subscribe(ctx, c.cfg.Channel)
	ch := c.ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	c.wg.Add(1)
	go c.listen(ch)
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

// listen applies invalidations from other instances until the PubSub is
// closed. Every (re)subscription after New flushes L1: messages published
// while the connection was down are lost.
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
				close(c.ready)
				first = false
			}
		case *redis.Message:
			c.apply(m.Payload)
		}
	}
}

// apply carries out one invalidation message; its own and malformed ones
// are ignored.
func (c *Cache) apply(payload string) {
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil || m.ID == c.id {
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
