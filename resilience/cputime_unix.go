//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package resilience

import (
	"syscall"
	"time"
)

// ProcessCPUTime returns a func that reports the CPU time (user + system)
// this process has used since it started, from getrusage(2): the CPUTime
// to give an AdaptiveLimiter whose Delay is SchedulerDelay, so a run-queue
// delay sheds only while the CPU is really short. It returns nil on
// systems without getrusage (then only the delay counts). Each call is one
// system call (about a microsecond); the limiter makes one per
// DelayInterval, not one per request.
func ProcessCPUTime() func() time.Duration {
	return func() time.Duration {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
}
