// Package cpuburn spends a fixed amount of CPU work: chained SHA-256
// rounds, counted rather than timed, so that a request's cost is the same
// work whatever the core's speed at the moment. The overload benchmark's
// servers (bench/overload and servio's -bench-cpu-cost) use it to give
// each request a cost; one calibration per core (Calibrate), passed to
// every server of a comparison, keeps their work per request equal.
package cpuburn

import (
	"crypto/sha256"
	"runtime"
	"time"
)

// Rounds computes n chained SHA-256 hashes of 32 bytes. It never yields:
// on one P nothing else runs until it returns or the runtime preempts it
// (after 10 ms).
func Rounds(n int) {
	var h [32]byte
	for range n {
		h = sha256.Sum256(h[:])
	}
	runtime.KeepAlive(h)
}

// Calibrate returns the rounds per millisecond of the CPU the calling
// goroutine runs on: the fastest of the 2,000-round batches timed over
// 200 ms. Other work on the core only ever makes a batch slower, and
// 200 ms outlasts a short dip (20 batches, 3 ms, once read 18 % low right
// after a server on the core stopped, 5 Dec 2026).
func Calibrate() float64 {
	best := time.Duration(1 << 62)
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		t0 := time.Now()
		Rounds(2000)
		best = min(best, time.Since(t0))
	}
	return 2000 / (float64(best) / float64(time.Millisecond))
}

// For returns the rounds that d of work takes at perMS rounds per
// millisecond (rounded down; 0 for d ≤ 0).
func For(d time.Duration, perMS float64) int {
	if d <= 0 {
		return 0
	}
	return int(perMS * float64(d) / float64(time.Millisecond))
}
