package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestJudgeSoak(t *testing.T) {
	t.Parallel()
	start := runtimeReading{goroutines: 20, heap: 10 << 20}
	ok := &report{}
	tests := []struct {
		name string
		end  runtimeReading
		rep  *report
		bad  bool
	}{
		{"steady", runtimeReading{goroutines: 22, heap: 12 << 20}, ok, false},
		{"caches filled", runtimeReading{goroutines: 20, heap: 30 << 20}, ok, false},
		{"goroutine leak", runtimeReading{goroutines: 31, heap: 10 << 20}, ok, true},
		{"heap leak", runtimeReading{goroutines: 20, heap: 40 << 20}, ok, true},
		{"errors", runtimeReading{goroutines: 20, heap: 10 << 20}, &report{ErrorRate: 0.001}, true},
	}
	for _, tt := range tests {
		err := judgeSoak(start, tt.end, tt.rep)
		assert.Equal(t, tt.bad, err != nil, "%s: %v", tt.name, err)
	}
}
