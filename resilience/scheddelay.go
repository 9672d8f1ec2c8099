package resilience

import (
	"runtime/metrics"
	"sync"
	"time"
)

const schedLatencies = "/sched/latencies:seconds"

// SchedulerDelay returns a func that reports how long goroutines of this
// process waited in the Go scheduler's run queue before running: the 90th
// percentile of the waits recorded since its previous call (the runtime
// metric /sched/latencies:seconds), or 0 when none were. It is the Delay
// to give an AdaptiveLimiter in front of a server's handlers: when the
// server is past its CPU capacity, request goroutines queue there before
// their handler (and Acquire) runs. The func is safe for concurrent use;
// each call reads the runtime's metrics (a few microseconds).
func SchedulerDelay() func() time.Duration {
	var (
		mu   sync.Mutex
		prev []uint64
		s    = []metrics.Sample{{Name: schedLatencies}}
	)
	return func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindFloat64Histogram {
			return 0
		}
		h := s[0].Value.Float64Histogram()
		if len(prev) != len(h.Counts) {
			prev = make([]uint64, len(h.Counts))
			copy(prev, h.Counts)
			return 0
		}
		return histDeltaQuantile(h.Counts, prev, h.Buckets, 0.9)
	}
}

// histDeltaQuantile returns the q-quantile (the upper bound of its
// bucket, in seconds as a Duration) of the counts added since prev, and
// makes prev the current counts. Buckets has one boundary more than
// counts; an infinite upper bound reports the bucket's lower bound.
func histDeltaQuantile(counts, prev []uint64, buckets []float64, q float64) time.Duration {
	var total uint64
	for i, c := range counts {
		total += c - prev[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total)) + 1
	var seen uint64
	var out time.Duration
	found := false
	for i, c := range counts {
		seen += c - prev[i]
		prev[i] = c
		if !found && seen >= rank {
			found = true
			upper := buckets[i+1]
			if upper > 1e9 { // +Inf
				upper = buckets[i]
			}
			out = time.Duration(upper * float64(time.Second))
		}
	}
	return out
}
