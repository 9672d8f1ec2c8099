package health

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// checkState is a registered check with its cached result.
type checkState struct {
	check Check
	ttl   time.Duration // how long a result stays fresh after its run ended

	cur        atomic.Pointer[snapshot]
	passedOnce atomic.Bool
	calling    atomic.Bool // the CheckFunc of the last run has not returned

	mu       sync.Mutex // guards the fields below
	inflight chan struct{}
	fails    int  // consecutive failed runs
	passes   int  // consecutive good runs
	failed   bool // reported fail after FailureThreshold failures

	obs [3][]metric.ObserveOption // per status, for the status gauge
	rec [3][]metric.RecordOption  // per status, for the duration histogram
}

// snapshot is one immutable result as served.
type snapshot struct {
	status        Status // after thresholds
	output        string
	componentType string
	measurements  []Measurement
	time          time.Time // when the run started, by Config.Now
	duration      time.Duration
	expires       time.Time
}

func newCheckState(ch Check, cacheTTL time.Duration, inst *instruments) *checkState {
	s := &checkState{check: ch, ttl: cacheTTL}
	if ch.Interval > 0 {
		// The refresher runs again Interval after a run ends and a run lasts
		// at most Timeout, so within this a fresher result is always due.
		s.ttl = ch.Interval + ch.Timeout
	}
	inst.precompute(s)
	return s
}

func (s *checkState) fresh(now time.Time) bool {
	snap := s.cur.Load()
	return snap != nil && now.Before(snap.expires)
}

// start returns a channel closed when the run of s in flight ends, starting
// a run unless the result is fresh (and force is off) or the Checker is
// closed, in which case it returns nil.
func (c *Checker) start(s *checkState, force bool) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		return s.inflight
	}
	if !force && s.fresh(c.now()) {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil
	}
	done := make(chan struct{})
	s.inflight = done
	c.wg.Add(1)
	go c.run(s, done)
	return done
}

// run runs s once with its timeout, records the result and closes done.
func (c *Checker) run(s *checkState, done chan struct{}) {
	defer c.wg.Done()
	started := c.now()
	t0 := time.Now()
	var res Result
	if s.calling.Load() {
		res = Result{Status: StatusFail, Output: "health: previous run has not returned: the check ignores its context"}
	} else {
		ctx, cancel := context.WithTimeout(c.ctx, s.check.Timeout)
		results := make(chan Result, 1)
		s.calling.Store(true)
		c.calls.Add(1)
		go func() {
			defer c.calls.Done()
			r := c.call(ctx, s)
			// Cleared before the result is handed over: once run has it, the
			// next run must not find this one still "calling".
			s.calling.Store(false)
			results <- r
		}()
		select {
		case res = <-results:
		case <-ctx.Done():
			res = Result{Status: StatusFail, Err: fmt.Errorf("%w after %s", ErrTimeout, s.check.Timeout)}
		}
		cancel()
	}
	// A run cut short by Close says nothing about the dependency: keep the
	// last result.
	if c.ctx.Err() == nil {
		c.record(s, res, started, time.Since(t0))
	}
	s.mu.Lock()
	s.inflight = nil
	s.mu.Unlock()
	close(done)
}

// call runs the CheckFunc, turning a panic into a failed result.
func (c *Checker) call(ctx context.Context, s *checkState) (res Result) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("health: check panicked", "check", s.check.Name, "panic", c.redact(fmt.Sprint(v)), "stack", c.redact(string(debug.Stack())))
			res = Result{Status: StatusFail, Err: fmt.Errorf("%w: %v", ErrPanic, v)}
		}
	}()
	return s.check.Run(ctx)
}

// record applies the thresholds to res and publishes the snapshot.
func (c *Checker) record(s *checkState, res Result, started time.Time, d time.Duration) {
	raw := res.Status
	if raw > StatusFail {
		raw = StatusFail
	}
	if res.Err != nil {
		raw = StatusFail
	}
	out := res.Output
	if res.Err != nil {
		if out != "" {
			out += ": "
		}
		out += res.Err.Error()
	}
	if raw == StatusPass && s.check.SlowThreshold > 0 && d > s.check.SlowThreshold {
		raw = StatusWarn
		out = joinOutput(out, "slow: took "+d.Round(time.Millisecond).String()+", threshold "+s.check.SlowThreshold.String())
	}

	s.mu.Lock()
	if raw == StatusFail {
		s.fails++
		s.passes = 0
		if s.fails >= s.check.FailureThreshold {
			s.failed = true
		}
	} else {
		s.passes++
		s.fails = 0
		if s.passes >= s.check.SuccessThreshold {
			s.failed = false
		}
	}
	st := raw
	switch {
	case raw == StatusFail && !s.failed:
		st = StatusWarn
		out = joinOutput("failing "+strconv.Itoa(s.fails)+"/"+strconv.Itoa(s.check.FailureThreshold), out)
	case raw != StatusFail && s.failed:
		st = StatusFail
		out = joinOutput("recovering "+strconv.Itoa(s.passes)+"/"+strconv.Itoa(s.check.SuccessThreshold), out)
	}
	s.mu.Unlock()

	ct := s.check.ComponentType
	if ct == "" {
		ct = res.ComponentType
	}
	if ct == "" {
		ct = "component"
	}
	snap := &snapshot{
		status:        st,
		output:        c.redact(out),
		componentType: ct,
		measurements:  c.redactMeasurements(res.Measurements),
		time:          started,
		duration:      d,
		expires:       c.now().Add(s.ttl),
	}
	prev := s.cur.Swap(snap)
	if st != StatusFail && raw != StatusFail {
		s.passedOnce.Store(true)
	}
	c.inst.recordDuration(s, st, d)
	from := StatusPass // a check starts out as pass
	if prev != nil {
		from = prev.status
	}
	if from != st {
		if c.cfg.OnStatusChange != nil {
			c.cfg.OnStatusChange(s.check.Name, from, st)
		}
		c.log.Log(context.Background(), logLevel(effective(st, s.check.Critical)), "health: check status changed", "check", s.check.Name, "from", from.String(), "to", st.String(), "critical", s.check.Critical, "output", snap.output)
	}
}

func logLevel(s Status) slog.Level {
	switch s {
	case StatusPass:
		return slog.LevelInfo
	case StatusWarn:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func joinOutput(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ": " + b
}

// redactMeasurements returns ms with string values and component ids
// redacted, copying the slice only when something changes, so that Check,
// Ready and the JSON body all hand out redacted values.
func (c *Checker) redactMeasurements(ms []Measurement) []Measurement {
	var out []Measurement
	for i, m := range ms {
		r := m
		changed := false
		if str, ok := m.Value.(string); ok {
			red := c.redact(str)
			r.Value, changed = red, red != str
		}
		r.ComponentID = c.redact(m.ComponentID)
		changed = changed || r.ComponentID != m.ComponentID
		if changed && out == nil {
			out = append(make([]Measurement, 0, len(ms)), ms[:i]...)
		}
		if out != nil {
			out = append(out, r)
		}
	}
	if out == nil {
		return ms
	}
	return out
}
