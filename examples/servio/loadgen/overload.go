package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/servio/perfkit/httpclient"
	"github.com/servio/perfkit/resilience"
)

// `loadgen overload` measures how a server behaves past its capacity, open
// loop: an unloaded step, then (unless -capacity is given) a search for the
// capacity by saturation — the highest offered rate whose goodput still
// tracks it (≥ 99 % answered without a 5xx, no timeout, goodput ≥ 95 %
// of the offered rate) while the server, with -server-pid, used under
// 95 % of a core; a rate counts as saturated when two trials at it say
// so; see findCapacity — then steps at 1×, 2× and 4× that
// capacity. Health probes (/health/live and /health/ready) go out on their
// own clock at -probe-rate each. Every request has -timeout from the moment
// it was due (the client gives up then); a request the generator could not
// even start because all -concurrency connections were busy counts as
// dropped and failed.
//
// A shed request is a 503 whose body says "overloaded" (servio's and
// bench/overload's refusal); its latency is measured client-side from send
// to answer, and server-side from a "Server-Timing: shed;dur=<ms>" header
// when the server sends one. Priorities follow servio's routePriority:
// logins, order placement and status changes high, the assistant low,
// probes critical, other reads normal.
//
// With -client-throttle K the generator behaves like a perfkit client of
// the server: each priority class goes through its own
// httpclient.ThrottleTransport (the SRE book's client-side adaptive
// throttling), which refuses locally, without sending, once the server
// keeps refusing that class; those refusals count as shed (and apart, as
// shed locally). Probes never pass a throttle. A new throttle starts
// with each step (steps stay independent) unless -client-throttle-per-run
// keeps one per class for the whole run, as long-lived clients keep
// theirs. Refusing costs the server nearly as much as serving a cheap
// request (it reads and answers each one), so a server offered f× its
// capacity by clients that do not back off cannot keep its goodput;
// clients that throttle keep what reaches it near K× what it accepts.
//
// Each request carries its send time in -request-start (X-Request-Start:
// t=<µs>), as a front proxy stamps it, so a server can hold the queue
// since then (servio's -adaptive-queue-header). With -route-costs (each
// route's CPU cost in the server) the goodput is also estimated in work:
// under pressure the limiter keeps high-priority writes, which cost about
// three reads each, and sheds reads, so a server busy with useful work all
// along serves fewer requests than its capacity in the offered mix. The
// done-when's goodput bound is still judged on requests.
//
// The generator runs on one core, and its own delays count in every
// latency (measured from when a request was due): by default its garbage
// collector is held off until its memory reaches 1 GiB, and collects
// between steps (-gc-limit-mib), which took its lag p99 at 4× from 10–36
// ms to 8 ms in two pairs of runs.
//
//	loadgen overload -url http://127.0.0.1:8080 -label servio-perfkit -json out.json
//	loadgen overload-table off.json perfkit.json failsafe.json
type overloadOptions struct {
	load          options
	label         string
	capacity      float64
	factors       []float64
	stepDuration  time.Duration
	trialDuration time.Duration
	unloadedRate  float64
	// unloadedDuration is the unloaded step's: its p99 is the reference
	// the done-when's "5× the unloaded p99" divides by, and at 100 req/s
	// a 4 s step's p99 is its 5th-slowest request (3.0–18 ms over
	// eighteen stand-in runs of 5 Dec 2026); 10 s makes it the 11th of
	// 1,000.
	unloadedDuration time.Duration
	searchStart      float64
	timeout          time.Duration
	probeRate        float64
	serverPID        int
	// throttleK, when positive, sends each priority class's requests
	// through its own httpclient.ThrottleTransport (the SRE book's
	// client-side adaptive throttling with this K, over throttleWindow),
	// as a perfkit client of the server would; probes bypass it.
	throttleK      float64
	throttleWindow time.Duration
	// throttlePerRun keeps one throttle per class for the whole run, as a
	// long-lived client keeps its own, instead of a new one per step.
	throttlePerRun bool
	timeline       bool
	// requestStart names the header that carries each request's send
	// time, "t=<microseconds since the epoch>" (as a front proxy stamps
	// X-Request-Start; a server may read its queue from it); "" sends none.
	requestStart string
	// routeCosts is each route's CPU cost in the server (-route-costs),
	// nil: goodput is counted in requests only.
	routeCosts routeCosts
	// gcLimitMiB, when positive, turns the generator's garbage collector
	// off until the runtime's memory reaches this many MiB (GOGC=off with
	// GOMEMLIMIT; a lower GOMEMLIMIT stays), for the run, and collects
	// before each step (warm): on its one core the collector's work
	// delayed sends and reads by milliseconds. Two stand-in runs of 5 Dec
	// 2026 (MaxWait 2 ms, perfkit clients), each followed by the same run
	// with the collector off: the generator's lag p99 at 4× fell from 36
	// and 10.5 ms to 7.9 and 7.6 ms, and the settled admitted p99 from 79
	// and 51 ms to 27 and 27 ms. Such a 40 s run without a collection
	// peaked at 0.7 GB resident.
	gcLimitMiB int
}

// Priority classes, in servio's order (resilience.Priority + 1).
const (
	prioLow = iota
	prioNormal
	prioHigh
	prioCritical
	prioCount
)

var prioNames = [prioCount]string{"low", "normal", "high", "critical"}

// routeClass is servio's routePriority for loadgen's route names.
func routeClass(route string) int {
	switch route {
	case "POST /orders", "PATCH /orders/{id}", "POST /auth/login":
		return prioHigh
	case "POST /assistant/query", "POST /uploads":
		return prioLow
	}
	if strings.HasPrefix(route, "GET /health") {
		return prioCritical
	}
	return prioNormal
}

// prioResult counts one priority's requests in a step.
type prioResult struct {
	Priority string `json:"priority"`
	Sent     uint64 `json:"sent"`
	Good     uint64 `json:"good"` // answered without a 5xx in time
	Shed     uint64 `json:"shed"` // 503 "overloaded", or refused by the client's throttle
	// ShedLocal is the part of Shed the client's own throttle refused
	// (-client-throttle) without sending.
	ShedLocal uint64 `json:"shed_local,omitempty"`
	Failed    uint64 `json:"failed"`
	// SentCost is the summed -route-costs of the requests sent (0
	// without route costs), for the priority ceiling.
	SentCost time.Duration `json:"sent_cost_ns,omitempty"`
}

