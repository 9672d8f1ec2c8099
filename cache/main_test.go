package cache_test

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quiet drops the cache's log lines (expected warnings in failure tests).
var quiet = slog.New(slog.DiscardHandler)
