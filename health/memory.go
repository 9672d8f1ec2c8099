package health

import (
	"context"
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
)

// MemoryLimits are optional thresholds of the Memory check; zero means none.
type MemoryLimits struct {
	WarnRSS, FailRSS   uint64 // resident set size in bytes
	WarnHeap, FailHeap uint64 // live heap objects in bytes
}

// runtime/metrics names read by Memory.
var memorySamples = [...]string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes",
	"/sched/goroutines:goroutines",
}

// Memory returns a check of the process's memory: heap (bytes of heap
// objects), runtimeTotal (bytes mapped by the Go runtime), goroutines, and
// rss (resident set size from /proc/self/statm, where there is one). It
// reads runtime/metrics, which does not stop the world as
// runtime.ReadMemStats does. ComponentType is "system".
func Memory(limits MemoryLimits) CheckFunc {
	return func(context.Context) Result {
		s := make([]metrics.Sample, len(memorySamples))
		for i, name := range memorySamples {
			s[i].Name = name
		}
		metrics.Read(s)
		heap := sampleUint(s[0])
		res := Result{
			ComponentType: "system",
			Measurements: []Measurement{
				{Name: "heap", Value: heap, Unit: "bytes"},
				{Name: "runtimeTotal", Value: sampleUint(s[1]), Unit: "bytes"},
				{Name: "goroutines", Value: sampleUint(s[2])},
			},
		}
		rss, ok := readRSS()
		if ok {
			res.Measurements = append(res.Measurements, Measurement{Name: "rss", Value: rss, Unit: "bytes"})
		}
		res.Status, res.Output = limitStatus(heap, limits.WarnHeap, limits.FailHeap, "heap")
		if ok {
			st, out := limitStatus(rss, limits.WarnRSS, limits.FailRSS, "rss")
			if st > res.Status {
				res.Status, res.Output = st, out
			}
		}
		return res
	}
}

func sampleUint(s metrics.Sample) uint64 {
	if s.Value.Kind() == metrics.KindUint64 {
		return s.Value.Uint64()
	}
	return 0
}

// limitStatus compares v with its warn and fail limits (zero: none).
func limitStatus(v, warn, fail uint64, what string) (Status, string) {
	switch {
	case fail > 0 && v >= fail:
		return StatusFail, fmt.Sprintf("%s %d bytes at or over fail limit %d", what, v, fail)
	case warn > 0 && v >= warn:
		return StatusWarn, fmt.Sprintf("%s %d bytes at or over warn limit %d", what, v, warn)
	}
	return StatusPass, ""
}

// readRSS returns the resident set size from /proc/self/statm.
func readRSS() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	return parseStatm(string(b), uint64(os.Getpagesize()))
}

// parseStatm reads the second field (resident pages) of /proc/self/statm.
func parseStatm(s string, pageSize uint64) (uint64, bool) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || pages > 1<<52/max(pageSize, 1) {
		return 0, false
	}
	return pages * pageSize, true
}
