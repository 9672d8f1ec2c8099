package dbpool

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/servio/perfkit/internal/redact"
)

// errNotReplica: the server answered but is not in recovery (promoted, or
// a primary given as a replica by mistake).
var errNotReplica = errors.New("dbpool: replica is not in recovery (pg_is_in_recovery() is false)")

// lagClock keeps the primary's flushed WAL position at the last checks, so
// a replica's lag is measured as time behind the primary rather than as
// now() - pg_last_xact_replay_timestamp(), which grows without bound while
// the primary is idle. Used by the checker goroutine only (read
// concurrently by the replica checks after add).
type lagClock struct {
	samples []lagSample // oldest first
	n       int
}

type lagSample struct {
	t   time.Time
	lsn uint64
}

func newLagClock(n int) *lagClock { return &lagClock{n: max(n, 2)} }

func (l *lagClock) add(t time.Time, lsn uint64) {
	if len(l.samples) == l.n {
		copy(l.samples, l.samples[1:])
		l.samples = l.samples[:l.n-1]
	}
	l.samples = append(l.samples, lagSample{t, lsn})
}

// lag is how long ago the primary was first seen beyond replayed: the
// replica misses WAL that existed then, so it is at least that far behind
// (and at most one check interval more). 0 when it has replayed the last
// position seen.
func (l *lagClock) lag(now time.Time, replayed uint64) time.Duration {
	for _, s := range l.samples {
		if s.lsn > replayed {
			return max(now.Sub(s.t), 0)
		}
	}
	return 0
}

// last returns the latest primary position seen, or 0.
func (l *lagClock) last() uint64 {
	if len(l.samples) == 0 {
		return 0
	}
	return l.samples[len(l.samples)-1].lsn
}

// run checks the replicas every CheckInterval until ctx ends.
func (c *Cluster) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.check(ctx)
		}
	}
}

// check measures the primary's position, then every replica's health and
// replay position at once, updates which replicas are usable and forgets
// the session writes every replica has replayed.
func (c *Cluster) check(ctx context.Context) {
	gen := c.sess.generation()
	pctx, cancel := context.WithTimeout(ctx, c.cfg.CheckTimeout)
	var ins, flush string
	err := c.primary.QueryRowContext(pctx,
		"SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text").Scan(&ins, &flush)
	cancel()
	if err == nil {
		var i, f uint64
		if i, err = parseLSN(ins); err == nil {
			if f, err = parseLSN(flush); err == nil {
				c.lag.add(time.Now(), f)
				c.sess.resolveUnknown(gen, i)
			}
		}
	}
	// Lag stays measured against the positions seen before; logged once
	// per outage, not once per check.
	switch failing := err != nil && ctx.Err() == nil; {
	case failing && !c.primaryFailing.Swap(true):
		c.log.Warn("dbpool: replica check cannot read the primary's WAL position", "pool", c.primary.Config().Name,
			"error", redact.String(err.Error()))
	case err == nil && c.primaryFailing.Swap(false):
		c.log.Info("dbpool: replica check reads the primary's WAL position again", "pool", c.primary.Config().Name)
	}
	var wg sync.WaitGroup
	for _, r := range c.replicas {
		wg.Go(func() { c.checkReplica(ctx, r) })
	}
	wg.Wait()
	least := ^uint64(0)
	for _, r := range c.replicas {
		least = min(least, r.replayed.Load())
	}
	c.sess.prune(least)
}

func (c *Cluster) checkReplica(ctx context.Context, r *replica) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.CheckTimeout)
	defer cancel()
	var inRecovery bool
	var replay string
	err := r.db.QueryRowContext(rctx,
		"SELECT pg_is_in_recovery(), COALESCE(pg_last_wal_replay_lsn()::text, '')").Scan(&inRecovery, &replay)
	now := time.Now()
	if ctx.Err() != nil {
		return // closing: the state no longer matters
	}
	var pos uint64
	if err == nil && !inRecovery {
		err = errNotReplica
	}
	if err == nil {
		pos, err = parseLSN(replay)
	}
	if err != nil {
		r.setErr(err)
		if r.usable.Swap(false) {
			c.log.Warn("dbpool: replica out: check failed", "pool", r.name, "error", redact.String(err.Error()))
		}
		return
	}
	r.replayed.Store(pos)
	lag := c.lag.lag(now, pos)
	r.lagNanos.Store(int64(lag))
	r.lagBytes.Store(int64(max(c.lag.last(), pos) - pos))
	ok := lag <= c.cfg.MaxLag
	if !ok {
		r.setErr(&lagError{lag: lag, max: c.cfg.MaxLag})
	}
	switch was := r.usable.Swap(ok); {
	case was && !ok:
		c.log.Warn("dbpool: replica out: lagging", "pool", r.name, "lag", lag, "max_lag", c.cfg.MaxLag)
	case !was && ok:
		c.log.Info("dbpool: replica in", "pool", r.name, "lag", lag)
	}
}

// lagError is why a lagging replica is out.
type lagError struct{ lag, max time.Duration }

func (e *lagError) Error() string {
	return "dbpool: replica lag " + e.lag.String() + " over MaxLag " + e.max.String()
}
