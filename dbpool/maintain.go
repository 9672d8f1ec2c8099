package dbpool

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/servio/perfkit/internal/redact"
)

type maintKey struct{}

// growInterval is how often the maintainer looks for callers waiting on a
// full pool that did not tell it (calls through db.DB()).
const growInterval = 10 * time.Millisecond

// growBackoff is how long growth pauses after a failed dial.
const growBackoff = 250 * time.Millisecond

// isMaint reports whether ctx is the maintainer's, whose holds are not uses.
func (p *pool) isMaint(ctx context.Context) bool {
	return p.maintaining.Load() && ctx.Value(maintKey{}) != nil
}

// maintain is the background goroutine: it keeps MinConns connections open
// and fresh (replacing retired ones through database/sql, so they count
// against MaxOpen like any other), grows the pool while callers wait, and watches
// saturation and leaks, every MaintainInterval and whenever a connection
// closes or retires. It returns when ctx is cancelled.
func (p *pool) maintain(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(p.cfg.MaintainInterval)
	defer t.Stop()
	// Callers that bypass DB's methods (db.DB()) do not wake the maintainer
	// when they wait; a short tick sees their waits in DBStats.WaitCount.
	var growC <-chan time.Time
	if !p.cfg.EagerDial {
		g := time.NewTicker(growInterval)
		defer g.Stop()
		growC = g.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-growC:
			p.grow(ctx)
			continue
		case <-t.C:
			p.closeIdle(time.Now())
		case <-p.kick:
			// Waiting callers kick on every call: look at most once a millisecond.
			time.Sleep(time.Millisecond)
		}
		p.grow(ctx)
		s := p.stats()
		if s.OpenConnections < p.cfg.MinConns {
			// Hold only what is missing beside the connections in use, so
			// the maintainer never queues behind callers.
			if err := p.hold(ctx, p.cfg.MinConns-s.InUse); err != nil && ctx.Err() == nil {
				p.log.LogAttrs(ctx, slog.LevelDebug, "dbpool: topping up warm connections failed",
					slog.String("pool", p.cfg.Name), slog.String("error", redact.String(err.Error())))
			}
			s = p.stats()
		}
		p.checkSaturation(ctx, s)
		p.checkLeaks(ctx)
	}
}

// closeIdle closes connections idle longer than IdleTimeout at now, keeping
// at least MinConns idle ones. database/sql's own idle timer is not used:
// it closes every connection past the timeout, the warm ones too.
// database/sql cannot close one chosen idle connection, so closeIdle lowers
// MaxIdleConns for a moment, which closes that many of the most recently
// returned ones. Idle connections are interchangeable, so it then restamps
// expired survivors as idle since now until only as many stay expired as
// if the expired ones had been closed; otherwise the next round would close
// connections that have not been idle for IdleTimeout.
func (p *pool) closeIdle(now time.Time) {
	if p.cfg.IdleTimeout <= 0 {
		return
	}
	type stamp struct {
		c     *conn
		since int64
	}
	cutoff := now.Add(-p.cfg.IdleTimeout).UnixNano()
	var old []stamp
	p.mu.Lock()
	for c := range p.conns {
		if since := c.idleSince.Load(); since != 0 && since < cutoff {
			old = append(old, stamp{c, since})
		}
	}
	p.mu.Unlock()
	s := p.db.Stats()
	keep := max(s.Idle-len(old), p.cfg.MinConns)
	if keep >= s.Idle {
		return
	}
	p.db.SetMaxIdleConns(keep) // 0: none idle
	p.db.SetMaxIdleConns(p.idleCap(int(p.capN.Load())))
	// Connections returned meanwhile and closed by MaxIdle count in the
	// same counter; the lowered maximum itself closed at most Idle-keep.
	closed := min(int(p.db.Stats().MaxIdleClosed-s.MaxIdleClosed), s.Idle-keep)
	p.idleClosed.Add(int64(closed))
	expired := max(len(old)-closed, 0)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range old {
		if _, open := p.conns[o.c]; !open {
			continue
		}
		if expired > 0 {
			expired--
			continue
		}
		o.c.idleSince.CompareAndSwap(o.since, now.UnixNano()) // unless taken meanwhile
	}
}

// grow raises the pool's cap by one connection at a time while callers
// wait with every open connection busy, dialling each new connection here,
// in the background, and handing it to a waiter. When nobody waits it
// lowers the cap to the open connections (never below MinConns), so the
// next caller beyond them waits for a returned connection instead of
// dialling its own.
func (p *pool) grow(ctx context.Context) {
	if p.cfg.EagerDial || time.Now().Before(p.growPause) {
		return
	}
	for range p.cfg.MaxOpen {
		s := p.db.Stats()
		c := int(p.capN.Load())
		waited := s.WaitCount > p.lastWaits
		p.lastWaits = s.WaitCount
		if s.InUse < c || (!waited && p.pending.Load() <= 0) {
			if t := max(p.cfg.MinConns, s.OpenConnections, 1); t < c {
				p.setCap(t)
			}
			return
		}
		if c >= p.cfg.MaxOpen || ctx.Err() != nil {
			return
		}
		p.setCap(c + 1)
		if err := p.growOne(ctx); err != nil {
			if errors.Is(err, errLostRace) {
				continue
			}
			if ctx.Err() == nil {
				p.log.LogAttrs(ctx, slog.LevelDebug, "dbpool: growing the pool failed",
					slog.String("pool", p.cfg.Name), slog.String("error", redact.String(err.Error())))
			}
			// Give the room back (callers must not dial into it either) and
			// do not hammer a database that refuses connections.
			p.setCap(max(c, p.db.Stats().OpenConnections))
			p.growPause = time.Now().Add(growBackoff)
			return
		}
	}
}