// stepResult is what one step of offered load produced.
type stepResult struct {
	Step     string        `json:"step"` // unloaded, trial, 1x, 2x, 4x
	Offered  float64       `json:"offered_rps"`
	Duration time.Duration `json:"duration_ns"`
	// StartUnixNano is when the step began (Unix nanoseconds), to match
	// it with other records of the run (scripts/wire-latency.py).
	StartUnixNano int64 `json:"start_unix_ns,omitempty"`
	// Goodput is the answers without a 5xx, in time, per second from
	// the step's start to its end or to the last such answer if later
	// (probes excluded).
	Goodput float64 `json:"goodput_rps"`
	// SuccessShare is those answers ÷ requests (probes excluded).
	SuccessShare float64 `json:"success_share"`
	// With -route-costs: WorkGoodput is Goodput weighted by each route's
	// cost (cores' worth of the server's useful work), MeanCost the mean
	// cost of the requests the step offered. WorkGoodput ÷ (capacity ×
	// MeanCost) is the share of the capacity's work served: priorities
	// that keep costly writes and shed cheap reads serve fewer requests
	// for the same work.
	WorkGoodput float64       `json:"work_goodput,omitempty"`
	MeanCost    time.Duration `json:"mean_cost_ns,omitempty"`
	// Admitted latency, from due time, of every request not shed
	// (timeouts count at their timeout), probes excluded.
	AdmittedP50 time.Duration `json:"admitted_p50_ns"`
	AdmittedP99 time.Duration `json:"admitted_p99_ns"`
	Priorities  []prioResult  `json:"priorities"`
	Dropped     uint64        `json:"dropped"`  // never sent: every connection busy
	Timeouts    uint64        `json:"timeouts"` // no answer within -timeout
	// TimeToShed is from the step's start to the first shed answer; -1
	// when nothing was shed.
	TimeToShed    time.Duration `json:"time_to_shed_ns"`
	LiveP99       time.Duration `json:"live_p99_ns"`
	ReadyP99      time.Duration `json:"ready_p99_ns"`
	ProbeP99      time.Duration `json:"probe_p99_ns,omitempty"` // live and ready together
	ProbeFailures uint64        `json:"probe_failures"`         // probes not answered 200 in time
	// Latency of shed answers: client-side from send to answer, and
	// server-side from Server-Timing (0 when the server sends none).
	RejectClientP99 time.Duration `json:"reject_client_p99_ns"`
	RejectServerP99 time.Duration `json:"reject_server_p99_ns"`
	RejectServerMax time.Duration `json:"reject_server_max_ns"`
	// RejectLocalP99 is the latency of the client throttle's own
	// refusals (-client-throttle), from send to error.
	RejectLocalP99 time.Duration `json:"reject_local_p99_ns,omitempty"`
	// LagP99 is how late the generator started requests: large values
	// mean the generator, not the server, was the bottleneck.
	LagP99 time.Duration `json:"lag_p99_ns"`
	// ServerCPU is the server's CPU time (user + system) from the step's
	// start until its last answer, with -server-pid; ServerCPUShare that
	// time ÷ the wall time (1 = one core busy throughout: less, while the
	// server was overloaded, means something else had the core).
	ServerCPU      time.Duration `json:"server_cpu_ns,omitempty"`
	ServerCPUShare float64       `json:"server_cpu_share,omitempty"`
	// ServerWait is the time the server's threads spent runnable but
	// waiting for a core over the same span, with -server-pid (Linux
	// schedstat, summed over its threads; see threadRunDelays);
	// ServerWaitShare that time ÷ the wall time. With the server pinned
	// to a core it bounds from above the time other work took that core
	// from it: its own threads waiting for each other count too (with
	// GOMAXPROCS=1 the runtime's sysmon, a thread back from a syscall),
	// and summed over threads it can exceed the wall time. Under 1 % of
	// a 2× or 4× step in the overload script's servio runs of 6 Dec 2026
	// (up to 3.5 % at 1×, where its threads sleep and wake more); a step
	// far above its neighbours had something else on its core.
	ServerWait      time.Duration `json:"server_wait_ns,omitempty"`
	ServerWaitShare float64       `json:"server_wait_share,omitempty"`
	// Settled is the step without its first seconds.
	Settled settledResult `json:"settled"`
	// Timeline is the step in slices of timeSliceWidth (with -timeline).
	Timeline []timeSlice `json:"timeline,omitempty"`
	// GenCPUShare is the generator's own CPU time over the same span ÷
	// the wall time: near 1 with the generator on one core means it, not
	// the server, set the pace (its lag and the latencies it measured
	// then include its own queueing).
	GenCPUShare float64 `json:"generator_cpu_share,omitempty"`
}

// overloadReport is one configuration's run.
type overloadReport struct {
	Label    string  `json:"label"`
	Target   string  `json:"target"`
	Capacity float64 `json:"capacity_rps"`
	Searched bool    `json:"capacity_searched"`
	// ThrottlePerRun: -client-throttle-per-run (one throttle per class
	// for the whole run).
	ThrottlePerRun bool          `json:"client_throttle_per_run,omitempty"`
	UnloadedP99    time.Duration `json:"unloaded_p99_ns"`
	Unloaded       stepResult    `json:"unloaded"`
	Trials         []stepResult  `json:"trials,omitempty"`
	Steps          []stepResult  `json:"steps"`
}

