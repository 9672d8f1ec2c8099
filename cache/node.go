package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// Every Redis call goes through the breaker of the node it talks to
// (internal/nodebreaker): on a Redis Cluster each master has its own, so a
// dead master keeps only its own keys out of L2. How calls are accounted:
//
//   - A one-key call (GET, the fill script, the epoch) counts in the
//     breaker of the master owning the key's slot.
//   - A multi-key pipeline (GetMany, SetMany, Delete, tombstones of a tag
//     invalidation, a cluster's per-slot epochs) is split per master: each part is its own call through
//     its master's breaker, the parts run concurrently, and each key's
//     outcome is its own part's (a dead master's keys miss or are queued
//     for replay; the others are read or settled). Tag-set writes made
//     with a value count in the breaker of the value's master.
//   - A SCAN of pattern invalidation counts per master scanned.
//   - A PUBLISH (keyless) goes to the first master whose breaker lets it
//     through, trying the others when it fails: classic pub/sub messages
//     reach every node of a cluster, so any live master will do.
//
// On a single-node client all of these share the one breaker.

// l2Run runs f behind breaker cb, within timeout when it is positive. A
// miss (redis.Nil) is not an error of Redis, nor is the caller giving up;
// every other failure is counted and wrapped in ErrUnavailable.
func (c *Cache) l2Run(ctx context.Context, cb *gobreaker.CircuitBreaker[struct{}], timeout time.Duration, f func(ctx context.Context) error) error {
	ran, gaveUp := false, false
	var ferr error
	_, err := cb.Execute(func() (struct{}, error) {
		ran = true
		if timeout > 0 {
			tctx, cancel := context.WithTimeout(ctx, timeout)
			ferr = f(tctx)
			cancel()
		} else {
			ferr = f(ctx)
		}
		if ferr != nil && ctx.Err() != nil {
			// The caller gave up: not Redis' fault, so not a breaker failure.
			gaveUp = true
			return struct{}{}, context.Canceled
		}
		return struct{}{}, ferr
	})
	switch {
	case !ran:
		c.st.l2Errors.Add(1)
		c.st.l2Rejected.Add(1)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case gaveUp:
		return ctx.Err()
	case ferr != nil && !errors.Is(ferr, redis.Nil):
		c.st.l2Errors.Add(1)
		return fmt.Errorf("%w: %w", ErrUnavailable, ferr)
	}
	return ferr
}

// l2Do runs one Redis call or pipeline f about Redis key rkey behind the
// breaker of rkey's node, bounded by RedisTimeout.
func (c *Cache) l2Do(ctx context.Context, rkey string, f func(ctx context.Context) error) error {
	return c.l2Run(ctx, c.cb.ForKey(ctx, rkey), c.cfg.RedisTimeout, f)
}

