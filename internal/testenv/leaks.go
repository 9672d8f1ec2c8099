package testenv

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// LeakWait is how long FindLeaks waits for goroutines to end. goleak itself
// waits about 0.4 s, while on a loaded 2-core CI machine the goroutines of
// closed connections (HTTP, gRPC) can take longer to be scheduled, and
// go-redis's dial prober, started once a client's dials failed PoolSize
// times (the Redis outage tests), notices its client's Close only after its
// 1 s sleep. A goroutine that never ends still fails.
const LeakWait = 15 * time.Second

// VerifyTestMain is goleak.VerifyTestMain with FindLeaks' longer wait:
// after a successful run, leaked goroutines fail the package.
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := FindLeaks(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// FindLeaks is goleak.Find retried for up to LeakWait.
func FindLeaks(opts ...goleak.Option) error {
	deadline := time.Now().Add(LeakWait)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
