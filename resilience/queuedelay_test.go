package resilience_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/resilience"
)

func TestQueueDelayReportsTheShortestWaitPerInterval(t *testing.T) {
	var q resilience.QueueDelay
	assert.Zero(t, q.Delay(), "no request: no queue")

	// A burst: the first request found no queue, the others waited for it.
	for _, w := range []time.Duration{0, 3 * time.Millisecond, 6 * time.Millisecond} {
		q.Observe(w)
	}
	assert.Zero(t, q.Delay(), "a burst is no standing queue")

	// A standing queue: every request waited.
	for _, w := range []time.Duration{9 * time.Millisecond, 7 * time.Millisecond, 8 * time.Millisecond} {
		q.Observe(w)
	}
	assert.Equal(t, 7*time.Millisecond, q.Delay())
	assert.Zero(t, q.Delay(), "each Delay starts a new interval")

	q.Observe(-time.Second) // a stamp ahead of this host's clock
	q.Observe(5 * time.Millisecond)
	assert.Zero(t, q.Delay(), "a negative wait counts as 0")

	q.Observe(time.Duration(1<<63 - 1))
	assert.Greater(t, q.Delay(), 1000*time.Hour, "the longest wait does not overflow")
}

func TestQueueDelayObserveStamp(t *testing.T) {
	var q resilience.QueueDelay
	now := time.Unix(1764921600, 0)
	stamp := func(ago time.Duration) string { return "t=" + strconv.FormatInt(now.Add(-ago).UnixMicro(), 10) }
	assert.False(t, q.ObserveStamp("", now), "no header")
	assert.False(t, q.ObserveStamp("t=soon", now), "unreadable")
	assert.False(t, q.ObserveStamp(stamp(2*time.Minute), now), "older than a minute: not a queue")
	assert.False(t, q.ObserveStamp(stamp(-2*time.Second), now), "more than a second ahead: a clock gone wrong")
	assert.Zero(t, q.Delay(), "nothing counted")
	assert.True(t, q.ObserveStamp(stamp(30*time.Millisecond), now))
	assert.True(t, q.ObserveStamp(stamp(12*time.Millisecond), now))
	assert.Equal(t, 12*time.Millisecond, q.Delay())
	assert.True(t, q.ObserveStamp(stamp(-time.Millisecond), now), "a stamp slightly ahead (skew) counts as no wait")
	assert.Zero(t, q.Delay())
	// ObserveArrival is the same for a stamp already parsed.
	assert.False(t, q.ObserveArrival(now.Add(-2*time.Minute), now), "older than a minute")
	assert.False(t, q.ObserveArrival(now.Add(2*time.Second), now), "more than a second ahead")
	assert.True(t, q.ObserveArrival(now.Add(-7*time.Millisecond), now))
	assert.Equal(t, 7*time.Millisecond, q.Delay())
}

func TestParseRequestStartDoesNotAllocate(t *testing.T) {
	for _, v := range []string{"t=1764921600123456", "1764921600.123", "t=bogus-and-long-0x1p30", "t=99999999999999999999"} {
		assert.Zero(t, testing.AllocsPerRun(100, func() { resilience.ParseRequestStart(v) }), v)
	}
}

func TestQueueDelayConcurrentObserversKeepTheMinimum(t *testing.T) {
	var q resilience.QueueDelay
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				q.Observe(time.Duration(1000+(i*8+g)%5000) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, time.Millisecond, q.Delay())
}

