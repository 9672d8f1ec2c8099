package health

import (
	"context"
	"errors"
	"fmt"
	"net"
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
//
// A Redis that refuses connections is reported with the dial error
// ("dial tcp 10.0.0.5:6379: connect: connection refused"), not as a
// timeout, when go-redis gives up dialling before the check's timeout: with
// perfkit.RedisOptions that takes milliseconds; with go-redis's defaults (5
// dial attempts 100 ms apart for each of 4 tries) close to 2 s. When the
// timeout comes first, the error is the timeout and, on a *redis.Client,
// the last dial error seen during the run (Redis adds a dial hook to the
// client that records it).
func Redis(c redis.UniversalClient) CheckFunc {
	dials := &dialErrors{}
	if rc, ok := c.(*redis.Client); ok && rc != nil {
		rc.AddHook(dials)
	}
	return func(ctx context.Context) Result {
		res := Result{ComponentType: "datastore"}
		if c == nil {
			res.Err = errors.New("health: nil redis client")
			return res
		}
		// Stop the round trip a little before the check's own deadline, so
		// that go-redis, which ends a dial it is retrying when the context
		// does and returns the dial's error, hands that error ("connection
		// refused") to the check before the check is reported as timed out.
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-min(time.Until(dl)/10, redisDeadlineMargin)))
			defer cancel()
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
		t0 := time.Now()
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
		if err != nil && errors.Is(err, context.DeadlineExceeded) {
			if dialErr := dials.since(t0); dialErr != nil {
				err = fmt.Errorf("%w (last dial: %w)", err, dialErr)
			}
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

// dialErrors is a go-redis hook remembering the last failed dial.
type dialErrors struct {
	mu  sync.Mutex
	at  time.Time
	err error
}

func (d *dialErrors) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil && ctx.Err() == nil {
			d.mu.Lock()
			d.at, d.err = time.Now(), err
			d.mu.Unlock()
		}
		return conn, err
	}
}

func (d *dialErrors) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (d *dialErrors) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// since returns the last dial error seen at or after t, or nil.
func (d *dialErrors) since(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil || d.at.Before(t) {
		return nil
	}
	return d.err
}

// redisDeadlineMargin is the most by which Redis stops before the check's
// deadline (a tenth of the time left when that is less).
const redisDeadlineMargin = 50 * time.Millisecond

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
