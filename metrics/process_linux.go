package metrics

import (
	"fmt"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// processMetricsSupported reports whether startProcessMetrics works here.
const processMetricsSupported = true

// newProcessReader returns a reader of this process's resources (CPU
// times from getrusage, memory and descriptors from /proc/self through
// prometheus/procfs, as the Prometheus client's process collector reads
// them) and the process's start time.
func newProcessReader() (func() (processStats, error), time.Time, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("metrics: process metrics: %w", err)
	}
	self, err := fs.Self()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("metrics: process metrics: %w", err)
	}
	st, err := self.Stat()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("metrics: process metrics: %w", err)
	}
	startSec, err := st.StartTime()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("metrics: process metrics: %w", err)
	}
	start := time.Unix(0, int64(startSec*1e9))
	read := func() (processStats, error) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return processStats{}, fmt.Errorf("metrics: getrusage: %w", err)
		}
		st, err := self.Stat()
		if err != nil {
			return processStats{}, fmt.Errorf("metrics: process stat: %w", err)
		}
		fds, err := self.FileDescriptorsLen()
		if err != nil {
			return processStats{}, fmt.Errorf("metrics: process file descriptors: %w", err)
		}
		return processStats{
			user:    time.Duration(ru.Utime.Nano()).Seconds(),
			system:  time.Duration(ru.Stime.Nano()).Seconds(),
			rss:     int64(st.ResidentMemory()),
			virtual: int64(st.VirtualMemory()),
			fds:     int64(fds),
		}, nil
	}
	return read, start, nil
}
