package bench

import (
	"context"
	"testing"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/priority"

	"github.com/servio/perfkit/internal/benchcpu"
	"github.com/servio/perfkit/resilience"
)

// BenchmarkAdaptiveLimiterAdmit measures admitting and releasing a call
// that finds room, without and with priorities: perfkit's AdaptiveLimiter
// (priorities built in) against failsafe-go's adaptivelimiter and its
// prioritized form. The limits are fixed high so every call is admitted.
func BenchmarkAdaptiveLimiterAdmit(b *testing.B) {
	ctx := context.Background()
	pk, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveConfig{InitialLimit: 1000, MinLimit: 1000, MaxLimit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer pk.Close()
	fs := adaptivelimiter.NewBuilder[any]().WithLimits(1000, 1000, 1000).Build()
	fsPrio := adaptivelimiter.NewBuilder[any]().WithLimits(1000, 1000, 1000).BuildPrioritized(adaptivelimiter.NewPrioritizer())

	perfkit := func(p resilience.Priority) func() {
		return func() {
			pm, err := pk.Acquire(ctx, p)
			if err != nil {
				b.Fatal(err)
			}
			pm.Release(nil)
		}
	}
	cases := []struct {
		name string
		body func()
	}{
		{"perfkit", perfkit(resilience.PriorityNormal)},
		{"perfkit-high", perfkit(resilience.PriorityHigh)},
		{"failsafe-go", func() {
			pm, err := fs.AcquirePermit(ctx)
			if err != nil {
				b.Fatal(err)
			}
			pm.Record()
		}},
		{"failsafe-go-high", func() {
			pm, err := fsPrio.AcquirePermitWithPriority(ctx, priority.High)
			if err != nil {
				b.Fatal(err)
			}
			pm.Record()
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { benchcpu.Loop(b, c.body) })
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.body()
				}
			})
		})
	}
}
