package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// runOverloadTable prints the tables of several `loadgen overload -json`
// reports side by side.
func runOverloadTable(files []string, stdout io.Writer) error {
	if len(files) == 0 {
		return errors.New("overload-table: name the JSON reports of `loadgen overload -json`")
	}
	var reps []*overloadReport
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r overloadReport
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		reps = append(reps, &r)
	}
	printOverloadTables(stdout, reps)
	return nil
}

// The done-when bounds of issue 23, checked at 2× capacity and above.
const (
	doneGoodputShare = 0.9                    // of capacity
	doneP99Factor    = 5                      // × the unloaded p99
	doneProbeP99     = 100 * time.Millisecond // /health/live and /health/ready
	doneReject       = time.Millisecond       // rejection latency
)

// verdict lists the done-when bounds a step at factor× capacity missed,
// "ok" when it met them all, "—" below 2×.
func verdict(r *overloadReport, s stepResult, factor float64) string {
	probes := max(s.LiveP99, s.ReadyP99)
	if s.ProbeFailures > 0 {
		probes = doneProbeP99
	}
	return judge(factor, requestShare(r, s.Goodput), priorityCeiling(r, s), unloadedFactor(r, s.AdmittedP99), probes, rejectLatency(s), criticalShed(s)) + genNote(s)
}

// criticalShed is how many critical requests (probes) step s refused.
func criticalShed(s stepResult) uint64 {
	if len(s.Priorities) <= prioCritical {
		return 0
	}
	return s.Priorities[prioCritical].Shed
}

// settledVerdict is verdict for the step's settled figures (critical
// refusals counted over the whole step).
func settledVerdict(r *overloadReport, s stepResult, factor float64) string {
	t := s.Settled
	return judge(factor, requestShare(r, t.Goodput), priorityCeiling(r, s), unloadedFactor(r, t.AdmittedP99), settledProbes(s), t.RejectP99, criticalShed(s)) + genNote(s)
}

// settledProbes is step s's settled probe p99, at least the done-when
// bound when a probe failed (a probe answered fast but not 200 fails).
func settledProbes(s stepResult) time.Duration {
	if s.ProbeFailures > 0 {
		return max(s.Settled.ProbeP99, doneProbeP99)
	}
	return s.Settled.ProbeP99
}

// requestShare is the share of r's capacity in requests a goodput
// served: what the verdicts judge, as the done-when states it.
func requestShare(r *overloadReport, goodput float64) float64 {
	if r.Capacity <= 0 {
		return math.Inf(1) // no capacity to judge by
	}
	return goodput / r.Capacity
}

// workShare is the share of r's capacity in work a work goodput of step s
// served (-route-costs; see stepResult.WorkGoodput), 0 without route
// costs. An estimate shown beside the request share: the route costs are
// a model (a served request costs less at saturation than at low load,
// where wakeups dominate).
func workShare(r *overloadReport, s stepResult, work float64) float64 {
	if s.MeanCost <= 0 || r.Capacity <= 0 {
		return 0
	}
	return work / (r.Capacity * s.MeanCost.Seconds())
}

// priorityCeiling is the share of r's capacity in requests that a
// server doing exactly the capacity's modelled work (capacity × the mean
// route cost of what step s offered) serves when it admits by priority
// alone — every high request before any normal one, every normal one
// before any low — at the route costs (-route-costs; each class at its
// mean cost), with refusals free; 0 without route costs (or in a report
// from before sent_cost_ns). It is 100 % at 1×. Past that the order
// keeps the costly writes and sheds cheap reads: with the overload
// script's mix it is 89 % at 2× and 70 % at 4×, under the done-when's
// 90 % of the requests. A limiter that keeps the order serves more only
// by doing more work than the model's capacity (a saturated server does
// some: the costs were measured at low load); one that serves by age
// instead of priority can pass it.
func priorityCeiling(r *overloadReport, s stepResult) float64 {
	if s.MeanCost <= 0 || r.Capacity <= 0 || s.Duration <= 0 || len(s.Priorities) < prioCount {
		return 0
	}
	for i := prioLow; i <= prioHigh; i++ {
		if p := s.Priorities[i]; p.Sent > 0 && p.SentCost <= 0 {
			return 0 // route costs are positive: no per-class costs recorded
		}
	}
	budget := r.Capacity * s.MeanCost.Seconds() // cores' worth of work per second
	served := 0.0
	for i := prioHigh; i >= prioLow; i-- {
		p := s.Priorities[i]
		if p.Sent == 0 {
			continue
		}
		n := float64(p.Sent) / s.Duration.Seconds()
		cost := p.SentCost.Seconds() / float64(p.Sent)
		n = min(n, max(budget, 0)/cost)
		budget -= n * cost
		served += n
	}
	return served / r.Capacity
}

