package health

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis returns a check of c through the application's own client: PING
// and INFO memory and stats in one pipeline per node, reporting
// responseTime (ms), usedMemory (bytes) and hitRate (percent of keyspace
// lookups that hit, since the server started; absent before any lookup).
// On a *redis.ClusterClient every master is checked, responseTime is the
// slowest, usedMemory and the hit counts are summed, and one failing master
// fails the check. ComponentType is "datastore".
func Redis(c redis.UniversalClient) CheckFunc {
	return func(ctx context.Context) Result {
		res := Result{ComponentType: "datastore"}
		if c == nil {
			res.Err = errors.New("health: nil redis client")
			return res
		}
		var (
			mu  sync.Mutex
			agg redisStats
		)
		add := func(ctx context.Context, n redis.Cmdable) error {
			st, err := redisNode(ctx, n)
			mu.Lock()
			defer mu.Unlock()
			agg.latency = max(agg.latency, st.latency)
			agg.usedMemory += st.usedMemory
			agg.hits += st.hits
			agg.misses += st.misses
			return err
		}
		var err error
		if cc, ok := c.(*redis.ClusterClient); ok {
			err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
				if err := add(ctx, n); err != nil {
					return fmt.Errorf("%s: %w", n.Options().Addr, err)
				}
				return nil
			})
		} else {
			err = add(ctx, c)
		}
		res.Err = err
		res.Measurements = []Measurement{{Name: "responseTime", Value: ms(agg.latency), Unit: "ms"}}
		if err == nil {
			res.Measurements = append(res.Measurements, Measurement{Name: "usedMemory", Value: agg.usedMemory, Unit: "bytes"})
			if n := agg.hits + agg.misses; n > 0 {
				rate := float64(agg.hits) / float64(n) * 100
				res.Measurements = append(res.Measurements, Measurement{Name: "hitRate", Value: float64(int(rate*100)) / 100, Unit: "percent"})
			}
		}
		return res
	}
}

type redisStats struct {
	latency      time.Duration
	usedMemory   uint64
	hits, misses uint64
}

// redisNode pings one node and reads its INFO in one round trip.
func redisNode(ctx context.Context, n redis.Cmdable) (redisStats, error) {
	var st redisStats
	t0 := time.Now()
	var ping *redis.StatusCmd
	var info *redis.StringCmd
	_, err := n.Pipelined(ctx, func(p redis.Pipeliner) error {
		ping = p.Ping(ctx)
		info = p.Info(ctx, "memory", "stats")
		return nil
	})
	st.latency = time.Since(t0)
	if err != nil {
		return st, err
	}
	if err := ping.Err(); err != nil {
		return st, err
	}
	st.usedMemory, st.hits, st.misses = parseInfo(info.Val())
	return st, nil
}

// parseInfo reads used_memory, keyspace_hits and keyspace_misses from an
// INFO reply; missing or malformed fields are zero.
func parseInfo(s string) (usedMemory, hits, misses uint64) {
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "used_memory":
			usedMemory = n
		case "keyspace_hits":
			hits = n
		case "keyspace_misses":
			misses = n
		}
	}
	return usedMemory, hits, misses
}
