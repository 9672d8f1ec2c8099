package health

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// CPULimits are optional thresholds of the CPU check in percent of all CPUs
// (0–100); zero means none.
type CPULimits struct {
	WarnPercent, FailPercent float64
}

// CPU returns a check of the process's CPU usage: utilization, the user and
// system CPU time the process used since the previous run (or since CPU was
// called, for the first run) over the wall time between them, in percent of
// runtime.NumCPU() CPUs (getrusage). On platforms without getrusage the
// check warns that it cannot measure. ComponentType is "system".
func CPU(limits CPULimits) CheckFunc {
	var (
		mu       sync.Mutex
		lastCPU  time.Duration
		lastWall = time.Now()
	)
	lastCPU, _ = processCPU()
	ncpu := float64(runtime.NumCPU())
	return func(context.Context) Result {
		res := Result{ComponentType: "system"}
		cpu, err := processCPU()
		if err != nil {
			res.Status, res.Output = StatusWarn, err.Error()
			return res
		}
		now := time.Now()
		mu.Lock()
		dCPU, dWall := cpu-lastCPU, now.Sub(lastWall)
		lastCPU, lastWall = cpu, now
		mu.Unlock()
		pct := 0.0
		if dWall > 0 {
			pct = float64(dCPU) / float64(dWall) / ncpu * 100
		}
		// CPU time and wall time are read a moment apart and at different
		// granularities: over a short interval the ratio can exceed 100.
		pct = float64(int(min(pct, 100)*100)) / 100
		res.Measurements = []Measurement{{Name: "utilization", Value: pct, Unit: "percent"}}
		switch {
		case limits.FailPercent > 0 && pct >= limits.FailPercent:
			res.Status, res.Output = StatusFail, fmt.Sprintf("cpu %.2f%% at or over fail limit %.2f%%", pct, limits.FailPercent)
		case limits.WarnPercent > 0 && pct >= limits.WarnPercent:
			res.Status, res.Output = StatusWarn, fmt.Sprintf("cpu %.2f%% at or over warn limit %.2f%%", pct, limits.WarnPercent)
		}
		return res
	}
}
