package benchcpu

import (
	"runtime"
	"testing"
	"time"
)

func TestCPUClocksAdvance(t *testing.T) {
	runtime.LockOSThread() // Thread is per OS thread: stay on one
	defer runtime.UnlockOSThread()
	p0, t0 := Process(), Thread()
	for deadline := time.Now().Add(20 * time.Millisecond); time.Now().Before(deadline); {
	}
	if Process() <= p0 || Thread() < t0 {
		t.Fatalf("CPU clocks did not advance: process %v -> %v, thread %v -> %v", p0, Process(), t0, Thread())
	}
}

func ExampleLoop() {
	testing.Benchmark(func(b *testing.B) {
		Loop(b, func() { _ = time.Now() })
	})
	// Output:
}
