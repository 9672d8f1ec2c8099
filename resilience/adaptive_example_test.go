package resilience_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/servio/perfkit/resilience"
)

// A server admits each request through an AdaptiveLimiter and answers 503
// with Retry-After when it is refused; health probes are critical and
// always admitted.
func ExampleAdaptiveLimiter() {
	lim, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveConfig{InitialLimit: 4, MinLimit: 4, MaxLimit: 4})
	if err != nil {
		panic(err)
	}
	defer lim.Close()
	ctx := context.Background()

	// Two low-priority exports fill the half of the limit they may use.
	a, _ := lim.Acquire(ctx, resilience.PriorityLow)
	b, _ := lim.Acquire(ctx, resilience.PriorityLow)
	_, err = lim.Acquire(ctx, resilience.PriorityLow)
	var oe *resilience.OverloadError
	if errors.As(err, &oe) {
		fmt.Println("export: 503, Retry-After:", oe.RetryAfter())
	}
	// A read (normal) still gets in, and so does a health probe.
	read, err := lim.Acquire(ctx, resilience.PriorityNormal)
	fmt.Println("read admitted:", err == nil)
	probe, err := lim.Acquire(ctx, resilience.PriorityCritical)
	fmt.Println("probe admitted:", err == nil, "in flight:", lim.InFlight())

	for _, p := range []resilience.Permit{a, b, read, probe} {
		p.Release(nil) // pass the call's error: its latency feeds the limit
	}
	fmt.Println("in flight:", lim.InFlight())
	// Output:
	// export: 503, Retry-After: 1s
	// read admitted: true
	// probe admitted: true in flight: 4
	// in flight: 0
}

// Adaptive wraps a call to a dependency; the priority comes from the
// context.
func ExampleAdaptive() {
	lim, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveConfig{})
	if err != nil {
		panic(err)
	}
	defer lim.Close()
	lookup := resilience.Adaptive1(lim, func(_ context.Context, sku string) (int, error) {
		return len(sku), nil // the real call
	})
	ctx := resilience.WithPriority(context.Background(), resilience.PriorityHigh)
	n, err := lookup(ctx, "PIZZA-42")
	fmt.Println(n, err)
	// Output: 8 <nil>
}