// l2Pipe runs a pipeline about Redis keys rkeys: queue adds the commands
// of the keys at indexes idx, then after (if not nil) runs a second round
// trip for them. On a cluster there is one pipeline per master, each
// behind its master's breaker and bounded by RedisTimeout, run concurrently;
// msg (if not nil) is then published through any live master, and when
// that fails a flush of the other instances is queued for replay (the
// keys themselves reached L2). On a single node it is one pipeline that
// also carries the PUBLISH. It returns the indexes of the keys whose
// pipeline failed (all of them when the single one did) and the first
// error. A pipeline whose only errors are misses (redis.Nil) succeeded.
func (c *Cache) l2Pipe(ctx context.Context, rkeys []string, msg []byte,
	queue func(ctx context.Context, p redis.Pipeliner, idx []int),
	after func(ctx context.Context, idx []int) error) ([]int, error) {
	run := func(ctx context.Context, idx []int, msg []byte) error {
		cmds, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			queue(ctx, p, idx)
			if msg != nil {
				p.Publish(ctx, c.cfg.Channel, msg)
			}
			return nil
		})
		if errors.Is(err, redis.Nil) {
			err = nil
			for _, cmd := range cmds {
				if e := cmd.Err(); e != nil && !errors.Is(e, redis.Nil) {
					return e
				}
			}
		}
		if err == nil && after != nil {
			err = after(ctx, idx)
		}
		return err
	}
	cl, ok := c.rdb.(*redis.ClusterClient)
	if !ok {
		all := make([]int, len(rkeys))
		for i := range all {
			all[i] = i
		}
		var cb *gobreaker.CircuitBreaker[struct{}]
		if len(rkeys) > 0 {
			cb = c.cb.ForKey(ctx, rkeys[0])
		} else {
			cb = c.cb.ForKey(ctx, "")
		}
		if err := c.l2Run(ctx, cb, c.cfg.RedisTimeout, func(ctx context.Context) error { return run(ctx, all, msg) }); err != nil {
			return all, err
		}
		return nil, nil
	}
	// Group the keys by master; a key whose master is unknown (no slot
	// map) goes with the cluster-wide breaker.
	groups := map[string][]int{}
	for i, k := range rkeys {
		addr := ""
		if n, err := cl.MasterForKey(ctx, k); err == nil {
			addr = n.Options().Addr
		}
		groups[addr] = append(groups[addr], i)
	}
	var (
		mu     sync.Mutex
		failed []int
		first  error
		wg     sync.WaitGroup
	)
	for addr, idx := range groups {
		cb := c.cb.ForAddr(addr)
		if addr == "" {
			cb = c.cb.ForKey(ctx, rkeys[idx[0]])
		}
		do := func() {
			err := c.l2Run(ctx, cb, c.cfg.RedisTimeout, func(ctx context.Context) error { return run(ctx, idx, nil) })
			if err != nil {
				mu.Lock()
				failed = append(failed, idx...)
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}
		if len(groups) == 1 {
			do()
			break
		}
		wg.Go(do)
	}
	wg.Wait()
	slices.Sort(failed)
	if msg != nil {
		if err := c.publish(ctx, msg); err != nil {
			c.deferFlush()
			if first == nil {
				first = err
			}
		}
	}
	return failed, first
}

// splitKeys splits keys into those at the indexes failed (sorted) and
// the others.
func splitKeys(keys []string, failed []int) (bad, good []string) {
	if len(failed) == 0 {
		return nil, keys
	}
	good = make([]string, 0, len(keys)-len(failed))
	bad = make([]string, 0, len(failed))
	j := 0
	for i, k := range keys {
		if j < len(failed) && failed[j] == i {
			bad = append(bad, k)
			j++
			continue
		}
		good = append(good, k)
	}
	return bad, good
}

// masters returns the cluster's masters, sorted by address.
func masters(ctx context.Context, cl *redis.ClusterClient) ([]*redis.Client, error) {
	var (
		mu  sync.Mutex
		out []*redis.Client
	)
	err := cl.ForEachMaster(ctx, func(_ context.Context, n *redis.Client) error {
		mu.Lock()
		out = append(out, n)
		mu.Unlock()
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Options().Addr < out[j].Options().Addr })
	return out, err
}

// publish announces msg to the other instances; a nil msg (no Redis, or
// pub/sub off) is not sent. On a cluster it tries the masters whose
// breaker is closed first, then the others, until one takes it (the
// masters as the subscriptions last listed them, every subsRefresh).
func (c *Cache) publish(ctx context.Context, msg []byte) error {
	if msg == nil {
		return nil
	}
	cl, ok := c.rdb.(*redis.ClusterClient)
	if !ok {
		return c.l2Run(ctx, c.cb.ForKey(ctx, ""), c.cfg.RedisTimeout, func(ctx context.Context) error {
			return c.rdb.Publish(ctx, c.cfg.Channel, msg).Err()
		})
	}
	var ms []*redis.Client
	var err error
	if p := c.subs.masters.Load(); p != nil {
		ms = slices.Clone(*p)
	} else {
		ms, err = masters(ctx, cl)
	}
	if len(ms) == 0 {
		if err == nil {
			err = errors.New("no master")
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// Closed breakers first: a dead master is tried last.
	sort.SliceStable(ms, func(i, j int) bool {
		return c.cb.ForAddr(ms[i].Options().Addr).State() == gobreaker.StateClosed &&
			c.cb.ForAddr(ms[j].Options().Addr).State() != gobreaker.StateClosed
	})
	var first error
	for _, n := range ms {
		err := c.l2Run(ctx, c.cb.ForAddr(n.Options().Addr), c.cfg.RedisTimeout, func(ctx context.Context) error {
			return n.Publish(ctx, c.cfg.Channel, msg).Err()
		})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}