// goodputCell formats a goodput and its share of the capacity, in
// requests and, with route costs, in work and the priority ceiling.
func goodputCell(r *overloadReport, s stepResult, goodput, work float64) string {
	out := fmt.Sprintf("%.0f req/s (%.0f %%", goodput, 100*requestShare(r, goodput))
	if s.MeanCost > 0 {
		out += fmt.Sprintf("; work %.0f %%", 100*workShare(r, s, work))
		if c := priorityCeiling(r, s); c > 0 {
			out += fmt.Sprintf("; ceiling %.0f %%", 100*c)
		}
	}
	return out + ")"
}

// genSaturated is the generator's CPU share past which its own queueing
// is part of every latency it measured; genLagged the lag p99 (due to
// sent) past which it did not offer the step's rate on time — mostly
// because every connection it may hold (-concurrency) was busy with a
// server that queued — and sent late, in bursts (on this project's
// machine the lag p99 is 3–20 ms at the stand-in's rates when it keeps
// pace, 40–75 ms at servio's). Each timeline slice shows the lag too.
const (
	genSaturated = 0.9
	genLagged    = 100 * time.Millisecond
)

// genNote marks a verdict whose step had the generator's core saturated
// or its requests sent late.
func genNote(s stepResult) string {
	var notes []string
	if s.GenCPUShare >= genSaturated {
		notes = append(notes, fmt.Sprintf("generator %.0f %% busy: latencies include its own queueing", 100*s.GenCPUShare))
	}
	if s.LagP99 >= genLagged {
		notes = append(notes, fmt.Sprintf("generator lag p99 %s: it sent late, in bursts", ms(s.LagP99)))
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, "; ") + ")"
}

// unloadedFactor is an admitted p99 as a multiple of r's unloaded p99
// (+Inf when r has none and the p99 is above 0).
func unloadedFactor(r *overloadReport, p99 time.Duration) float64 {
	if r.UnloadedP99 <= 0 {
		if p99 > 0 {
			return math.Inf(1)
		}
		return 0
	}
	return float64(p99) / float64(r.UnloadedP99)
}

// judge lists the bounds missed at factor× capacity, "—" below 2×;
// ceiling (priorityCeiling, 0: unknown) is named beside a goodput miss
// when it is under the bound itself; p99Factor is the admitted p99 as a
// multiple of the unloaded p99 (unloadedFactor).
func judge(factor, goodputShare, ceiling, p99Factor float64, probes, reject time.Duration, criticalShed uint64) string {
	if factor < 2 {
		return "—"
	}
	var miss []string
	if goodputShare < doneGoodputShare {
		g := "goodput"
		if ceiling > 0 && ceiling < doneGoodputShare {
			g += fmt.Sprintf(" (priority ceiling %.0f %%)", 100*ceiling)
		}
		miss = append(miss, g)
	}
	if p99Factor > doneP99Factor {
		miss = append(miss, "p99")
	}
	if criticalShed > 0 {
		miss = append(miss, "critical shed")
	}
	if probes >= doneProbeP99 {
		miss = append(miss, "probes")
	}
	if reject >= doneReject {
		miss = append(miss, "rejection latency")
	}
	if len(miss) == 0 {
		return "ok"
	}
	return "missed: " + strings.Join(miss, ", ")
}

// rejectLatency is the rejection p99 as clients saw it: of the server's
// refusals, from send to answer (what the server reports in Server-Timing
// leaves out the wait before its handler ran), or of the client
// throttle's own, whichever is higher.
func rejectLatency(s stepResult) time.Duration {
	return max(s.RejectClientP99, s.RejectLocalP99)
}

