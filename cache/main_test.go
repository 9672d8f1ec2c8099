package cache_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
)

// TestMain fails the package on leaked goroutines, waiting
// testenv.LeakWait for them: go-redis's dial prober, started by the
// outage tests' failed dials, sees its client's Close only after a 1 s
// sleep (plain goleak.VerifyTestMain waits about 0.4 s).
func TestMain(m *testing.M) {
	testenv.VerifyTestMain(m)
}

// quiet drops the cache's log lines (expected warnings in failure tests).
var quiet = slog.New(slog.DiscardHandler)

// settle bounds how long a test waits for something asynchronous (a
// pub/sub message, a background refresh, an expiry). CI runs every
// package's tests at once on 2 cores under -race, where a goroutine can be
// descheduled for a second: the bound is generous because it is only hit
// when the behaviour is broken; tests poll, so they pass as soon as it
// holds.
const settle = 10 * time.Second
