package ratelimit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/servio/perfkit/ratelimit"
	"pgregory.net/rapid"
)

// gcraModel is the reference a local limiter is checked against: GCRA in
// its textbook form, one theoretical arrival time (TAT) per key, on a fake
// clock of nanoseconds.
type gcraModel struct {
	em, burst int64 // emission interval (ns), burst
	tat       map[string]int64
}

func newModel(l ratelimit.Limit) *gcraModel {
	b := l.Burst
	if b == 0 {
		b = l.Rate
	}
	return &gcraModel{em: int64(l.Period / time.Duration(l.Rate)), burst: int64(b), tat: map[string]int64{}}
}

// judge returns what a decision of n events at t would say, and the TAT to
// store if it is allowed.
func (m *gcraModel) judge(key string, t, n int64) (allowed bool, retry, newTat int64) {
	tat := max(m.tat[key], t)
	newTat = tat + n*m.em
	if allowAt := newTat - m.burst*m.em; t < allowAt {
		return false, allowAt - t, 0
	}
	return true, 0, newTat
}

// history is what one key was admitted: (time, events) in order. The bound
// checked on it needs no knowledge of the algorithm's state.
type admit struct{ t, n int64 }

// TestLocalStateMachine drives local limiters (one tier, and an atomic
// chain of two) with random interleavings of decisions of 1..burst events
// on a few keys, clock advances, resets and refunds of the last decision,
// and checks after every step:
//   - each decision agrees with the GCRA model (allowed, and Retry-After to
//     the nanosecond), the chain with all tiers' models at once
//     (all-or-nothing, the binding tier's Retry-After);
//   - never more than the limit admitted: in any closed interval [s, t] of
//     a key's history (since its last reset) at most burst + ⌊(t−s)/T⌋
//     events, for every tier;
//   - Retry-After is never earlier than allowed: one nanosecond before it
//     the same request is still denied, and at it the request is allowed.
func TestLocalStateMachine(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		limA := ratelimit.Limit{Rate: rapid.IntRange(1, 6).Draw(rt, "rateA"), Period: time.Duration(rapid.IntRange(1, 60).Draw(rt, "periodA")) * time.Second,
			Burst: rapid.IntRange(0, 5).Draw(rt, "burstA")}
		limB := ratelimit.Limit{Rate: rapid.IntRange(1, 6).Draw(rt, "rateB"), Period: time.Duration(rapid.IntRange(1, 60).Draw(rt, "periodB")) * time.Second,
			Burst: rapid.IntRange(0, 5).Draw(rt, "burstB")}
		chained := rapid.Bool().Draw(rt, "chain")
		g, err := ratelimit.NewGroup(ratelimit.Config{})
		if err != nil {
			rt.Fatal(err)
		}
		tiers := []ratelimit.Tier{{Name: "a", Limit: limA}}
		if chained {
			tiers = append(tiers, ratelimit.Tier{Name: "b", Limit: limB})
		}
		l, err := g.Limiter(tiers...)
		if err != nil {
			rt.Fatal(err)
		}
		models := []*gcraModel{newModel(limA)}
		if chained {
			models = append(models, newModel(limB))
		}
		maxN := models[0].burst
		for _, m := range models {
			maxN = min(maxN, m.burst)
		}
		base := time.Now()
		var now int64
		hist := map[string][]admit{}
		last := map[string]int64{} // events of the key's last decision, if allowed and not refunded
		keys := []string{"k1", "k2", "k3"}

		decide := func(rt *rapid.T, key string, n int64) (ratelimit.Result, bool, int64) {
			r, err := ratelimit.AllowAt(l, key, base.Add(time.Duration(now)), int(n))
			if err != nil {
				rt.Fatalf("AllowAt(%s, %d): %v", key, n, err)
			}
			want, retry, bindRetry := true, int64(0), int64(-1)
			var tats []int64
			for _, m := range models {
				ok, rtry, nt := m.judge(key, now, n)
				want = want && ok
				retry = max(retry, rtry)
				tats = append(tats, nt)
				if !ok && rtry > bindRetry {
					bindRetry = rtry
				}
			}
			if r.Allowed != want {
				rt.Fatalf("t=%d key %s n=%d: allowed %v, model says %v (result %+v)", now, key, n, r.Allowed, want, r)
			}
			if !want && int64(r.RetryAfter) != retry {
				rt.Fatalf("t=%d key %s n=%d: Retry-After %v, model says %v", now, key, n, r.RetryAfter, time.Duration(retry))
			}
			if want {
				for i, m := range models {
					m.tat[key] = tats[i]
				}
			}
			return r, want, retry
		}

		rt.Repeat(map[string]func(*rapid.T){
			"allow": func(rt *rapid.T) {
				key := rapid.SampledFrom(keys).Draw(rt, "key")
				n := int64(rapid.IntRange(1, int(maxN)).Draw(rt, "n"))
				_, ok, retry := decide(rt, key, n)
				if ok {
					hist[key] = append(hist[key], admit{now, n})
					last[key] = n
					return
				}
				delete(last, key)
				// Retry-After is exact: a nanosecond before, still denied
				// (the model, which agreed so far, says what the limiter
				// would); at it, allowed
				for _, m := range models {
					if ok, _, _ := m.judge(key, now+retry-1, n); !ok {
						return
					}
				}
				if retry > 0 {
					rt.Fatalf("t=%d key %s n=%d: allowed already 1ns before Retry-After %v", now, key, n, time.Duration(retry))
				}
			},
			"retry": func(rt *rapid.T) {
				// a denied client that comes back exactly at Retry-After
				key := rapid.SampledFrom(keys).Draw(rt, "key")
				n := int64(rapid.IntRange(1, int(maxN)).Draw(rt, "n"))
				r, ok, retry := decide(rt, key, n)
				if ok {
					hist[key] = append(hist[key], admit{now, n})
					last[key] = n
					return
				}
				delete(last, key)
				if retry > 1 {
					// one nanosecond early: still denied
					now += retry - 1
					if r1, ok1, _ := decide(rt, key, n); ok1 {
						rt.Fatalf("t=%d key %s n=%d: allowed 1ns before Retry-After %v (%+v then %+v)", now, key, n, time.Duration(retry), r, r1)
					}
					retry = 1
				}
				now += retry
				if r2, ok2, _ := decide(rt, key, n); !ok2 {
					rt.Fatalf("t=%d key %s n=%d: denied again at Retry-After %v (%+v then %+v)", now, key, n, time.Duration(retry), r, r2)
				}
				hist[key] = append(hist[key], admit{now, n})
				last[key] = n
			},
			"advance": func(rt *rapid.T) {
				now += rapid.Int64Range(0, 2*models[0].em).Draw(rt, "d")
			},
			"reset": func(rt *rapid.T) {
				key := rapid.SampledFrom(keys).Draw(rt, "key")
				if err := l.Reset(context.Background(), key); err != nil {
					rt.Fatal(err)
				}
				for _, m := range models {
					delete(m.tat, key)
				}
				delete(hist, key)
				delete(last, key)
			},
			"refundLast": func(rt *rapid.T) {
				key := rapid.SampledFrom(keys).Draw(rt, "key")
				n, ok := last[key]
				if !ok {
					rt.Skip("no decision to refund")
				}
				ratelimit.RefundAt(l, key, base.Add(time.Duration(now)), int(n))
				for _, m := range models {
					if tat := m.tat[key] - n*m.em; tat > now {
						m.tat[key] = tat
					} else {
						delete(m.tat, key)
					}
				}
				h := hist[key]
				hist[key] = h[:len(h)-1] // the refunded decision never counted
				delete(last, key)
			},
			"": func(rt *rapid.T) {
				for key, h := range hist {
					for _, m := range models {
						for i := range h {
							sum := int64(0)
							for j := i; j < len(h); j++ {
								sum += h[j].n
								if bound := m.burst + (h[j].t-h[i].t)/m.em; sum > bound {
									rt.Fatalf("key %s: %d events admitted in [%d, %d], bound %d (burst %d, T %d): %s",
										key, sum, h[i].t, h[j].t, bound, m.burst, m.em, fmt.Sprint(h))
								}
							}
						}
					}
				}
			},
		})
	})
}
