package metrics

import (
	"cmp"
	"math"
	"slices"
	"strconv"
)

// span is one histogram bucket: n observations in [lo, hi].
type span struct {
	lo, hi float64
	n      uint64
}

// histPoint is one histogram data point as a StatsD exporter sees it: the
// interval's bucket counts, sum, and (when recorded) min and max.
type histPoint struct {
	count        uint64
	sum          float64
	min, max     float64
	minOK, maxOK bool
	spans        []span // ascending
}

// valueCount is n observations sent at value v.
type valueCount struct {
	v float64
	n uint64
}

// explicitSpans turns explicit bucket bounds and counts (counts[i] in
// (bounds[i-1], bounds[i]], the last above every bound) into spans.
func explicitSpans(bounds []float64, counts []uint64) []span {
	out := make([]span, len(counts))
	for i, c := range counts {
		lo, hi := math.Inf(-1), math.Inf(1)
		if i > 0 {
			lo = bounds[i-1]
		}
		if i < len(bounds) {
			hi = bounds[i]
		}
		out[i] = span{lo: lo, hi: hi, n: c}
	}
	return out
}

// exponentialSpans turns a base-2 exponential histogram into spans: bucket
// index i covers (base^i, base^(i+1)] with base = 2^(2^-scale), negative
// buckets mirror it, and the zero bucket is [-threshold, threshold].
func exponentialSpans(scale int32, zero uint64, threshold float64, posOff int32, pos []uint64, negOff int32, neg []uint64) []span {
	bound := func(i int) float64 { return math.Exp2(float64(i) * math.Exp2(-float64(scale))) }
	out := make([]span, 0, len(neg)+len(pos)+1)
	for j := len(neg) - 1; j >= 0; j-- {
		i := int(negOff) + j
		out = append(out, span{lo: -bound(i + 1), hi: -bound(i), n: neg[j]})
	}
	out = append(out, span{lo: -threshold, hi: threshold, n: zero})
	for j, c := range pos {
		i := int(posOff) + j
		out = append(out, span{lo: bound(i), hi: bound(i + 1), n: c})
	}
	return out
}

// scale multiplies every value of h by f > 0 (a unit change).
func (h *histPoint) scale(f float64) {
	if f == 1 {
		return
	}
	h.sum *= f
	h.min *= f
	h.max *= f
	for i := range h.spans {
		h.spans[i].lo *= f
		h.spans[i].hi *= f
	}
}

// mayBeNegative reports whether h may hold a negative observation: its
// min, or without one, its lowest non-empty bucket's lower bound.
func (h *histPoint) mayBeNegative() bool {
	if h.minOK {
		return h.min < 0
	}
	for _, s := range h.spans {
		if s.n > 0 {
			return s.lo < 0
		}
	}
	return false
}

// split returns the observations sent at their exact values (min, and max
// when there are two or more) and the non-empty buckets holding the rest,
// clamped to [min, max] and made finite.
func (h *histPoint) split() (pinned []float64, rest []span) {
	for _, s := range h.spans {
		if s.n == 0 {
			continue
		}
		if h.minOK {
			s.lo, s.hi = max(s.lo, h.min), max(s.hi, h.min)
		}
		if h.maxOK {
			s.lo, s.hi = min(s.lo, h.max), min(s.hi, h.max)
		}
		switch {
		case math.IsInf(s.lo, 0) && math.IsInf(s.hi, 0):
			s.lo, s.hi = 0, 0
		case math.IsInf(s.lo, 0):
			s.lo = s.hi
		case math.IsInf(s.hi, 0):
			s.hi = s.lo
		}
		rest = append(rest, s)
	}
	if len(rest) == 0 {
		return nil, nil
	}
	if h.minOK {
		rest[0].n--
		pinned = append(pinned, h.min)
	}
	if h.maxOK && h.count >= 2 {
		for i := len(rest) - 1; i >= 0; i-- {
			if rest[i].n > 0 {
				rest[i].n--
				pinned = append(pinned, h.max)
				break
			}
		}
	}
	return pinned, rest
}

// spread returns one value per span, each at the same fraction t of its
// span, with t chosen so that fixed + Σ mult[i]·value[i] = target (clamped
// to the spans when no t in [0, 1] reaches it).
func spread(rest []span, mult []uint64, fixed, target float64) []float64 {
	var lo, width float64
	for i, s := range rest {
		lo += float64(mult[i]) * s.lo
		width += float64(mult[i]) * (s.hi - s.lo)
	}
	t := 0.5
	if width > 0 {
		t = (target - fixed - lo) / width
	}
	if !(t >= 0) { // negative or NaN
		t = 0
	}
	t = min(t, 1)
	out := make([]float64, len(rest))
	for i, s := range rest {
		out[i] = s.lo + t*(s.hi-s.lo)
	}
	return out
}

func sumOf(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		s += v
	}
	return s
}

// weighted returns every observation of h as a value and a count: min and
// max alone, then one value per non-empty bucket, adding up to h.sum.
func (h *histPoint) weighted() []valueCount {
	pinned, rest := h.split()
	mult := make([]uint64, len(rest))
	for i, s := range rest {
		mult[i] = s.n
	}
	return assemble(pinned, rest, mult, spread(rest, mult, sumOf(pinned), h.sum))
}

// lines returns the timer lines for h, at most maxLines of them, with the
// sample rate they share ("" for 1). Up to maxLines observations, each is a
// line (weighted's values). Beyond, the observations in ascending order are
// cut into maxLines slices of count/maxLines each (a slice may take part of
// a bucket) and each line is its slice's mean: the lines' mean is h's mean.
func (h *histPoint) lines(maxLines int) ([]valueCount, string) {
	w := h.weighted()
	if h.count <= uint64(maxLines) {
		return w, ""
	}
	slices.SortStableFunc(w, func(a, b valueCount) int { return cmp.Compare(a.v, b.v) })
	size := float64(h.count) / float64(maxLines)
	out := make([]valueCount, 0, maxLines)
	need, acc := size, 0.0
	for _, s := range w {
		left := float64(s.n)
		for left > 0 && len(out) < maxLines {
			take := min(left, need)
			acc += take * s.v
			left -= take
			need -= take
			if need <= size*1e-9 {
				out = append(out, valueCount{v: acc / size, n: 1})
				need, acc = size, 0
			}
		}
	}
	if len(out) < maxLines && need < size { // the last slice, short by rounding
		out = append(out, valueCount{v: acc / (size - need), n: 1})
	}
	return out, strconv.FormatFloat(float64(maxLines)/float64(h.count), 'g', -1, 64)
}

func assemble(pinned []float64, rest []span, mult []uint64, vals []float64) []valueCount {
	out := make([]valueCount, 0, len(pinned)+len(rest))
	for _, v := range pinned {
		out = append(out, valueCount{v: v, n: 1})
	}
	for i := range rest {
		if mult[i] > 0 {
			out = append(out, valueCount{v: vals[i], n: mult[i]})
		}
	}
	return out
}