// printOverloadTables writes the reports as markdown: one line per
// configuration on capacity and the unloaded latency, then one table row
// per step and configuration.
func printOverloadTables(w io.Writer, reps []*overloadReport) {
	// The unloaded probes' p99 (live and ready together, 200 at the
	// default rates) shows what a request that costs the server next to
	// nothing takes at the client, on a server with nothing else to do.
	fmt.Fprintln(w, "| configuration | capacity | unloaded p50 | unloaded p99 | unloaded probes p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range reps {
		how := "given"
		if r.Searched {
			how = "measured"
		}
		probes := r.Unloaded.ProbeP99
		if probes == 0 { // a report from before probe_p99_ns
			probes = max(r.Unloaded.LiveP99, r.Unloaded.ReadyP99)
		}
		fmt.Fprintf(w, "| %s | %.0f req/s (%s) | %s | %s | %s |\n", r.Label, r.Capacity, how, ms(r.Unloaded.AdmittedP50), ms(r.UnloadedP99), ms(probes))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| step | configuration | offered | goodput | admitted p50 | admitted p99 | shed low / normal / high / critical | time to shed | live / ready p99 | rejection p99 client / server (max) | dropped / timeouts | generator lag p99 | CPU server (its threads' run-queue wait) / generator | done when (≥ 2×) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	forSteps(reps, func(r *overloadReport, s stepResult, factor float64) {
		p99 := ms(s.AdmittedP99)
		if r.UnloadedP99 > 0 {
			p99 += fmt.Sprintf(" (%.1f×)", float64(s.AdmittedP99)/float64(r.UnloadedP99))
		}
		tts := "none"
		if s.TimeToShed >= 0 {
			tts = ms(s.TimeToShed)
		}
		cpu := "n/a"
		if s.ServerCPU > 0 {
			cpu = fmt.Sprintf("%.0f %%", 100*s.ServerCPUShare)
		}
		if s.ServerWait > 0 {
			cpu += fmt.Sprintf(" (waited %.1f %%)", 100*s.ServerWaitShare)
		}
		cpu += fmt.Sprintf(" / %.0f %%", 100*s.GenCPUShare)
		fmt.Fprintf(w, "| %s | %s | %.0f req/s | %s | %s | %s | %s | %s | %s / %s | %s | %d / %d | %s | %s | %s |\n",
			s.Step, r.Label, s.Offered, goodputCell(r, s, s.Goodput, s.WorkGoodput), ms(s.AdmittedP50), p99,
			shedShares(s), tts, ms(s.LiveP99), ms(s.ReadyP99), rejections(s), s.Dropped, s.Timeouts, ms(s.LagP99), cpu, verdict(r, s, factor))
	})
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Settled: the same steps without their first %s (requests due from then on):\n\n", ms(settleAfter))
	printSettledTable(w, reps)
}

// printSettledTable writes each step's settled figures (the requests due
// settleAfter or later into it), one row per step and configuration.
func printSettledTable(w io.Writer, reps []*overloadReport) {
	fmt.Fprintln(w, "| step | configuration | from | goodput | admitted p99 | probes p99 | rejection p99 (client) | done when (≥ 2×) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	forSteps(reps, func(r *overloadReport, s stepResult, factor float64) {
		t := s.Settled
		p99 := ms(t.AdmittedP99)
		if r.UnloadedP99 > 0 {
			p99 += fmt.Sprintf(" (%.1f×)", float64(t.AdmittedP99)/float64(r.UnloadedP99))
		}
		rej := "none shed"
		if t.RejectP99 > 0 {
			rej = fineMS(t.RejectP99)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Step, r.Label, ms(t.After),
			goodputCell(r, s, t.Goodput, t.WorkGoodput), p99, ms(t.ProbeP99), rej, settledVerdict(r, s, factor))
	})
}

// forSteps calls f for each step of each report, steps in order and the
// reports side by side within a step, with the step's multiple of the
// report's capacity.
func forSteps(reps []*overloadReport, f func(r *overloadReport, s stepResult, factor float64)) {
	steps := 0
	for _, r := range reps {
		steps = max(steps, len(r.Steps))
	}
	for i := range steps {
		for _, r := range reps {
			if i >= len(r.Steps) {
				continue
			}
			s := r.Steps[i]
			factor := 0.0
			if r.Capacity > 0 {
				factor = s.Offered / r.Capacity
			}
			f(r, s, factor)
		}
	}
}

// shedShares is each priority's shed share, "12 % / 3 % / 0 % / 0 (of 80)"
// with the critical count absolute, since any is too many.
func shedShares(s stepResult) string {
	var parts []string
	for i, p := range s.Priorities {
		if i == prioCritical {
			parts = append(parts, fmt.Sprintf("%d of %d", p.Shed, p.Sent))
			continue
		}
		if p.Sent == 0 {
			parts = append(parts, "–")
			continue
		}
		parts = append(parts, fmt.Sprintf("%.0f %%", 100*float64(p.Shed)/float64(p.Sent)))
	}
	return strings.Join(parts, " / ")
}

// rejections is the rejection p99 seen by the client and reported by the
// server for the server's refusals, then that of the client throttle's
// own refusals when there were any.
func rejections(s stepResult) string {
	if totalShed(s) == 0 {
		return "none shed"
	}
	out := "none by the server"
	if totalShed(s) > totalShedLocal(s) {
		server := "n/a"
		if s.RejectServerP99 > 0 {
			server = fmt.Sprintf("%s (%s)", fineMS(s.RejectServerP99), fineMS(s.RejectServerMax))
		}
		out = fineMS(s.RejectClientP99) + " / " + server
	}
	if n := totalShedLocal(s); n > 0 {
		out += fmt.Sprintf("; %.0f %% refused by the client's throttle in %s", 100*float64(n)/float64(totalShed(s)), fineMS(s.RejectLocalP99))
	}
	return out
}

// fineMS shows a duration in milliseconds to the microsecond.
func fineMS(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}
