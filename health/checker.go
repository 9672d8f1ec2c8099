package health

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servio/perfkit/internal/redact"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// Config configures a Checker. The zero value of every field is a
// documented default; New(Config{}) works.
type Config struct {
	// Checks are registered by New, as by Register.
	Checks []Check
	// Version is the public version of the service ("version").
	Version string
	// ReleaseID is the release of the service ("releaseId").
	ReleaseID string
	// ServiceID identifies the service ("serviceId").
	ServiceID string
	// Description is a human-friendly description ("description").
	Description string
	// Timeout is the default timeout of one check run. Default 2 s; keep it
	// below the probe timeout of your orchestrator.
	Timeout time.Duration
	// CacheTTL is how long the result of an on-demand check (Interval 0) is
	// served before the check runs again. Default 1 s.
	CacheTTL time.Duration
	// MeterProvider receives the perfkit.health.check.status gauge and the
	// perfkit.health.check.duration histogram. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger logs status changes and panics. Default slog.Default().
	Logger *slog.Logger
	// SecretNames are extra names of parameters, headers and fields whose
	// values are secret, on top of the built-in deny-list (see [Redact]):
	// a name containing one of them (case-insensitive) is masked in check
	// outputs, measurements, component ids and log lines. Default none.
	SecretNames []string
	// Now is the clock for cache expiry and result times. Default time.Now.
	Now func() time.Time
	// OnStatusChange, when set, is called when a check's reported status
	// (after thresholds) changes. A check starts out as pass, so a first
	// result of pass calls nothing. It runs on the goroutine that ran the
	// check, one call at a time per check, and should return quickly.
	// Status changes are also logged: pass at Info, warn at Warn, fail of a
	// critical check at Error.
	OnStatusChange func(check string, from, to Status)
}

// Checker runs checks and keeps their latest results. Create it with New
// (the zero Checker is not usable). It is safe for concurrent use. Close
// stops its background refreshers.
type Checker struct {
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	rules  redact.Rules
	inst   *instruments
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex // guards closed, wg.Add and writes of checks
	closed bool
	wg     sync.WaitGroup // refreshers and runners
	calls  sync.WaitGroup // goroutines calling CheckFunc

	checks   atomic.Pointer[[]*checkState] // copy on write, sorted by name
	draining atomic.Bool
	started  atomic.Bool

	closeGrace time.Duration // how long Close waits for checks ignoring ctx
}

