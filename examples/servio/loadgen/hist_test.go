package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * 100 * time.Microsecond) // 0.1 ms … 1 s, uniform
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Millisecond},
		{0.95, 950 * time.Millisecond},
		{0.99, 990 * time.Millisecond},
		{1, time.Second},
	}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		assert.InEpsilon(t, float64(tt.want), float64(got), 0.01, "p%v: want ≈%v, got %v", tt.q*100, tt.want, got)
	}
	assert.Equal(t, uint64(10000), h.n)
	assert.InEpsilon(t, float64(500*time.Millisecond), float64(h.mean()), 0.01)
}

func TestHistogramBucketsMonotonic(t *testing.T) {
	t.Parallel()
	prev := -1
	for us := time.Duration(0); us < 10*time.Second; us = us*21/20 + time.Microsecond {
		b := bucketOf(us)
		assert.GreaterOrEqual(t, b, prev, "bucket of %v went backwards", us)
		assert.GreaterOrEqual(t, bucketUpper(b), us.Truncate(time.Microsecond), "upper bound of %v's bucket below it", us)
		prev = b
	}
}

func TestHistogramMerge(t *testing.T) {
	t.Parallel()
	var a, b histogram
	a.record(time.Millisecond)
	b.record(3 * time.Millisecond)
	a.merge(&b)
	assert.Equal(t, uint64(2), a.n)
	assert.Equal(t, 3*time.Millisecond, a.max)
	assert.Equal(t, 2*time.Millisecond, a.mean())
}
