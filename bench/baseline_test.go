package bench

import (
	"testing"

	"github.com/servio/perfkit/internal/testenv"
)

// BenchmarkFreePort keeps the module's benchmark build honest until the
// package benchmarks land beside it.
func BenchmarkFreePort(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = testenv.FreePort(b)
	}
}
