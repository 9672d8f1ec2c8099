package main

import (
	"net/http"

	"github.com/servio/perfkit/internal/cpuburn"
)

// benchCost returns the wrapper that makes each request pay
// -bench-cpu-cost of CPU work before its handler (inside the adaptive
// limiter's admission, as a handler's own work would be), or one that
// changes nothing when the cost is off. routes applies it to every route
// the limiter guards; the probes, /health/metrics and the export never
// pay it.
// With -bench-rounds-per-ms 0 it calibrates on the core first (200 ms).
func (a *App) benchCost() func(http.HandlerFunc) http.HandlerFunc {
	if a.cfg.BenchCPUCost <= 0 {
		return func(h http.HandlerFunc) http.HandlerFunc { return h }
	}
	perMS := a.cfg.BenchRoundsPerMS
	if perMS == 0 {
		perMS = cpuburn.Calibrate()
	}
	n := cpuburn.For(a.cfg.BenchCPUCost, perMS)
	a.log.Info("benchmark CPU cost per request", "cost", a.cfg.BenchCPUCost, "rounds_per_ms", perMS, "rounds", n)
	return func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			cpuburn.Rounds(n)
			a.benchCostPaid.Add(1)
			h(w, r)
		}
	}
}
