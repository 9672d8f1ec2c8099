package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// runOverloadRuns judges several runs of scripts/bench-overload together:
//
//	loadgen overload-runs [-configs a,b] [-beside off-sat-] DIR...
//
// Each DIR is one run's output (the script keeps each valid run in
// bench/out/overload/runs/STAMP): the JSON reports of `loadgen overload
// -json` and, for the runs captured on the wire, scripts/wire-latency.py's
// NAME.wire.json, NAME the label of the report it times (the script names
// each report after its label). On a machine whose speed drifts by ±10 % within minutes
// one run's verdict is a coin toss near a bound; this prints, for each
// configuration and each step at 2× capacity or more, the median and the
// range over the runs of every done-when figure (settled), in how many
// runs each bound was met, and the verdict on the medians.
//
// Refusal latency is judged on the wire where it was captured: the time
// from a request's first packet to its answer's, the server's part alone
// — each run's verdict on its own wire p99 when it has one, the medians'
// on the median over the runs that have one. The client-side p99 beside
// it also holds the generator's own delays on its busy core (NetworkFirst
// in the runs of 6 Dec 2026: 1.95–2.75 ms at the median of a step, where
// the wire's was 0.77–1.87 ms). Critical refusals are summed over the
// runs (any is a miss). The verdicts leave out what the per-run tables
// add beside a miss (the priority ceiling, a saturated generator).
func runOverloadRuns(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("overload-runs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configs := fs.String("configs", "", "comma-separated labels to judge, in this order (default: every label, sorted)")
	beside := fs.String("beside", "off-sat-", "labels holding this are the limiter-off server past saturation in the same run: "+
		"the mean of their settled goodput is that server's own throughput, which the goodput of every label that starts as theirs do "+
		"(standin-reads-off-sat-before: standin-reads-) is also given against (empty: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("overload-runs: name the directories of the runs (bench/out/overload/runs/*)")
	}
	runs := make([]*overloadRun, 0, fs.NArg())
	for _, dir := range fs.Args() {
		r, err := loadOverloadRun(dir, *beside)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	var labels []string
	if *configs != "" {
		for l := range strings.SplitSeq(*configs, ",") {
			l = strings.TrimSpace(l)
			if !slices.ContainsFunc(runs, func(r *overloadRun) bool { return r.reports[l] != nil }) {
				return fmt.Errorf("overload-runs: -configs: no run has a report labelled %q", l)
			}
			labels = append(labels, l)
		}
	} else {
		for _, r := range runs {
			for l := range r.reports {
				if !slices.Contains(labels, l) {
					labels = append(labels, l)
				}
			}
		}
		slices.Sort(labels)
	}
	printOverloadRuns(stdout, runs, labels)
	return nil
}

// overloadRun is one run of the overload script: its reports by label,
// the wire figures of those captured, and the limiter-off servers' own
// saturated throughput, by the prefix of their labels before the beside
// string (standin-reads- for standin-reads-off-sat-before): a label is
// judged beside the server whose prefix it starts with, the longest such.
type overloadRun struct {
	dir     string
	reports map[string]*overloadReport
	wire    map[string][]wireStep
	beside  map[string]float64
}

// besideOf returns the saturated throughput label is judged beside in
// the run, 0 when none was measured for its server.
func (r *overloadRun) besideOf(label string) float64 {
	best, v := -1, 0.0
	for prefix, b := range r.beside {
		if strings.HasPrefix(label, prefix) && len(prefix) > best {
			best, v = len(prefix), b
		}
	}
	return v
}

// wireStep is one row of scripts/wire-latency.py's JSON: the answers of
// one status sent in a step's settled part, timed on the wire.
type wireStep struct {
	Step     string        `json:"step"`
	Status   string        `json:"status"`
	Answers  int           `json:"answers"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
	Under1ms float64       `json:"under_1ms"` // share, 0 to 1
}

const wireSuffix = ".wire.json"

// loadOverloadRun reads the reports in dir; labels holding beside (when
// not empty) give the saturated throughput of their server (their
// prefix before it).
func loadOverloadRun(dir, beside string) (*overloadRun, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("overload-runs: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	r := &overloadRun{dir: dir, reports: map[string]*overloadReport{}, wire: map[string][]wireStep{}, beside: map[string]float64{}}
	sat := map[string][]float64{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if name, ok := strings.CutSuffix(filepath.Base(f), wireSuffix); ok {
			var w struct {
				Steps []wireStep `json:"steps"`
			}
			if err := json.Unmarshal(b, &w); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			r.wire[name] = w.Steps
			continue
		}
		var rep overloadReport
		if err := json.Unmarshal(b, &rep); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if rep.Label == "" || len(rep.Steps) == 0 {
			return nil, fmt.Errorf("%s: not a report of `loadgen overload -json` (no label or no steps)", f)
		}
		if _, dup := r.reports[rep.Label]; dup {
			return nil, fmt.Errorf("%s: a second report labelled %q in %s", f, rep.Label, dir)
		}
		r.reports[rep.Label] = &rep
		if i := strings.Index(rep.Label, beside); beside != "" && i >= 0 {
			prefix := rep.Label[:i]
			sat[prefix] = append(sat[prefix], rep.Steps[0].Settled.Goodput)
		}
	}
	if len(r.reports) == 0 {
		return nil, fmt.Errorf("overload-runs: no reports in %s", dir)
	}
	for prefix, v := range sat {
		r.beside[prefix] = mean(v)
	}
	return r, nil
}

// runFigures are one step's settled done-when figures in one run.
type runFigures struct {
	goodput  float64 // share of the run's capacity
	beside   float64 // share of the run's saturated throughput, NaN without
	p99      float64 // × the unloaded p99
	probes   time.Duration
	critical uint64
	reject   time.Duration // client-side p99 of the refusals, 0 when none
	wire     *wireStep     // the 503s on the wire, nil when not captured
	verdict  string        // judged as the medians are, on this run's figures
}

// stepFigures collects, over the runs that have label, the figures of
// its steps at 2× capacity or more, by step name in the order of the
// first run's report, and the factor of each.
func stepFigures(runs []*overloadRun, label string) (order []string, factors map[string]float64, by map[string][]runFigures) {
	factors, by = map[string]float64{}, map[string][]runFigures{}
	for _, run := range runs {
		r := run.reports[label]
		if r == nil {
			continue
		}
		forSteps([]*overloadReport{r}, func(r *overloadReport, s stepResult, factor float64) {
			if factor < 2 {
				return
			}
			if _, ok := by[s.Step]; !ok {
				order = append(order, s.Step)
				factors[s.Step] = factor
			}
			t := s.Settled
			f := runFigures{goodput: requestShare(r, t.Goodput), beside: math.NaN(), p99: unloadedFactor(r, t.AdmittedP99),
				probes: settledProbes(s), critical: criticalShed(s), reject: t.RejectP99}
			if b := run.besideOf(label); b > 0 {
				f.beside = t.Goodput / b
			}
			reject := f.reject
			for i, w := range run.wire[label] {
				if w.Step == s.Step && w.Status == "503" {
					f.wire = &run.wire[label][i]
					reject = w.P99
				}
			}
			f.verdict = judge(factor, f.goodput, 0, f.p99, f.probes, reject, f.critical)
			by[s.Step] = append(by[s.Step], f)
		})
	}
	return order, factors, by
}

// printOverloadRuns writes one row per label and step at 2× or more.
func printOverloadRuns(w io.Writer, runs []*overloadRun, labels []string) {
	fmt.Fprintf(w, "%d runs: %s. Each cell: the median over the runs that have the configuration (the range; how many met the bound); critical shed: the sum; "+
		"runs ok: the runs whose step met every bound (refusals on the wire where that run captured them). "+
		"Settled figures; goodput also against each run's own limiter-off server offered past its capacity (\"beside\"), where measured.\n\n",
		len(runs), strings.Join(runDirs(runs), ", "))
	fmt.Fprintln(w, "| configuration | step | runs | goodput, of the capacity | beside the off server | admitted p99 × unloaded | probes p99 | critical shed (all runs) | refusals p99 (client) | refusals on the wire p50 / p99 / under 1 ms | runs ok | verdict on the medians (refusals on the wire where captured) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, label := range labels {
		order, factors, by := stepFigures(runs, label)
		for _, step := range order {
			fs := by[step]
			n := len(fs)
			good := pick(fs, func(f runFigures) float64 { return f.goodput })
			p99 := pick(fs, func(f runFigures) float64 { return f.p99 })
			probes := pick(fs, func(f runFigures) float64 { return float64(f.probes) })
			var critical uint64
			ok := 0
			var rejects, wp50, wp99, wUnder, beside []float64
			for _, f := range fs {
				critical += f.critical
				if strings.HasPrefix(f.verdict, "ok") {
					ok++
				}
				if f.reject > 0 {
					rejects = append(rejects, float64(f.reject))
				}
				if f.wire != nil {
					wp50 = append(wp50, float64(f.wire.P50))
					wp99 = append(wp99, float64(f.wire.P99))
					wUnder = append(wUnder, f.wire.Under1ms)
				}
				if !math.IsNaN(f.beside) {
					beside = append(beside, f.beside)
				}
			}
			besideCell := "–"
			if len(beside) > 0 {
				besideCell = fmt.Sprintf("%s (of %d)", shareCell(beside), len(beside))
			}
			rejectCell := "none shed"
			if len(rejects) > 0 {
				rejectCell = durCell(rejects, doneReject)
			}
			wireCell := "–"
			if len(wp99) > 0 {
				wireCell = fmt.Sprintf("%s / %s / %.1f %% (of %d)", fineMS(time.Duration(median(wp50))), durCell(wp99, doneReject),
					100*median(wUnder), len(wp99))
			}
			// A step with no refusals met the refusal bound.
			reject := time.Duration(0)
			switch {
			case len(wp99) > 0:
				reject = time.Duration(median(wp99))
			case len(rejects) > 0:
				reject = time.Duration(median(rejects))
			}
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %d | %s | %s | %d of %d | %s |\n",
				label, step, n, shareCell(good), besideCell,
				factorCell(p99), durCell(probes, doneProbeP99), critical, rejectCell, wireCell, ok, n,
				judge(factors[step], median(good), 0, median(p99), time.Duration(median(probes)), reject, critical))
		}
	}
}

func runDirs(runs []*overloadRun) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = filepath.Base(r.dir)
	}
	return out
}

// pick maps fs through f.
func pick(fs []runFigures, f func(runFigures) float64) []float64 {
	out := make([]float64, len(fs))
	for i, x := range fs {
		out[i] = f(x)
	}
	return out
}

// median is the middle of v (the mean of the two middle values for an
// even count), NaN for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

// count is how many values of v meet ok.
func count(v []float64, ok func(float64) bool) int {
	n := 0
	for _, x := range v {
		if ok(x) {
			n++
		}
	}
	return n
}

// shareCell is "93.0 % (84.0–101.0 %; 5 ≥ 90 %)": the median of the
// shares v, their range, and how many met the goodput bound.
func shareCell(v []float64) string {
	return fmt.Sprintf("%.1f %% (%.1f–%.1f %%; %d ≥ %.0f %%)", 100*median(v), 100*slices.Min(v), 100*slices.Max(v),
		count(v, func(x float64) bool { return x >= doneGoodputShare }), 100*doneGoodputShare)
}

// factorCell is "2.1× (1.2–6.0×; 4 ≤ 5×)" for admitted p99s as
// multiples of the unloaded p99.
func factorCell(v []float64) string {
	return fmt.Sprintf("%.1f× (%.1f–%.1f×; %d ≤ %d×)", median(v), slices.Min(v), slices.Max(v),
		count(v, func(x float64) bool { return x <= doneP99Factor }), doneP99Factor)
}

// durCell is "0.84ms (0.50–3.10ms; 5 < 1.00ms)" for durations v in ns
// and their bound.
func durCell(v []float64, bound time.Duration) string {
	return fmt.Sprintf("%s (%s–%s; %d < %s)", ms(time.Duration(median(v))), ms(time.Duration(slices.Min(v))), ms(time.Duration(slices.Max(v))),
		count(v, func(x float64) bool { return x < float64(bound) }), ms(bound))
}