// errLostRace: a caller took the room grow made before the maintainer could
// dial into it.
var errLostRace = errors.New("dbpool: a caller took the new slot")

// growOne dials one connection into the pool through database/sql and
// hands it back, which gives it to a waiting caller. If a caller took the
// room first, database/sql would queue the maintainer behind the callers;
// it gives up instead of waiting.
func (p *pool) growOne(ctx context.Context) error {
	p.maintaining.Store(true)
	defer p.maintaining.Store(false)
	p.maintDialed.Store(false)
	mctx, cancel := context.WithTimeout(context.WithValue(ctx, maintKey{}, true), 2*p.cfg.ConnectTimeout)
	defer cancel()
	lost := time.AfterFunc(5*time.Millisecond, func() {
		if !p.maintDialed.Load() {
			cancel()
		}
	})
	defer lost.Stop()
	c, err := p.db.Conn(mctx)
	if err != nil {
		if ctx.Err() == nil && !p.maintDialed.Load() {
			return errLostRace
		}
		return err
	}
	return c.Close()
}

// hold takes n connections from the pool at once, which opens as many as
// are missing, and hands them back: they are then open, idle and fresh.
func (p *pool) hold(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	p.maintaining.Store(true)
	defer p.maintaining.Store(false)
	// Longer than ConnectTimeout, so that a slow dial fails with
	// ErrConnectTimeout rather than this context's deadline.
	mctx, cancel := context.WithTimeout(context.WithValue(ctx, maintKey{}, true), 2*p.cfg.ConnectTimeout)
	defer cancel()
	held := make([]*sql.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n { // concurrently, so warming takes one dial, not n
		wg.Go(func() { held[i], errs[i] = p.db.Conn(mctx) })
	}
	wg.Wait()
	for _, c := range held {
		if c != nil {
			_ = c.Close()
		}
	}
	for _, err := range errs { // the first: the others are mostly the same
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *pool) checkSaturation(ctx context.Context, s sql.DBStats) {
	sat := p.saturation(s)
	switch {
	case sat >= p.cfg.SaturationThreshold && p.saturated.CompareAndSwap(false, true):
		p.log.LogAttrs(ctx, slog.LevelWarn, "dbpool: pool saturated",
			slog.String("pool", p.cfg.Name), slog.Int("in_use", s.InUse), slog.Int("max", s.MaxOpenConnections),
			slog.Int64("pending", max(p.pending.Load(), 0)), slog.Float64("threshold", p.cfg.SaturationThreshold))
	case sat < p.cfg.SaturationThreshold && p.saturated.CompareAndSwap(true, false):
		p.log.LogAttrs(ctx, slog.LevelInfo, "dbpool: pool no longer saturated",
			slog.String("pool", p.cfg.Name), slog.Int("in_use", s.InUse), slog.Int("max", s.MaxOpenConnections))
	}
}

// checkLeaks logs, once per acquisition, each connection held longer than
// LeakThreshold with the stack that acquired it.
func (p *pool) checkLeaks(ctx context.Context) {
	if p.cfg.LeakThreshold <= 0 {
		return
	}
	now := time.Now().UnixNano()
	var leaked []*conn
	p.mu.Lock()
	for c := range p.conns {
		if h := c.heldSince.Load(); h != 0 && time.Duration(now-h) > p.cfg.LeakThreshold && !c.leaked.Load() {
			leaked = append(leaked, c)
		}
	}
	p.mu.Unlock()
	for _, c := range leaked {
		h := c.heldSince.Load()
		if h == 0 || !c.leaked.CompareAndSwap(false, true) {
			continue
		}
		p.leaks.Add(1)
		p.in.leaks.Add(ctx, 1, p.in.add...)
		var stack string
		if pcs := c.stack.Load(); pcs != nil {
			stack = formatStack(*pcs)
		}
		p.log.LogAttrs(ctx, slog.LevelWarn, "dbpool: connection held longer than the leak threshold",
			slog.String("pool", p.cfg.Name), slog.Duration("held", time.Duration(now-h)),
			slog.Duration("threshold", p.cfg.LeakThreshold), slog.String("stack", stack))
	}
}

func formatStack(pcs []uintptr) string {
	var b strings.Builder
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "database/sql.") && !strings.HasPrefix(f.Function, "github.com/servio/perfkit/dbpool.") {
			b.WriteString(f.Function)
			b.WriteString("\n\t")
			b.WriteString(f.File)
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(f.Line))
			b.WriteByte('\n')
		}
		if !more {
			return b.String()
		}
	}
}
