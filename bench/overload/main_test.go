package main

import (
	"testing"
)

// drop's calibration (defaultGarbage) assumes its nodes reach the heap:
// 3,531 bytes are 55 allocations of 64 bytes, 3,520 bytes, which escape
// analysis must not move to the stack.
func TestDropAllocates(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { drop(defaultGarbage) })
	if want := float64(defaultGarbage / 64); allocs != want {
		t.Fatalf("drop(%d) made %.0f allocations, want %.0f", defaultGarbage, allocs, want)
	}
	if drop(0); garbageSink.Load() != nil {
		t.Fatal("drop(0) left a node")
	}
}