func TestParseRequestStart(t *testing.T) {
	want := time.Date(2026, 12, 5, 6, 0, 0, 123456789, time.UTC)
	sec := want.Unix()
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"t=" + strconv.FormatInt(sec, 10), time.Unix(sec, 0)},
		{strconv.FormatInt(sec, 10) + ".123", time.Unix(sec, 123e6)}, // nginx ${msec}
		{strconv.FormatInt(sec, 10) + ".123456789", want},
		{"t=" + strconv.FormatInt(want.UnixMilli(), 10), time.Unix(sec, 123e6)}, // Heroku
		{"t=" + strconv.FormatInt(want.UnixMicro(), 10), time.Unix(sec, 123456e3)},
		{" t=" + strconv.FormatInt(want.UnixNano(), 10) + " ", want},
	} {
		got, ok := resilience.ParseRequestStart(c.in)
		require.True(t, ok, c.in)
		assert.True(t, c.want.Equal(got), "%s: %v, want %v", c.in, got, c.want)
	}
	for _, bad := range []string{"", "t=", "t=-1700000000", "abc", "t=1e9", "t=0x6567", "0x1.a4p30", "1_764_921_600.5",
		"999999999", "t=99999999999999999999", "1764921600.12.3", "1764921600.", ".5", "1764921600.1234567891",
		"17649216001.5", "t=NaN", "+1764921600", "t=1764921600 5", "t=1764921600123456789012"} {
		_, ok := resilience.ParseRequestStart(bad)
		assert.False(t, ok, "%q", bad)
	}
}

// FuzzParseRequestStart: ParseRequestStart never panics, accepts only
// times between 2001 and 2286, and reads back a stamp it wrote in any unit.
func FuzzParseRequestStart(f *testing.F) {
	for _, s := range []string{"t=1764921600123456", "1764921600.123", "t=1764921600123", "t=", "t=-5", "9e9", "1764921600123456789"} {
		f.Add(s, int64(1764921600123456789))
	}
	f.Fuzz(func(t *testing.T, s string, ns int64) {
		if got, ok := resilience.ParseRequestStart(s); ok {
			if got.Unix() < 1e9 || got.Unix() >= 1e10 {
				t.Fatalf("ParseRequestStart(%q) = %v, outside 2001–2286", s, got)
			}
		}
		at := time.Unix(0, ns)
		if at.Unix() < 1e9 || at.Unix() >= 9e9 {
			return
		}
		for _, stamp := range []struct {
			v    int64
			unit time.Duration
		}{{at.Unix(), time.Second}, {at.UnixMilli(), time.Millisecond}, {at.UnixMicro(), time.Microsecond}, {at.UnixNano(), 1}} {
			got, ok := resilience.ParseRequestStart("t=" + strconv.FormatInt(stamp.v, 10))
			if !ok || !got.Equal(at.Truncate(stamp.unit)) {
				t.Fatalf("stamp %d (unit %v) of %v read as %v, %v", stamp.v, stamp.unit, at, got, ok)
			}
		}
	})
}

func ExampleQueueDelay() {
	// A server behind a proxy that stamps every request with
	// "X-Request-Start: t=<microseconds>": the handler's middleware
	// observes each request's wait before the limiter admits it...
	var queue resilience.QueueDelay
	now := time.Unix(1764921600, 0)
	for _, stamp := range []string{"t=1764921599990000", "t=1764921599995000", "t=1764921599993000"} {
		queue.ObserveStamp(stamp, now) // r.Header.Get("X-Request-Start"), time.Now()
	}
	// ...and the limiter reads the standing queue every DelayInterval:
	// resilience.AdaptiveConfig{Delay: queue.Delay, DelayTarget: 5 * time.Millisecond}.
	fmt.Println(queue.Delay())
	// Output: 5ms
}

func ExampleWithArrival() {
	// A limiter that holds the queue since a proxy's stamp and, while it
	// sheds, refuses calls that waited too long: reads (normal priority)
	// after 2× MaxWait.
	queue := func() time.Duration { return time.Second } // a standing queue
	l, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveConfig{
		Delay: queue, DelayTarget: time.Millisecond, DelayMaxRise: 0.5,
		MaxWait: 100 * time.Millisecond, Name: "api",
	})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	// The middleware puts each request's stamp in its context:
	// resilience.WithArrival(r.Context(), start), start from
	// resilience.ParseRequestStart(r.Header.Get("X-Request-Start")).
	for _, waited := range []time.Duration{0, time.Second} {
		ctx := resilience.WithArrival(context.Background(), time.Now().Add(-waited))
		p, err := l.Acquire(ctx, resilience.PriorityNormal)
		if err != nil {
			fmt.Printf("waited %v: %v\n", waited, err)
			continue
		}
		fmt.Printf("waited %v: admitted\n", waited)
		p.Release(nil)
	}
	// Output:
	// waited 0s: admitted
	// waited 1s: resilience: overloaded, normal priority call refused (api)
}
