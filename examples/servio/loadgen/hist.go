package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram is an HDR-style log-linear latency histogram: values from 1 µs to
// about 73 minutes, each recorded to within 1/subBuckets (≈0.8%) of its
// value, in fixed memory. It is not safe for concurrent use; each worker
// keeps its own and they are merged.
type histogram struct {
	counts [histExponents * subBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	subBits       = 7
	subBuckets    = 1 << subBits // linear sub-buckets per power of two
	histExponents = 32           // powers of two above the first 128 µs
)

func bucketOf(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	if us < subBuckets {
		return int(us)
	}
	exp := bits.Len64(us) - subBits // ≥ 1
	if exp >= histExponents {
		return len(histogram{}.counts) - 1
	}
	sub := us >> uint(exp-1) // in [subBuckets, 2*subBuckets)
	return exp*subBuckets + int(sub-subBuckets)
}

// bucketUpper is the largest duration that falls in bucket i.
func bucketUpper(i int) time.Duration {
	exp, sub := i/subBuckets, uint64(i%subBuckets)
	if exp == 0 {
		return time.Duration(sub) * time.Microsecond
	}
	us := ((sub+subBuckets+1)<<uint(exp-1) - 1)
	return time.Duration(us) * time.Microsecond
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += d
	if d > h.max {
		h.max = d
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the smallest bucket bound below which a fraction q of the
// recorded values fall (the max for q = 1).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketUpper(i), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
