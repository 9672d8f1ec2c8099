package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain is goleak.VerifyTestMain with a longer wait (as in metrics):
// goleak gives goroutines about 0.4 s to end, while on a loaded CI machine
// closed connections' goroutines can take longer to be scheduled, and
// go-redis's dial prober, started by the Redis outage test, notices its
// client's Close only after its 1 s sleep. A goroutine that never ends
// still fails.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := findLeaks(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// findLeaks is goleak.Find retried for up to 10 s.
func findLeaks() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := goleak.Find()
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
