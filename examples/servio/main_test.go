package main

import (
	"testing"

	"github.com/servio/perfkit/internal/testenv"
)

// TestMain fails the package on leaked goroutines, waiting testenv.LeakWait
// for slow ones to end.
func TestMain(m *testing.M) { testenv.VerifyTestMain(m) }
