package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Limit is a rate: Rate events per Period, with bursts of up to Burst
// events. The zero Burst means Rate, so PerMinute(60) allows 60 at once and
// then one a second. Limit is a value; copy and change it freely.
type Limit struct {
	Rate   int           // events allowed per Period; must be > 0
	Period time.Duration // length of the window; must be ≥ 1 µs
	Burst  int           // most events allowed at once; 0 means Rate
}

// Per returns a limit of n events per period.
func Per(n int, period time.Duration) Limit { return Limit{Rate: n, Period: period} }

// PerSecond returns a limit of n events per second.
func PerSecond(n int) Limit { return Per(n, time.Second) }

// PerMinute returns a limit of n events per minute.
func PerMinute(n int) Limit { return Per(n, time.Minute) }

// PerHour returns a limit of n events per hour.
func PerHour(n int) Limit { return Per(n, time.Hour) }

// WithBurst returns l with its burst set to b.
func (l Limit) WithBurst(b int) Limit { l.Burst = b; return l }

// String returns the limit as "60/1m0s", or "60/1m0s burst 10" when Burst
// is set and differs from Rate.
func (l Limit) String() string {
	s := strconv.Itoa(l.Rate) + "/" + l.Period.String()
	if l.Burst != 0 && l.Burst != l.Rate {
		s += " burst " + strconv.Itoa(l.Burst)
	}
	return s
}

// burst returns the effective burst.
func (l Limit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.Rate
}

// emission returns the time one event costs (Period / Rate).
func (l Limit) emission() time.Duration { return l.Period / time.Duration(l.Rate) }

func (l Limit) validate() error {
	switch {
	case l.Rate <= 0:
		return fmt.Errorf("%w: rate %d must be > 0", ErrInvalidLimit, l.Rate)
	case l.Period < time.Microsecond:
		return fmt.Errorf("%w: period %v must be ≥ 1µs", ErrInvalidLimit, l.Period)
	case l.Burst < 0:
		return fmt.Errorf("%w: burst %d must be ≥ 0", ErrInvalidLimit, l.Burst)
	case l.Period/time.Duration(l.Rate) < time.Microsecond:
		return fmt.Errorf("%w: %v allows more than one event per µs", ErrInvalidLimit, l)
	case int64(l.burst()) > math.MaxInt64/int64(l.emission()):
		return fmt.Errorf("%w: burst %d of %v is longer than time.Duration holds", ErrInvalidLimit, l.burst(), l)
	}
	return nil
}

// divide returns l shared by n instances: rate and burst divided by n,
// never below 1.
func (l Limit) divide(n int) Limit {
	if n <= 1 {
		return l
	}
	b := max(l.burst()/n, 1)
	r := max(l.Rate/n, 1)
	return Limit{Rate: r, Period: l.Period, Burst: b}
}