// New returns a Checker with cfg's checks registered and their background
// refreshers started. It fails with an error wrapping ErrInvalidConfig for
// negative durations or an invalid check.
func New(cfg Config) (*Checker, error) {
	if cfg.Timeout < 0 || cfg.CacheTTL < 0 {
		return nil, fmt.Errorf("%w: negative Timeout or CacheTTL", ErrInvalidConfig)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = time.Second
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Checker{cfg: cfg, now: cfg.Now, log: cfg.Logger, rules: redact.New(cfg.SecretNames...), closeGrace: time.Second}
	c.checks.Store(&[]*checkState{})
	inst, err := newInstruments(cfg.MeterProvider, c)
	if err != nil {
		return nil, err
	}
	c.inst = inst
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.Register(cfg.Checks...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Register adds checks and starts the background refreshers of those with an
// Interval. Either all checks are added or, on error, none: it fails with
// ErrInvalidConfig for an invalid or duplicate check and with ErrClosed after
// Close.
func (c *Checker) Register(checks ...Check) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	old := *c.checks.Load()
	next := slices.Clone(old)
	for _, ch := range checks {
		if err := ch.validate(c.cfg.Timeout); err != nil {
			return err
		}
		ch.ComponentID = c.redact(ch.ComponentID) // it may be a URL with credentials
		if slices.ContainsFunc(next, func(s *checkState) bool { return s.check.Name == ch.Name }) {
			return fmt.Errorf("%w: duplicate name %q", ErrInvalidConfig, ch.Name)
		}
		next = append(next, newCheckState(ch, c.cfg.CacheTTL, c.inst))
	}
	slices.SortFunc(next, func(a, b *checkState) int {
		switch {
		case a.check.Name < b.check.Name:
			return -1
		case a.check.Name > b.check.Name:
			return 1
		}
		return 0
	})
	c.checks.Store(&next)
	for _, s := range next {
		if s.check.Interval > 0 && !slices.Contains(old, s) {
			c.wg.Add(1)
			go c.refresh(s)
		}
	}
	return nil
}

// Close stops the background refreshers, cancels running checks and waits
// for them; a check that ignores its context is waited for at most one
// second and then left running (and logged). Results already cached stay
// readable. Close is idempotent.
func (c *Checker) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	done := make(chan struct{})
	go func() { c.calls.Wait(); close(done) }()
	grace := time.NewTimer(c.closeGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		for _, s := range *c.checks.Load() {
			if s.calling.Load() {
				c.log.Warn("health: check ignores its context and is still running after Close", "check", s.check.Name)
			}
		}
	}
	c.inst.unregister()
}

// SetDraining switches draining on or off. While on, /health/ready (and
// Ready) report fail at once, so load balancers stop sending traffic before
// the server shuts down: call SetDraining(true) when shutdown begins, wait
// for the probe period, then shut the server down. Liveness and /health are
// unaffected. It is safe to call concurrently with requests.
func (c *Checker) SetDraining(on bool) { c.draining.Store(on) }

// Draining reports whether SetDraining(true) is in force.
func (c *Checker) Draining() bool { return c.draining.Load() }

// Check runs every check whose cached result has expired (each at most once
// however many callers wait) and returns the service's report: the worst
// check status, a failing non-critical check counting as warn. When ctx ends
// first, Check returns at once: checks still running are reported with their
// previous result, or as fail if they have none yet, and finish (within
// their timeout) in the background.
func (c *Checker) Check(ctx context.Context) Report {
	return c.report(ctx, query{}, false)
}

// Ready is Check for readiness: it reports fail while draining and until
// every critical and startup check has passed once. Once that happened the
// service counts as started for good: checks registered later do not gate
// it again.
func (c *Checker) Ready(ctx context.Context) Report {
	return c.report(ctx, query{}, true)
}

// refresh runs s every Interval until Close.
func (c *Checker) refresh(s *checkState) {
	defer c.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		if done := c.start(s, true); done != nil {
			select {
			case <-done:
			case <-c.ctx.Done():
				return
			}
		}
		t.Reset(s.check.Interval)
	}
}

// ensure waits until every check not excluded by q has a fresh result, or
// ctx ends. It allocates only when some result has expired.
func (c *Checker) ensure(ctx context.Context, checks []*checkState, q query) {
	now := c.now()
	var waits []<-chan struct{}
	for _, s := range checks {
		if q.excluded(s.check.Name) || s.fresh(now) {
			continue
		}
		if done := c.start(s, false); done != nil {
			waits = append(waits, done)
		}
	}
	for _, done := range waits {
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

// status is the hot path of /health and /health/ready: the aggregate status
// from cached results, running expired checks first. When ready is set it
// applies startup gating and draining; the string says why it is not ready.
func (c *Checker) status(ctx context.Context, q query, ready bool) (Status, string) {
	if ready && c.draining.Load() {
		return StatusFail, "draining"
	}
	checks := *c.checks.Load()
	c.ensure(ctx, checks, q)
	agg := StatusPass
	for _, s := range checks {
		if q.excluded(s.check.Name) {
			continue
		}
		st := StatusFail
		if snap := s.cur.Load(); snap != nil {
			st = snap.status
		}
		agg = worse(agg, effective(st, s.check.Critical))
	}
	if ready && !c.started.Load() {
		if name := c.waitingFor(checks, q); name != "" {
			return StatusFail, "starting: waiting for " + name
		}
	}
	return agg, ""
}

// waitingFor returns the first startup check not excluded by q that has not
// passed yet, or "" when there is none. Without exclusions an empty answer
// is latched: the service has started.
func (c *Checker) waitingFor(checks []*checkState, q query) string {
	for _, s := range checks {
		if (s.check.Critical || s.check.Startup) && !s.passedOnce.Load() && !q.excluded(s.check.Name) {
			return s.check.Name
		}
	}
	if len(q.exclude) == 0 {
		c.started.Store(true)
	}
	return ""
}