func runOverload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOverloadFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.gcLimitMiB > 0 {
		defer gcOff(o.gcLimitMiB)()
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	rep, err := overload(ctx, o, stderr)
	if err != nil {
		return err
	}
	printOverloadTables(stdout, []*overloadReport{rep})
	if o.load.jsonOut != "" { // -json: the report, for overload-table
		b, _ := json.MarshalIndent(rep, "", "  ")
		return os.WriteFile(o.load.jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// gcState: the collector's settings gcOff saved, and how many runs of this
// process hold it off (the tests run several at once).
var gcState struct {
	sync.Mutex
	holders        int
	percent, limit int64
}

// gcOff turns the garbage collector off until the Go runtime's memory
// reaches limitMiB (the first holder's limit, or a lower one set before,
// e.g. by GOMEMLIMIT) and returns a function that gives it back; the last
// holder's return restores the settings from before the first.
func gcOff(limitMiB int) (restore func()) {
	gcState.Lock()
	defer gcState.Unlock()
	if gcState.holders == 0 {
		gcState.limit = debug.SetMemoryLimit(-1)
		debug.SetMemoryLimit(min(gcState.limit, int64(limitMiB)<<20))
		gcState.percent = int64(debug.SetGCPercent(-1))
	}
	gcState.holders++
	return sync.OnceFunc(func() {
		gcState.Lock()
		defer gcState.Unlock()
		if gcState.holders--; gcState.holders == 0 {
			debug.SetGCPercent(int(gcState.percent))
			debug.SetMemoryLimit(gcState.limit)
		}
	})
}

func parseOverloadFlags(args []string, stderr io.Writer) (overloadOptions, error) {
	o := overloadOptions{factors: []float64{1, 2, 4}}
	fs := flag.NewFlagSet("loadgen overload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registerLoadFlags(fs, &o.load)
	fs.StringVar(&o.load.target, "url", "http://127.0.0.1:8080", "base URL of the server (loopback only)")
	fs.StringVar(&o.label, "label", "", "name of the configuration in the tables (default: the URL)")
	fs.Float64Var(&o.capacity, "capacity", 0, "capacity in req/s; 0: search for it")
	fs.Func("factors", "comma-separated multiples of the capacity to offer (default 1,2,4)", func(s string) error {
		f, err := parseFactors(s)
		o.factors = f
		return err
	})
	fs.DurationVar(&o.stepDuration, "step-duration", 8*time.Second, "duration of each overload step")
	fs.DurationVar(&o.trialDuration, "trial-duration", 4*time.Second, "duration of each capacity-search trial (and of the unmeasured warm-up, at most 2s)")
	fs.DurationVar(&o.unloadedDuration, "unloaded-duration", 10*time.Second, "duration of the unloaded step, whose p99 the verdicts' p99 bound is a multiple of")
	fs.Float64Var(&o.unloadedRate, "unloaded-rate", 100, "offered rate of the unloaded step, req/s")
	fs.Float64Var(&o.searchStart, "search-start", 1000, "first rate the capacity search tries, req/s")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "client timeout of each request, from its due time")
	fs.Float64Var(&o.probeRate, "probe-rate", 10, "/health/live and /health/ready probes per second, each")
	fs.IntVar(&o.gcLimitMiB, "gc-limit-mib", 1024, "collect the generator's garbage between steps, and within one only when the Go runtime's memory reaches this many MiB (GOGC=off, GOMEMLIMIT), so that its collector does not delay its sends and reads; 0: the runtime's settings")
	fs.IntVar(&o.serverPID, "server-pid", 0, "process id of the server (Linux): report its CPU time and its threads' run-queue wait per step from /proc")
	fs.Float64Var(&o.throttleK, "client-throttle", 0, "K of httpclient's client-side adaptive throttling, one throttle per priority class (probes bypass it); 0: off, every request goes to the server")
	fs.BoolVar(&o.timeline, "timeline", false, "record each step in 250 ms slices (answers, refusals, latency) in the JSON report and print them to stderr")
	fs.StringVar(&o.requestStart, "request-start", "X-Request-Start", "header stamped with each request's send time, t=<µs since the epoch>, as a front proxy stamps it; empty: none")
	fs.Var(&o.routeCosts, "route-costs", "each route's CPU cost in the server, for goodput weighted by work: comma-separated route=duration, * for the rest (e.g. 'POST /orders=0.95ms,POST /auth/login=20ms,*=0.35ms')")
	fs.DurationVar(&o.throttleWindow, "client-throttle-window", 5*time.Second, "window of the client-side throttle (a new throttle starts with each step unless -client-throttle-per-run)")
	fs.BoolVar(&o.throttlePerRun, "client-throttle-per-run", false, "keep one client-side throttle per priority class for the whole run (warm-up and unloaded steps included), as long-lived clients keep theirs, instead of a new one per step")
	// Overload needs many connections: a server that queues holds each
	// request for seconds.
	if err := fs.Parse(append([]string{"-concurrency", "4000", "-warmup", "0s"}, args...)); err != nil {
		return o, err
	}
	if o.label == "" {
		o.label = o.load.target
	}
	switch {
	case o.capacity < 0 || o.unloadedRate <= 0 || o.searchStart <= 0 || o.probeRate < 0:
		return o, errors.New("-capacity, -unloaded-rate, -search-start and -probe-rate must be positive")
	case o.gcLimitMiB < 0 || o.gcLimitMiB > 1<<30:
		return o, errors.New("-gc-limit-mib must be 0 (the runtime's settings) or a positive number of MiB up to 2^30")
	case o.stepDuration <= 0 || o.trialDuration <= 0 || o.unloadedDuration <= 0 || o.timeout <= 0:
		return o, errors.New("-step-duration, -trial-duration, -unloaded-duration and -timeout must be positive")
	case !(o.throttleK == 0 || o.throttleK >= 1) || math.IsInf(o.throttleK, 0):
		return o, errors.New("-client-throttle must be 0 (off) or a number of at least 1")
	case o.throttlePerRun && (o.throttleK == 0 || o.capacity == 0):
		// A capacity search's saturated trials would leave refusals in
		// the windows, and the next trial would read as saturated.
		return o, errors.New("-client-throttle-per-run needs -client-throttle and -capacity")
	case o.requestStart != "" && !httpguts.ValidHeaderFieldName(o.requestStart):
		return o, fmt.Errorf("-request-start %q is not a header name", o.requestStart)
	case o.throttleK > 0:
		// The throttle checks the rest (its window holds 20 buckets).
		t, err := httpclient.NewThrottle(http.DefaultTransport, httpclient.ThrottleConfig{K: o.throttleK, Window: o.throttleWindow})
		if err != nil {
			return o, fmt.Errorf("-client-throttle-window: %w", err)
		}
		t.Close()
	}
	return o, o.load.validate()
}

func parseFactors(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("-factors: %q is not a positive number", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// overload runs the unloaded step, the capacity search and the steps.
func overload(ctx context.Context, o overloadOptions, stderr io.Writer) (*overloadReport, error) {
	e := &engine{o: &o.load, client: overloadClient(o.load.concurrency), menus: &menus{items: map[int][]int64{}},
		requestStart: o.requestStart}
	defer e.client.CloseIdleConnections()
	if err := e.ping(ctx); err != nil {
		return nil, err
	}
	if err := e.login(ctx); err != nil {
		return nil, err
	}
	if o.throttlePerRun {
		clients, release, err := e.classClients(&o)
		if err != nil {
			return nil, err
		}
		defer release()
		e.runClients = &clients
	}
	rep := &overloadReport{Label: o.label, Target: o.load.target, Capacity: o.capacity, ThrottlePerRun: o.throttlePerRun}
	// A short unmeasured run learns the menus, so the orders placed in
	// the measured steps are valid.
	e.step(ctx, &o, "warm-up", o.unloadedRate, min(o.trialDuration, 2*time.Second))
	rep.Unloaded = e.step(ctx, &o, "unloaded", o.unloadedRate, o.unloadedDuration)
	rep.UnloadedP99 = rep.Unloaded.AdmittedP99
	fmt.Fprintf(stderr, "%s: unloaded %.0f req/s: p50 %s p99 %s\n", o.label, o.unloadedRate, ms(rep.Unloaded.AdmittedP50), ms(rep.UnloadedP99))
	if rep.Capacity == 0 {
		rep.Searched = true
		rep.Capacity, rep.Trials = e.searchCapacity(ctx, &o, stderr)
		if rep.Capacity == 0 {
			return nil, fmt.Errorf("%s: saturated at every rate tried from %.0f req/s down (lower -search-start)", o.label, o.searchStart)
		}
	}
	for _, f := range o.factors {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e.warm(ctx, &o, stderr)
		s := e.step(ctx, &o, strconv.FormatFloat(f, 'g', -1, 64)+"x", f*rep.Capacity, o.stepDuration)
		fmt.Fprintf(stderr, "%s: %s (%.0f req/s): goodput %.0f req/s, admitted p99 %s, shed %d\n",
			o.label, s.Step, s.Offered, s.Goodput, ms(s.AdmittedP99), totalShed(s))
		for _, t := range s.Timeline {
			fmt.Fprintf(stderr, "%s: %s %6.2fs %s\n", o.label, s.Step, t.At.Seconds(), t)
		}
		rep.Steps = append(rep.Steps, s)
	}
	return rep, ctx.Err()
}

// Capacity search bounds: a trial is saturated when fewer than
// capacityMinSuccess of its requests were answered without a 5xx in time,
// when any timed out or was dropped, when goodput fell under
// capacityMinGoodput of the offered rate, or (with -server-pid) when the
// server used capacityMaxCPU of a core or more. The search raises the rate
// by capacityGrowth until a rate is saturated (two trials at it agreeing),
// at most capacityMaxRaises times, then bisects capacityBisections times.
const (
	capacityMinSuccess = 0.99
	capacityMinGoodput = 0.95
	capacityMaxCPU     = 0.95
	capacityGrowth     = 1.5
	capacityMaxRaises  = 12
	capacityBisections = 3
)

// saturation reports why trial s shows the server saturated, or "" when
// goodput still tracks the offered rate and the server's core has room.
// Tail latency is no criterion: scheduling and GC tails cross any bound
// tied to the unloaded p99 long before the core is full (the first run
// stopped at 1,500 req/s on a server that served 6,000 at 96 %).
func saturation(s stepResult) string {
	switch {
	case s.SuccessShare < capacityMinSuccess:
		return fmt.Sprintf("%.1f %% answered < %.0f %%", 100*s.SuccessShare, 100*capacityMinSuccess)
	case s.Timeouts > 0 || s.Dropped > 0:
		return fmt.Sprintf("%d timeouts, %d dropped", s.Timeouts, s.Dropped)
	case s.Goodput < capacityMinGoodput*s.Offered:
		return fmt.Sprintf("goodput %.0f < %.0f %% of offered", s.Goodput, 100*capacityMinGoodput)
	case s.ServerCPUShare >= capacityMaxCPU:
		return fmt.Sprintf("server CPU %.0f %% ≥ %.0f %% of a core", 100*s.ServerCPUShare, 100*capacityMaxCPU)
	}
	return ""
}

// findCapacity is the search of searchCapacity over trial: it raises the
// rate from start by capacityGrowth while trials are not saturated (at
// most capacityMaxRaises times, and not past 1e6 req/s), then bisects
// capacityBisections times between the last unsaturated rate and the
// first saturated one. A rate counts as saturated only when a second
// trial at it is saturated too: one trial near the knee (its server CPU
// at the 95 % bound, or a pause) otherwise ended the search well below
// (5 Dec 2026: 2,109 req/s saturated at 95 % of a core, capacity 2,004;
// the same search after the runs found 2,320, with 2,109 at 87 %). The
// rule is one-sided — a trial below saturation is taken at once — so a
// rate near the knee now counts as saturated less often, and the search
// leans high by at most a bisection step. It returns the highest rate
// tried that was not found saturated (0 when even the lowest was) and
// every trial, and passes log one line per trial (rate, goodput, CPU,
// verdict). At most
// 2·(capacityMaxRaises+1+capacityBisections) trials; trial returns false
// to end the search early (interrupted).
func findCapacity(start float64, trial func(rate float64) (stepResult, bool), log func(string)) (float64, []stepResult) {
	var trials []stepResult
	once := func(rate float64, again string) (sat, ok bool) {
		s, ok := trial(rate)
		if !ok {
			return false, false
		}
		trials = append(trials, s)
		why := saturation(s)
		verdict := "below saturation"
		if why != "" {
			verdict = "saturated: " + why
		}
		cpu := ""
		if s.ServerCPUShare > 0 {
			cpu = fmt.Sprintf(", server CPU %.0f %%", 100*s.ServerCPUShare)
		}
		log(fmt.Sprintf("%strial %.0f req/s: goodput %.0f req/s, %.2f %% answered, p99 %s%s → %s",
			again, rate, s.Goodput, 100*s.SuccessShare, ms(s.AdmittedP99), cpu, verdict))
		return why != "", true
	}
	try := func(rate float64) (sat, ok bool) {
		if sat, ok = once(rate, ""); sat && ok {
			sat, ok = once(rate, "again: ")
		}
		return sat, ok
	}
	good, bad := 0.0, start
	for raise := 0; ; raise++ {
		sat, ok := try(bad)
		if !ok {
			return good, trials
		}
		if sat {
			break
		}
		good = bad
		if raise == capacityMaxRaises || bad*capacityGrowth > 1e6 {
			log(fmt.Sprintf("no saturation up to %.0f req/s: capacity is at least that", good))
			return good, trials
		}
		bad *= capacityGrowth
	}
	for range capacityBisections {
		mid := (good + bad) / 2
		sat, ok := try(mid)
		if !ok {
			break
		}
		if sat {
			bad = mid
		} else {
			good = mid
		}
	}
	return good, trials
}

// searchCapacity finds the capacity by saturation (findCapacity), one
// trial of -trial-duration per rate (two when the first is saturated),
// each after a cooldown, and prints each
// trial's line to stderr.
func (e *engine) searchCapacity(ctx context.Context, o *overloadOptions, stderr io.Writer) (float64, []stepResult) {
	return findCapacity(o.searchStart, func(rate float64) (stepResult, bool) {
		if ctx.Err() != nil {
			return stepResult{}, false
		}
		e.warm(ctx, o, stderr)
		s := e.step(ctx, o, "trial", rate, o.trialDuration)
		return s, ctx.Err() == nil
	}, func(line string) { fmt.Fprintf(stderr, "%s: %s\n", o.label, line) })
}

// warm readies the server and the generator for a step: it opens the
// connections (warmConns; a short count is printed), collects the
// generator's garbage when -gc-limit-mib holds its collector off (each step
// starts with an empty heap and reaches the limit only past about 1 GiB of
// its own allocations), then waits for the server to be quiet again
// (cooldown), the burst of opening them included.
func (e *engine) warm(ctx context.Context, o *overloadOptions, stderr io.Writer) {
	if n := e.warmConns(ctx); n < e.o.concurrency && ctx.Err() == nil {
		fmt.Fprintf(stderr, "%s: warmed %d of %d connections (raise ulimit -n?); the step dials the rest\n", o.label, n, e.o.concurrency)
	}
	if o.gcLimitMiB > 0 {
		runtime.GC()
	}
	e.cooldown(ctx, o.timeout)
}

// warmConns opens every connection -concurrency allows, holding every
// answer until all have come so that each takes its own connection, and
// leaves them idle in the pool (later calls find them there), so a step
// dials almost nothing (the probes may take a few more): the generator
// holds its connections as a front proxy holds its pool to the server.
// It returns how many it holds. Without it every step started with a
// storm of dials — thousands in its first 100 ms at 15,000 req/s — and a
// capacity search stopped at 73 % of what the server then served at 2×.
// Warming only the 10 ms of arrivals a step needs when the server keeps
// up was not enough: a server near capacity that fell behind for a moment
// made the generator dial more (6,872 in one 8 s step, by nstat), the
// accepts of those connections waited behind the whole run queue, their
// requests behind them, and the server fell 0.6–1.5 s behind (5 of 6
// steps of the stand-in at a quarter of its costs, 5,000 req/s, 5 Dec
// 2026; with every connection warmed, 0 of 4).
func (e *engine) warmConns(ctx context.Context) int {
	n := e.o.concurrency
	// The deadline bounds the wait for an answer, not the body reads
	// after the barrier: a read cut short discards its connection.
	deadline, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var (
		got, done sync.WaitGroup
		held      atomic.Int64
	)
	got.Add(n)
	for range n {
		done.Go(func() {
			rctx, rcancel := context.WithCancel(ctx)
			defer rcancel()
			stop := context.AfterFunc(deadline, rcancel)
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, e.o.target+"/health/live", nil)
			resp, err := e.client.Do(req)
			answered := stop() // false: the deadline already cancelled it
			got.Done()
			if err != nil {
				return
			}
			if answered {
				held.Add(1)
			}
			got.Wait() // hold the connection until every request has one
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	done.Wait()
	return int(held.Load())
}

// cooldown waits until the server answers /health/live within 10 ms again
// (a server that queued may still be working off its backlog), for at
// most timeout.
func (e *engine) cooldown(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline) && ctx.Err() == nil; {
		t0 := time.Now()
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, e.o.target+"/health/live", nil)
		resp, err := e.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && time.Since(t0) < 10*time.Millisecond {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stepStats collects a step's results from every worker.
type stepStats struct {
	start    time.Time
	mu       sync.Mutex
	admitted histogram
	// settled: the requests due settleAfter or later into the step (the
	// step's totals include the transient before shedding starts).
	settled         time.Time
	settledGood     uint64
	lastSettledGood time.Time
	settledAdmitted histogram
	settledProbe    histogram
	settledRejS     histogram // the server's refusals, at the client
	settledRejL     histogram // the client throttle's
	rejectC         histogram
	rejectS         histogram
	rejectL         histogram
	lag             histogram
	live            histogram
	ready           histogram
	prio            [prioCount]prioResult
	dropped         uint64
	timeouts        uint64
	probeBad        uint64
	lastGood        time.Time  // the latest answer counted in goodput
	costs           routeCosts // nil: no work-weighted goodput
	sentCost        time.Duration
	goodCost        time.Duration
	settledGoodCost time.Duration
	timeline        []timeSlice // with -timeline: by the answer's end
	// firstShed is nanoseconds after start of the first shed answer + 1
	// (0: none yet).
	firstShed atomic.Int64
}

// outcome is one request's result.
type outcome struct {
	class        int
	route        string
	due, started time.Time
	end          time.Time
	status       int
	shed         bool
	local        bool          // refused by the client's throttle, never sent
	serverShed   time.Duration // from Server-Timing, 0 if absent
	err          error
}

func (s *stepStats) record(x outcome) {
	if x.shed && !x.local { // the server's first refusal
		at := int64(x.end.Sub(s.start)) + 1
		for {
			cur := s.firstShed.Load()
			if (cur != 0 && cur <= at) || s.firstShed.CompareAndSwap(cur, at) {
				break
			}
		}
	}
	good := x.err == nil && x.status > 0 && x.status < 500
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timeline != nil && x.class != prioCritical {
		at := x.end
		if errors.Is(x.err, errDropped) {
			at = x.due // never sent: it counts when it was due
		}
		s.slice(at).add(x, good)
	}
	p := &s.prio[x.class]
	p.Sent++
	cost := time.Duration(0)
	if s.costs != nil && x.class != prioCritical {
		cost = s.costs.of(x.route)
		s.sentCost += cost
		p.SentCost += cost
		if good {
			s.goodCost += cost
		}
	}
	switch {
	case x.shed && x.local:
		p.Shed++
		p.ShedLocal++
		s.rejectL.record(x.end.Sub(x.started))
	case x.shed:
		p.Shed++
		s.rejectC.record(x.end.Sub(x.started))
		if x.serverShed > 0 {
			s.rejectS.record(x.serverShed)
		}
	case good:
		p.Good++
		if x.class != prioCritical && x.end.After(s.lastGood) {
			s.lastGood = x.end
		}
	default:
		p.Failed++
		if x.err != nil && errors.Is(x.err, context.DeadlineExceeded) {
			s.timeouts++
		}
	}
	if !x.started.IsZero() {
		s.lag.record(x.started.Sub(x.due))
	}
	lat := x.end.Sub(x.due)
	if !x.due.Before(s.settled) {
		switch {
		case x.class == prioCritical:
			s.settledProbe.record(lat)
		case x.shed && x.local:
			s.settledRejL.record(x.end.Sub(x.started))
		case x.shed:
			s.settledRejS.record(x.end.Sub(x.started))
		default:
			s.settledAdmitted.record(lat)
			if good {
				s.settledGood++
				s.settledGoodCost += cost
				if x.end.After(s.lastSettledGood) {
					s.lastSettledGood = x.end
				}
			}
		}
	}
	switch {
	case x.route == "GET /health/live":
		s.live.record(lat)
	case x.route == "GET /health/ready":
		s.ready.record(lat)
	case !x.shed:
		s.admitted.record(lat)
	}
	if x.class == prioCritical && (!good || x.status != http.StatusOK) {
		s.probeBad++
	}
}

func (s *stepStats) result(name string, rate float64, d time.Duration) stepResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := stepResult{Step: name, Offered: rate, Duration: d, StartUnixNano: s.start.UnixNano(), Dropped: s.dropped, Timeouts: s.timeouts,
		AdmittedP50: s.admitted.quantile(.5), AdmittedP99: s.admitted.quantile(.99),
		LiveP99: s.live.quantile(.99), ReadyP99: s.ready.quantile(.99), ProbeFailures: s.probeBad,
		RejectClientP99: s.rejectC.quantile(.99), RejectServerP99: s.rejectS.quantile(.99), RejectServerMax: s.rejectS.max,
		RejectLocalP99: s.rejectL.quantile(.99), Timeline: s.timeline,
		Settled: settledResult{After: s.settled.Sub(s.start), AdmittedP99: s.settledAdmitted.quantile(.99),
			ProbeP99: s.settledProbe.quantile(.99), RejectP99: max(s.settledRejS.quantile(.99), s.settledRejL.quantile(.99))},
		LagP99: s.lag.quantile(.99), TimeToShed: -1}
	var probes histogram
	probes.merge(&s.live)
	probes.merge(&s.ready)
	r.ProbeP99 = probes.quantile(.99)
	if f := s.firstShed.Load(); f > 0 {
		r.TimeToShed = time.Duration(f - 1)
	}
	var sent, good uint64
	for i := range s.prio {
		p := s.prio[i]
		p.Priority = prioNames[i]
		r.Priorities = append(r.Priorities, p)
		if i != prioCritical {
			sent += p.Sent
			good += p.Good
		}
	}
	if sent > 0 {
		r.SuccessShare = float64(good) / float64(sent)
	}
	// Like Goodput: until the step's end or the last such answer if later
	// (a backlog still answered after the step).
	if rest := max(d, s.lastSettledGood.Sub(s.start)) - r.Settled.After; rest > 0 {
		r.Settled.Goodput = float64(s.settledGood) / rest.Seconds()
		r.Settled.WorkGoodput = s.settledGoodCost.Seconds() / rest.Seconds()
	}
	// Over the step, or until the last good answer when a backlog was
	// still answered after it (vegeta's throughput).
	elapsed := max(d, s.lastGood.Sub(s.start)).Seconds()
	r.Goodput = float64(good) / elapsed
	if s.costs != nil && sent > 0 {
		r.WorkGoodput = s.goodCost.Seconds() / elapsed
		r.MeanCost = s.sentCost / time.Duration(sent)
	}
	return r
}

// step offers rate req/s of the mix for d, plus the probes, and waits for
// every request to end (at most -timeout after the last one was due).
func (e *engine) step(ctx context.Context, o *overloadOptions, name string, rate float64, d time.Duration) stepResult {
	var cpu0 time.Duration
	var wait0 map[string]time.Duration
	if o.serverPID > 0 {
		cpu0, _ = processCPU(o.serverPID)
		wait0, _ = threadRunDelays("/proc", o.serverPID)
	}
	gen0 := selfCPU()
	st := &stepStats{start: time.Now(), costs: o.routeCosts}
	st.settled = st.start.Add(min(settleAfter, d/2))
	if o.timeline {
		st.timeline = []timeSlice{}
	}
	var clients [prioCount]*http.Client
	if e.runClients != nil {
		clients = *e.runClients
	} else {
		c, closeThrottles, err := e.classClients(o)
		if err != nil {
			panic(err) // parseOverloadFlags built one with these options
		}
		defer closeThrottles()
		clients = c
	}
	type job struct {
		op  op
		due time.Time
	}
	jobs := make(chan job, o.load.concurrency)
	var wg sync.WaitGroup
	for range o.load.concurrency {
		wg.Go(func() {
			for j := range jobs {
				st.record(e.sendTimed(clients[routeClass(j.op.route)], j.op, j.due, o.timeout))
			}
		})
	}
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var probes sync.WaitGroup
	if o.probeRate > 0 {
		for _, path := range []string{"/health/live", "/health/ready"} {
			probes.Go(func() {
				probe := op{route: "GET " + path, method: http.MethodGet, path: path, client: "198.18.255.255"}
				pace(runCtx, st.start, o.probeRate, func(due time.Time) {
					probes.Go(func() { st.record(e.sendTimed(e.client, probe, due, o.timeout)) })
				})
			})
		}
	}
	w := newWorkload(&o.load, 0, e.menus)
	pace(runCtx, st.start, rate, func(due time.Time) {
		j := job{w.next(), due}
		select {
		case jobs <- j:
		default:
			st.record(outcome{class: routeClass(j.op.route), route: j.op.route, due: due, end: due.Add(o.timeout), err: errDropped})
			st.mu.Lock()
			st.dropped++
			st.mu.Unlock()
		}
	})
	close(jobs)
	wg.Wait()
	probes.Wait()
	r := st.result(name, rate, d)
	r.GenCPUShare = (selfCPU() - gen0).Seconds() / time.Since(st.start).Seconds()
	if o.serverPID > 0 {
		if cpu, err := processCPU(o.serverPID); err == nil && cpu0 > 0 {
			r.ServerCPU = cpu - cpu0
			r.ServerCPUShare = r.ServerCPU.Seconds() / time.Since(st.start).Seconds()
		}
		if wait, err := threadRunDelays("/proc", o.serverPID); err == nil && wait0 != nil {
			r.ServerWait = runDelaySince(wait0, wait)
			r.ServerWaitShare = r.ServerWait.Seconds() / time.Since(st.start).Seconds()
		}
	}
	return r
}

// settleAfter is how far into a step (at most half of it) the settled
// figures start: a step jumps from nothing to f× capacity at once, and
// the limiter needs a moment to find its level.
const settleAfter = 2 * time.Second

// settledResult is a step's figures for the requests due settleAfter or
// later into it: the steady state, without the transient at its start.
type settledResult struct {
	After time.Duration `json:"after_ns"`
	// Goodput counts the good answers to those requests over the rest of
	// the step, or until the last of them when a backlog was still
	// answered after it.
	Goodput     float64       `json:"goodput_rps"`
	WorkGoodput float64       `json:"work_goodput,omitempty"` // with -route-costs
	AdmittedP99 time.Duration `json:"admitted_p99_ns"`
	ProbeP99    time.Duration `json:"probe_p99_ns"` // live and ready together
	// RejectP99 is the client-side p99 latency of the server's refusals
	// or of the client throttle's, whichever is higher.
	RejectP99 time.Duration `json:"reject_p99_ns"`
}

// timeSliceWidth is the width of a -timeline slice.
const timeSliceWidth = 250 * time.Millisecond

// timeSlice counts the answers (probes excluded) that ended within one
// slice of a step: how the step unfolded — the transient before shedding
// starts, oscillations of the shed rate — which its totals hide.
type timeSlice struct {
	At     time.Duration `json:"at_ns"` // from the step's start
	Good   int           `json:"good"`
	Shed   int           `json:"shed"`       // refused by the server
	Local  int           `json:"shed_local"` // refused by the client's throttle
	Failed int           `json:"failed"`     // sent, not answered without a 5xx in time
	// Dropped were due in this slice but never sent: every connection
	// was busy.
	Dropped int `json:"dropped"`
	// Latency from due time of the requests sent (good, shed by the
	// server or failed): mean and max.
	Mean time.Duration `json:"mean_ns"`
	Max  time.Duration `json:"max_ns"`
	// LagMax is the longest lag, from due time to the call that sends
	// it, of the requests that ended in this slice (local refusals left
	// out): how late the generator itself was. A wait for a connection
	// inside the transport comes after that call, so it counts in the
	// latency, not here.
	LagMax time.Duration `json:"lag_max_ns"`
	sum    time.Duration
}

func (t timeSlice) String() string {
	return fmt.Sprintf("good %5d shed %5d local %5d failed %5d dropped %5d latency mean %s max %s, generator lag max %s",
		t.Good, t.Shed, t.Local, t.Failed, t.Dropped, ms(t.Mean), ms(t.Max), ms(t.LagMax))
}

// slice returns the timeline's slice holding instant at, growing the
// timeline as needed. s.mu held.
func (s *stepStats) slice(at time.Time) *timeSlice {
	i := max(0, int(at.Sub(s.start)/timeSliceWidth))
	for len(s.timeline) <= i {
		s.timeline = append(s.timeline, timeSlice{At: time.Duration(len(s.timeline)) * timeSliceWidth})
	}
	return &s.timeline[i]
}

func (t *timeSlice) add(x outcome, good bool) {
	switch {
	case x.local:
		t.Local++
		return
	case errors.Is(x.err, errDropped):
		t.Dropped++
		return
	case x.shed:
		t.Shed++
	case good:
		t.Good++
	default:
		t.Failed++
	}
	lat := x.end.Sub(x.due)
	t.sum += lat
	t.Max = max(t.Max, lat)
	t.Mean = t.sum / time.Duration(t.Good+t.Shed+t.Failed)
	if !x.started.IsZero() {
		t.LagMax = max(t.LagMax, x.started.Sub(x.due))
	}
}

// processCPU returns the user + system CPU time of process pid, from
// /proc/<pid>/stat (Linux).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(string(b))
}

// threadRunDelays returns, by thread id, the time each thread of
// process pid has spent runnable but waiting for a core, from
// root/<pid>/task/<tid>/schedstat (root is /proc; Linux with
// schedstats, on by default). A thread that ends while it is read is
// left out; an error when none could be read.
func threadRunDelays(root string, pid int) (map[string]time.Duration, error) {
	dir := filepath.Join(root, strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	waits := make(map[string]time.Duration, len(tasks))
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		d, err := parseSchedstatWait(string(b))
		if err != nil {
			return nil, err
		}
		waits[t.Name()] = d
	}
	if len(waits) == 0 {
		return nil, fmt.Errorf("%s: no thread's schedstat readable", dir)
	}
	return waits, nil
}

// runDelaySince is the run-queue wait between two readings of
// threadRunDelays: for each thread of the second, what it waited since
// the first (all of it for a thread started in between). A thread that
// ended in between takes its share with it, so the sum undercounts by
// that; it is never negative.
func runDelaySince(before, after map[string]time.Duration) time.Duration {
	var sum time.Duration
	for tid, w := range after {
		if b, ok := before[tid]; ok {
			w -= b
		}
		sum += max(w, 0)
	}
	return sum
}

// parseSchedstatWait reads the run-queue wait (the second of its three
// fields, in ns) from a /proc schedstat line.
func parseSchedstatWait(line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return 0, fmt.Errorf("/proc schedstat: %d fields, want 3", len(f))
	}
	v, err := strconv.ParseUint(f[1], 10, 63)
	if err != nil {
		return 0, fmt.Errorf("/proc schedstat: %w", err)
	}
	return time.Duration(v), nil
}

// selfCPU returns this process's user + system CPU time
// (resilience.ProcessCPUTime), 0 where the OS does not report it.
func selfCPU() time.Duration {
	if cpu := resilience.ProcessCPUTime(); cpu != nil {
		return cpu()
	}
	return 0
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// parseProcStatCPU reads utime + stime (fields 14 and 15) from a
// /proc/<pid>/stat line; the command name (field 2) is in parentheses and
// may itself hold spaces and parentheses, so fields count from the last
// ')'.
func parseProcStatCPU(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	var ticks uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

var errDropped = errors.New("not sent: every connection busy")

// pace calls fire at start, start+1/rate, … until ctx ends, catching up
// in bursts when it wakes late so the offered rate holds.
func pace(ctx context.Context, start time.Time, rate float64, fire func(due time.Time)) {
	interval := time.Duration(float64(time.Second) / rate)
	next := start
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		for now := time.Now(); !next.After(now); next = next.Add(interval) {
			if ctx.Err() != nil {
				return
			}
			fire(next)
		}
		timer.Reset(time.Until(next))
	}
}

// classClients returns the client of each priority class for one step
// (or, with -client-throttle-per-run, for the whole run):
// e.client for every class without -client-throttle, else a client whose
// transport is a fresh httpclient.ThrottleTransport per class (over
// e.client's transport, so the connections are shared) for every class
// but critical. close releases the throttles.
func (e *engine) classClients(o *overloadOptions) (clients [prioCount]*http.Client, release func(), err error) {
	var throttles []*httpclient.ThrottleTransport
	release = func() {
		for _, t := range throttles {
			t.Close()
		}
	}
	for i := range clients {
		clients[i] = e.client
		if o.throttleK == 0 || i == prioCritical {
			continue
		}
		t, err := httpclient.NewThrottle(e.client.Transport, httpclient.ThrottleConfig{K: o.throttleK, Window: o.throttleWindow})
		if err != nil {
			release()
			return clients, nil, err
		}
		throttles = append(throttles, t)
		clients[i] = &http.Client{Transport: t}
	}
	return clients, release, nil
}

// sendTimed sends o through c, due at due, giving up timeout after due.
func (e *engine) sendTimed(c *http.Client, o op, due time.Time, timeout time.Duration) outcome {
	x := outcome{class: routeClass(o.route), route: o.route, due: due}
	ctx, cancel := context.WithDeadline(context.Background(), due.Add(timeout))
	defer cancel()
	req := e.newRequest(ctx, o)
	x.started = time.Now()
	if e.requestStart != "" {
		req.Header.Set(e.requestStart, "t="+strconv.FormatInt(x.started.UnixMicro(), 10))
	}
	resp, err := c.Do(req)
	if err != nil {
		x.end, x.err = time.Now(), err
		if errors.Is(err, httpclient.ErrThrottled) {
			x.shed, x.local, x.err = true, true, nil
			return x
		}
		if ctx.Err() != nil {
			x.err = context.DeadlineExceeded
		}
		return x
	}
	x.status = resp.StatusCode
	if resp.StatusCode == http.StatusServiceUnavailable {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		x.shed = bytes.Contains(b, []byte("overloaded"))
		x.serverShed, _ = serverTiming(resp.Header.Get("Server-Timing"), "shed")
	} else if o.onBody != nil && resp.StatusCode/100 == 2 {
		b, _ := io.ReadAll(resp.Body)
		o.onBody(b)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	x.end = time.Now()
	if err != nil && ctx.Err() != nil {
		x.err = context.DeadlineExceeded
	}
	return x
}

// serverTiming returns the dur (milliseconds, RFC: W3C Server Timing) of
// the metric named name in a Server-Timing header value such as
// `shed;dur=0.012, db;dur=3`.
func serverTiming(h, name string) (time.Duration, bool) {
	for m := range strings.SplitSeq(h, ",") {
		parts := strings.Split(m, ";")
		if strings.TrimSpace(parts[0]) != name {
			continue
		}
		for _, p := range parts[1:] {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || k != "dur" {
				continue
			}
			f, err := strconv.ParseFloat(strings.Trim(v, `"`), 64)
			if err != nil || f < 0 {
				return 0, false
			}
			return time.Duration(f * float64(time.Millisecond)), true
		}
	}
	return 0, false
}

// overloadClient is an HTTP client that may hold concurrency connections
// and keeps them alive between requests.
func overloadClient(concurrency int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = concurrency
	tr.MaxIdleConnsPerHost = concurrency
	return &http.Client{Transport: tr}
}

func totalShedLocal(s stepResult) uint64 {
	var n uint64
	for _, p := range s.Priorities {
		n += p.ShedLocal
	}
	return n
}

func totalShed(s stepResult) uint64 {
	var n uint64
	for _, p := range s.Priorities {
		n += p.Shed
	}
	return n
}

// routeCosts is each route's CPU cost in the server, "*" for the routes
// not named (-route-costs).
type routeCosts map[string]time.Duration

// of returns route's cost.
func (c routeCosts) of(route string) time.Duration {
	if d, ok := c[route]; ok {
		return d
	}
	return c["*"]
}

// String formats c as -route-costs takes it.
func (c routeCosts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + c[k].String()
	}
	return strings.Join(parts, ",")
}

// Set parses "route=duration,...,*=duration": every route that can
// be sent needs a cost, so "*" is required; a route is named as the
// tables name it ("POST /orders"), once.
func (c *routeCosts) Set(v string) error {
	m := routeCosts{}
	for part := range strings.SplitSeq(v, ",") {
		route, ds, ok := strings.Cut(part, "=")
		route = strings.TrimSpace(route)
		d, err := time.ParseDuration(strings.TrimSpace(ds))
		if !ok || err != nil || d <= 0 || !(route == "*" || routeName(route)) {
			return fmt.Errorf("-route-costs: %q is not route=positive duration, the route as \"METHOD /path\" or *", part)
		}
		if _, dup := m[route]; dup {
			return fmt.Errorf("-route-costs: %s given twice", route)
		}
		m[route] = d
	}
	if _, ok := m["*"]; !ok {
		return errors.New("-route-costs: give the other routes' cost as *=duration")
	}
	*c = m
	return nil
}

// routeName reports whether s reads "METHOD /path", as op.route does.
func routeName(s string) bool {
	method, path, ok := strings.Cut(s, " ")
	return ok && method != "" && strings.ToUpper(method) == method && strings.HasPrefix(path, "/") && !strings.ContainsAny(path, " \t")
}
