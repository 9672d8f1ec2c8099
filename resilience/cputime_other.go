//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package resilience

import "time"

// ProcessCPUTime returns a func that reports the CPU time (user + system)
// this process has used since it started, from getrusage(2): the CPUTime
// to give an AdaptiveLimiter whose Delay is SchedulerDelay, so a run-queue
// delay sheds only while the CPU is really short. It returns nil on
// systems without getrusage, as this one (then only the delay counts).
func ProcessCPUTime() func() time.Duration { return nil }
