// Package benchcpu reports CPU time per op beside wall time in perfkit's
// benchmarks ("cpu-ns/op"). On a small machine shared with other jobs wall
// time swings with preemption; CPU time mostly does not, so ratios of
// cpu-ns/op are the steadier comparison. It is internal: used only by
// benchmarks of this module and of the bench/ module.
package benchcpu

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Process returns the CPU time (user + system, GC included) the process
// has used.
func Process() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// Thread returns the CPU time the calling OS thread has used (Linux
// RUSAGE_THREAD; elsewhere the whole process's).
func Thread() time.Duration {
	if runtime.GOOS == "linux" {
		return rusage(1) // RUSAGE_THREAD
	}
	return Process()
}

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Loop runs body with b.Loop, reporting allocations and the process's CPU
// time per op.
func Loop(b *testing.B, body func()) {
	b.Helper()
	loop(b, Process, body)
}

// ThreadLoop is Loop on one locked OS thread, reporting that thread's CPU
// time per op: other goroutines' work (exporters, GC workers) is left out.
func ThreadLoop(b *testing.B, body func()) {
	b.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	loop(b, Thread, body)
}

func loop(b *testing.B, cpu func() time.Duration, body func()) {
	b.ReportAllocs()
	start, n := cpu(), 0
	for b.Loop() {
		body()
		n++
	}
	if n > 0 {
		b.ReportMetric(float64(cpu()-start)/float64(n), "cpu-ns/op")
	}
}
