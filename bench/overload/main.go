// Command overload is a stand-in for servio in the overload benchmark
// (scripts/bench-overload): an HTTP server with servio's routes, its
// priorities and a per-route CPU cost like servio's, whose admission is
// chosen with -admission:
//
//	off       no limiter: everything queues in the Go scheduler
//	perfkit   resilience.AdaptiveLimiter, configured as servio configures it
//	failsafe  failsafe-go v0.9.8's adaptivelimiter built prioritized
//	          (priority.Prioritizer calibrated every 100 ms)
//	refuse    refuses every request but the probes and logins (the
//	          generator signs in first): what a refusal costs the server
//	          (scripts/bench-overload divides its CPU time by the
//	          refusals, with logins left out of the mix), which bounds the
//	          goodput of any admission that reads requests before refusing
//	          them
//
// Why a stand-in: servio is a package main in the perfkit module and
// failsafe-go may only live in this bench module, so failsafe-go cannot be
// put in front of servio's handlers. This program runs the same handlers
// behind each of the three admissions, so perfkit against failsafe-go
// against none is an exact comparison here; servio itself is measured off
// and with perfkit's limiter with the same generator (loadgen overload),
// which shows how close the stand-in is to the real thing.
//
// The handlers burn CPU (SHA-256 rounds calibrated at start, or
// -rounds-per-ms from a -calibrate run, so that every server of a
// comparison does the same work per request) for about as
// long as servio spends on the route — measured with loadgen at 300 req/s
// and servio's CPU time from /proc (utime+stime ÷ requests, GOMAXPROCS=1):
// 0.36 ms a request for reads alone, 0.95 ms for an order write, 20 ms for
// a login (PBKDF2, 100,000 rounds); the stand-in burns 0.3, 0.9 and 20 ms
// and adds its own HTTP handling (about 0.05 ms) — and the assistant
// waits 150 ms, servio's simulated LLM. Answers are JSON of servio's
// shape, with menus from an in-memory table (no database: servio's reads
// are L1 cache hits in this mix) so loadgen can place valid orders. And
// each request with a CPU cost allocates, beyond its HTTP and JSON,
// -garbage bytes (default: what servio allocates per read beyond the
// stand-in, about 3.5 KB; see defaultGarbage), so that it allocates what
// servio does (about 6 KB a read) and its collector runs as often: on one
// core each mark phase delays what waits for the core. The
// measurements came from a busy machine; scripts/bench-overload prints both
// servers' capacity, so how close the stand-in is shows in every run.
// -cost-scale scales every cost. Refusals are servio's: 503, Retry-After,
// {"error": "server overloaded …"} and "Server-Timing: shed;dur=<ms>".
// Health probes are critical: perfkit admits them over the limit;
// failsafe-go has no never-shed priority, so probes bypass its limiter.
//
// With -queue-header the perfkit limiter holds the queue since each
// request's stamp (resilience.QueueDelay, as servio's
// -adaptive-queue-header) under its target. -queue-stat mean or max holds
// each reading's mean or longest wait there instead of its shortest (an
// experiment; see waits); -max-wait refuses calls that arrived too long
// ago while the limiter sheds (AdaptiveConfig.MaxWait, servio's
// -adaptive-max-wait); -queue-log prints each second where the time went:
// the wait before the handlers and, for admitted requests, stamp to
// handler end and the handler (its limiter queue included).
//
// -network-first, with -min-limit 1 -max-limit 1 -max-queue N
// -queue-timeout 0 -delay-target 0 (scripts/bench-overload's "nf" run:
// no delay signal, as servio's -adaptive-network-first alone), runs one request
// at a time, queues N and refuses the rest at once, and passes each freed
// slot on only after the Go runtime has polled the network
// (AdaptiveConfig.NetworkFirst, servio's -adaptive-network-first): on one
// busy P a new request is then read between two handlers instead of at
// the runtime's next 10 ms poll.
//
// -work-slots N (an experiment, not in scripts/bench-overload) lets at most
// N admitted handlers run at once behind a FIFO semaphore, and with
// -queue-header the Delay becomes the wait from the stamp to a slot. Run
// with GOMAXPROCS=2 on one core and N = 1, one P is always free to read
// requests and refuse them as they come, instead of every P running
// handlers while new requests wait for the next network poll (on one
// busy P, up to 10 ms): the refusals' client p99 fell from 27–35 ms to
// 7–20 ms, but the server served 55–81 % of the capacity's requests
// instead of 86–103 %, its core 88–90 % busy (BENCHMARKS.md "Overload").
// Stamps are then put in the context unchecked (the generator is
// trusted) and observed, with ObserveArrival's checks, at the slot.
//
// Two measurements of the machine rather than of a server: -stalls D
// spins on the core for D and prints how often something else took it
// (the hypervisor, interrupts: gaps between two clock readings), a floor
// under any latency's tail there; -burn-log FILE records the speed the
// core gave the handlers' burns every 250 ms, which scripts/bench-overload
// compares per step with the limiter-off run's 1× step, where the
// capacity was meant to hold.
//
//	go run ./overload -addr 127.0.0.1:18090 -admission failsafe
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/priority"

	"github.com/servio/perfkit/internal/cpuburn"
	"github.com/servio/perfkit/resilience"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "overload:", err)
		os.Exit(1)
	}
}

// prio is servio's route priority (resilience.Priority).
type prio = resilience.Priority

// admission admits a request of a priority or refuses it; release ends an
// admitted one (canceled: the client went away).
type admission func(ctx context.Context, p prio) (release func(canceled bool), err error)

func run() error {
	addr := flag.String("addr", "127.0.0.1:18090", "listen address")
	mode := flag.String("admission", "off", "off, perfkit, failsafe or refuse")
	minLimit := flag.Int("min-limit", 100, "perfkit: MinLimit (servio's -adaptive-min-limit)")
	maxLimit := flag.Int("max-limit", 0, "perfkit: MaxLimit (servio's -adaptive-network-first N sets MinLimit = MaxLimit = N); 0: the limiter's default")
	networkFirst := flag.Bool("network-first", false, "perfkit: AdaptiveConfig.NetworkFirst (servio's -adaptive-network-first): a freed slot passes to a queued call only after the runtime polled the network; with a small limit (-min-limit 1 -max-limit 1)")
	maxQueue := flag.Int("max-queue", 64, "perfkit: MaxQueue (servio's)")
	queueTimeout := flag.Duration("queue-timeout", 20*time.Millisecond, "perfkit: QueueTimeout (servio's)")
	delayTarget := flag.Duration("delay-target", 2*time.Millisecond, "perfkit: DelayTarget (servio's -adaptive-delay-target); 0: no Delay signal, as servio's default (the concurrency limit and its queue alone shed)")
	scale := flag.Float64("cost-scale", 1, "multiplies every route's CPU cost")
	garbage := flag.Int("garbage", defaultGarbage, "bytes each request with a CPU cost allocates and drops, beyond the stand-in's own HTTP and JSON (see defaultGarbage): on one core how often the collector runs shapes every latency's tail; 0: none")
	queueHeader := flag.String("queue-header", "", "perfkit: the request-start header (X-Request-Start) whose standing queue (resilience.QueueDelay) is the Delay; empty: the run-queue delay (resilience.SchedulerDelay)")
	cpuGate := flag.Bool("cpu-gate", true, "perfkit: gate the Delay on the process's CPU use (AdaptiveConfig.CPUTime); off by default with -queue-header, as servio")
	queueStat := flag.String("queue-stat", "min", "with -queue-header: the wait per reading the limiter holds under its target, min (resilience.QueueDelay), mean, max or minmax (the shortest of the last 5 readings' max)")
	queueLog := flag.Bool("queue-log", false, "with -queue-header: print each second the readings' average min, mean and max wait and, for admitted requests, the p50 and p99 from stamp to handler end and of the handler (its limiter queue included)")
	maxWait := flag.Duration("max-wait", 0, "perfkit with -queue-header: AdaptiveConfig.MaxWait (servio's -adaptive-max-wait): while the limiter sheds, refuse a call that arrived longer ago than this (low; normal 2×, high 4×)")
	workSlots := flag.Int("work-slots", 0, "experiment: at most N admitted handlers run at once (a FIFO semaphore after the limiter; critical exempt); with -queue-header the Delay is then the wait from the stamp to a slot. Run with GOMAXPROCS above the cores so that a P is free to read and refuse")
	roundsPerMS := flag.Float64("rounds-per-ms", 0, "the CPU burn's SHA-256 rounds per ms (what -calibrate prints); 0: calibrate at start. Give every server of a comparison the same value: calibrations at start differ by a few percent, and so would the work per request")
	calibrate := flag.Bool("calibrate", false, "print the CPU burn's SHA-256 rounds per ms on this core and exit")
	stallsFor := flag.Duration("stalls", 0, "spin for this long on this core, print how often the core stopped (gaps over 50 µs between two clock readings) and exit: the machine's own stalls, which no server on the core can answer faster than")
	burnLog := flag.String("burn-log", "", "append to this file every 250 ms the time (Unix ns), the SHA-256 rounds burned so far and the wall time spent burning them (ns): the core's speed while the handlers ran, which whatever takes the core from the server (the hypervisor, interrupts) lowers; with GOMAXPROCS=1 and short burns (see burner)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (until SIGTERM) to this file")
	maxRise := flag.Float64("delay-max-rise", 0, "perfkit: AdaptiveConfig.DelayMaxRise; 0: servio's (0.1 with -queue-header, else the limiter's default)")
	flag.Parse()
	if *calibrate {
		fmt.Printf("%.0f\n", newBurner().perMS)
		return nil
	}
	if flagSet("stalls") {
		if *stallsFor <= 0 {
			return fmt.Errorf("-stalls %v: want a duration above 0", *stallsFor)
		}
		fmt.Println(measureStalls(*stallsFor))
		return nil
	}
	if *queueHeader != "" && !flagSet("cpu-gate") {
		*cpuGate = false
	}
	if !(*roundsPerMS >= 0) || math.IsInf(*roundsPerMS, 0) {
		return fmt.Errorf("-rounds-per-ms %v: want 0 (calibrate) or a finite rate above 0", *roundsPerMS)
	}
	if *maxRise < 0 || *maxRise > 1 {
		return fmt.Errorf("-delay-max-rise %v: want 0 (the default) or a level in (0, 1]", *maxRise)
	}
	if (flagSet("queue-stat") || *queueLog || *maxWait != 0) && (*mode != "perfkit" || *queueHeader == "") {
		return errors.New("-queue-stat, -queue-log and -max-wait need -admission perfkit and -queue-header")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	defer stop()
	var (
		admit admission
		queue waits
	)
	switch *mode {
	case "off":
	case "perfkit":
		cfg := resilience.AdaptiveConfig{Name: "overload",
			MinLimit: *minLimit, MaxLimit: *maxLimit, InitialLimit: *minLimit, MaxQueue: *maxQueue, QueueTimeout: *queueTimeout,
			Delay: resilience.SchedulerDelay(), DelayTarget: *delayTarget, NetworkFirst: *networkFirst}
		if *queueHeader != "" {
			cfg.DelayMaxRise = 0.1
			queue.extra = *queueStat != "min" || *queueLog
			queue.arrival = *maxWait > 0
			cfg.MaxWait = *maxWait
			switch *queueStat {
			case "min":
				cfg.Delay = queue.minDelay
			case "mean":
				cfg.Delay = queue.meanDelay
			case "max":
				cfg.Delay = queue.maxDelay
			case "minmax":
				cfg.Delay = queue.minMaxDelay
			default:
				return fmt.Errorf("-queue-stat %q: want min, mean, max or minmax", *queueStat)
			}
		}
		if *maxRise > 0 {
			cfg.DelayMaxRise = *maxRise
		}
		if *cpuGate {
			cfg.CPUTime = resilience.ProcessCPUTime()
		}
		if *delayTarget == 0 {
			if *queueHeader != "" {
				return errors.New("-queue-header needs a -delay-target: the queue since the stamp is the delay held under it")
			}
			cfg.Delay, cfg.CPUTime = nil, nil
		}
		l, err := resilience.NewAdaptiveLimiter(cfg)
		if err != nil {
			return err
		}
		defer l.Close()
		admit = func(ctx context.Context, p prio) (func(bool), error) {
			pm, err := l.Acquire(ctx, p)
			if err != nil {
				return nil, err
			}
			return func(canceled bool) {
				var err error
				if canceled {
					err = context.Canceled
				}
				pm.Release(err)
			}, nil
		}
	case "failsafe":
		pr := adaptivelimiter.NewPrioritizer()
		defer pr.ScheduleCalibrations(ctx, 100*time.Millisecond)()
		l := adaptivelimiter.NewBuilder[any]().WithLimits(1, 1000, 20).BuildPrioritized(pr)
		levels := map[prio]priority.Priority{resilience.PriorityLow: priority.Low,
			resilience.PriorityNormal: priority.Medium, resilience.PriorityHigh: priority.High}
		admit = func(ctx context.Context, p prio) (func(bool), error) {
			if p == resilience.PriorityCritical {
				return func(bool) {}, nil
			}
			pm, err := l.AcquirePermitWithPriority(ctx, levels[p])
			if err != nil {
				return nil, err
			}
			return func(canceled bool) {
				if canceled {
					pm.Drop()
				} else {
					pm.Record()
				}
			}, nil
		}
	case "refuse":
		admit = func(_ context.Context, p prio) (func(bool), error) {
			if p == resilience.PriorityCritical {
				return func(bool) {}, nil
			}
			return nil, resilience.ErrOverloaded
		}
	default:
		return fmt.Errorf("-admission %q: want off, perfkit, failsafe or refuse", *mode)
	}

	if *workSlots > 0 && (*mode != "perfkit" || *queueLog || *queueStat != "min") {
		return errors.New("-work-slots needs -admission perfkit, without -queue-log or -queue-stat (they read the wait at the request's read, the slots' Delay at the slot)")
	}
	if *workSlots > 0 {
		slots = make(chan struct{}, *workSlots)
		slotQ = &queue.min
		queue.arrival = true
	}
	b := &burner{perMS: *roundsPerMS}
	if b.perMS == 0 {
		b = newBurner()
	}
	if *burnLog != "" {
		f, err := os.OpenFile(*burnLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		go b.log(ctx, f)
	}
	exempt := ""
	if *mode == "refuse" {
		exempt = "POST /auth/login"
	}
	h := routes(admit, b, *scale, *garbage, exempt)
	if *queueHeader != "" {
		if *queueLog {
			go queue.log(ctx)
		}
		h = observeQueue(&queue, *queueHeader, h)
	}
	s := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe() }()
	fmt.Fprintf(os.Stderr, "overload: serving on %s, admission %s, %.0f SHA-256 rounds per ms\n", *addr, *mode, b.perMS)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// route is one of servio's routes as the stand-in serves it.
type route struct {
	pattern string
	p       prio
	cost    time.Duration // CPU
	wait    time.Duration // I/O wait (the simulated LLM)
	body    func(r *http.Request) (int, any)
}

// defaultGarbage is what servio allocates per read beyond what the
// stand-in does: at 1,500 req/s of the reads (loadgen overload,
// GOMAXPROCS=1, 6 Dec 2026; TotalAlloc over 10 s of the step) servio
// allocated 5,955 B in 76 allocations per request and the stand-in 2,424 B
// in 26. Calibrated on reads, it is dropped by every route with a CPU
// cost (writes, logins and the assistant too). A stand-in that allocated
// less than servio would collect less often than servio does, and on one
// core each mark phase delays the requests that wait for the core
// (BENCHMARKS.md "Overload").
const defaultGarbage = 3531

// garbageNode is drop's unit: 64 bytes, a size class of its own, with a
// pointer, as most of a request's allocations in servio are small and
// hold pointers.
type garbageNode struct {
	next *garbageNode
	_    [56]byte
}

// garbageSink keeps drop's allocations from being optimized away.
var garbageSink atomic.Pointer[garbageNode]

// drop allocates about n bytes on the heap, as a chain of 64-byte nodes,
// and leaves them for the collector: 3,531 bytes are 55 allocations of
// 3,520, where servio makes 50 more than the stand-in.
func drop(n int) {
	var head *garbageNode
	for range n / 64 {
		head = &garbageNode{next: head}
	}
	garbageSink.Store(head)
}

// routes serves servio's routes, each behind admit but the one whose
// pattern is exempt.
func routes(admit admission, b *burner, scale float64, garbage int, exempt string) http.Handler {
	// Typed values, as servio encodes (maps cost encoding/json a
	// reflect allocation per key: the stand-in allocated about 10 KB per
	// read where servio allocates about 6 KB, and on one core how often
	// the collector runs shapes the refusals' tail).
	type menuItem struct {
		ID         int    `json:"id"`
		Name       string `json:"name"`
		PriceCents int    `json:"price_cents"`
		Available  bool   `json:"available"`
	}
	type orderItem struct {
		MenuItemID int `json:"menu_item_id"`
		Quantity   int `json:"quantity"`
	}
	type orderBody struct {
		ID           int         `json:"id"`
		RestaurantID int         `json:"restaurant_id"`
		Status       string      `json:"status"`
		TotalCents   int         `json:"total_cents"`
		Items        []orderItem `json:"items"`
	}
	type healthBody struct {
		Status string `json:"status"`
	}
	menu := make([]menuItem, 40)
	for i := range menu {
		menu[i] = menuItem{ID: i + 1, Name: "dish " + strconv.Itoa(i+1), PriceCents: 900 + 10*i, Available: true}
	}
	ok := func(v any) func(*http.Request) (int, any) {
		return func(*http.Request) (int, any) { return http.StatusOK, v }
	}
	order := &orderBody{ID: 1, RestaurantID: 1, Status: "pending", TotalCents: 2700,
		Items: []orderItem{{MenuItemID: 1, Quantity: 2}, {MenuItemID: 2, Quantity: 1}}}
	orders := make([]*orderBody, 20)
	for i := range orders {
		orders[i] = order
	}
	const (
		read  = 300 * time.Microsecond
		write = 900 * time.Microsecond
		login = 20 * time.Millisecond
	)
	health := ok(&healthBody{Status: "pass"})
	all := []route{
		{"GET /health", resilience.PriorityCritical, 0, 0, health},
		{"GET /health/live", resilience.PriorityCritical, 0, 0, health},
		{"GET /health/ready", resilience.PriorityCritical, 0, 0, health},
		{"GET /restaurants/{id}/menu", resilience.PriorityNormal, read, 0, ok(&menu)},
		{"GET /orders/{id}", resilience.PriorityNormal, read, 0, ok(order)},
		{"GET /restaurants/{id}/orders", resilience.PriorityNormal, read, 0, ok(&orders)},
		{"GET /restaurants/{id}/inventory/low-stock", resilience.PriorityNormal, read, 0, ok([]any{})},
		{"POST /orders", resilience.PriorityHigh, write, 0, func(*http.Request) (int, any) { return http.StatusCreated, order }},
		{"PATCH /orders/{id}", resilience.PriorityHigh, write, 0, ok(order)},
		{"POST /auth/login", resilience.PriorityHigh, login, 0, func(r *http.Request) (int, any) {
			var c struct{ Email string }
			if json.NewDecoder(r.Body).Decode(&c) == nil && c.Email == "admin@servio.dev" {
				return http.StatusOK, map[string]string{"token": "stand-in"}
			}
			return http.StatusUnauthorized, map[string]string{"error": "invalid email or password"}
		}},
		{"POST /assistant/query", resilience.PriorityLow, read, 150 * time.Millisecond,
			ok(map[string]any{"answer": "Try the soup.", "simulated": true})},
	}
	mux := http.NewServeMux()
	for _, rt := range all {
		cost := time.Duration(float64(rt.cost) * scale)
		a := admit
		if rt.pattern == exempt {
			a = nil
		}
		mux.Handle(rt.pattern, shed(a, rt.p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.burn(cost)
			if cost > 0 && garbage > 0 {
				drop(garbage)
			}
			if rt.wait > 0 {
				select {
				case <-time.After(rt.wait):
				case <-r.Context().Done():
				}
			}
			status, v := rt.body(r)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(v)
		})))
	}
	return mux
}

// shed admits a request through admit (nil: no limiter) or answers as
// servio does when its limiter refuses.
func shed(admit admission, p prio, next http.Handler) http.Handler {
	if admit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		release, err := admit(r.Context(), p)
		if err != nil {
			if r.Context().Err() != nil && !errors.Is(err, resilience.ErrOverloaded) {
				return // the client went away while queued
			}
			w.Header().Set("Server-Timing", "shed;dur="+strconv.FormatFloat(float64(time.Since(start))/1e6, 'f', 3, 64))
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"server overloaded (` + p.String() + ` priority); retry in 1 s","retry_after":1}` + "\n"))
			return
		}
		defer func() { release(r.Context().Err() != nil) }()
		if slots != nil && p != resilience.PriorityCritical {
			select {
			case slots <- struct{}{}:
			case <-r.Context().Done():
				return // the client went away while it waited for a slot
			}
			defer func() { <-slots }()
			if start, ok := resilience.Arrival(r.Context()); ok {
				slotQ.ObserveArrival(start, time.Now())
			}
		}
		next.ServeHTTP(w, r)
	})
}

// slots and slotQ: -work-slots (experiment).
var (
	slots chan struct{}
	slotQ *resilience.QueueDelay
)

// flagSet reports whether the flag name was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// observeQueue records in q how long each request waited since the time
// stamped in its header before next handles it, as servio does — but
// from every peer: the benchmark's generator is the stand-in's proxy.
// Without -queue-stat or -queue-log that is all it does, as servio.
func observeQueue(q *waits, header string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		v := r.Header.Get(header)
		start, ok := resilience.ParseRequestStart(v)
		if slots == nil {
			ok = ok && q.min.ObserveArrival(start, t0) // servio's path, its checks included
		}
		if ok && q.arrival {
			r = r.WithContext(resilience.WithArrival(r.Context(), start))
		}
		if !ok || !q.extra {
			next.ServeHTTP(w, r)
			return
		}
		q.observe(t0.Sub(start))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		if sw.status != http.StatusServiceUnavailable { // admitted
			end := time.Now()
			q.total.record(end.Sub(start))
			q.handler.record(end.Sub(t0))
		}
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// waits is the stand-in's QueueDelay (min, the limiter's Delay by default)
// with, beside it when extra is set, each reading's mean and longest wait
// (-queue-stat) and what -queue-log prints. The mean and max are an
// experiment: on one P, Go's scheduler starts the goroutines of a network
// poll's batch in reverse order of readiness (runtime.netpollready pushes
// each onto a list head; see bench/netpollorder), so on a saturated P the
// last arrival of a batch waits least and the minimum reads low while the
// batch's first arrival waited the whole cycle.
type waits struct {
	min            resilience.QueueDelay
	extra          bool         // set before serving: track all below
	arrival        bool         // put each request's stamp in its context (resilience.WithArrival)
	sum, n, max    atomic.Int64 // this reading's waits
	logMin, logSum atomic.Int64 // since the last log line: readings' min and mean, summed
	logMax, logN   atomic.Int64 // readings' max summed, and the readings
	total, handler hist         // admitted requests: stamp to handler end, handler start (limiter queue included) to end

	mu     sync.Mutex       // guards recent and next (a late reading may overlap the next)
	recent [5]time.Duration // minMaxDelay's readings
	next   uint64
}

func (q *waits) observe(d time.Duration) {
	d = max(d, 0)
	q.sum.Add(int64(d))
	q.n.Add(1)
	for {
		m := q.max.Load()
		if int64(d) <= m || q.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// reading ends an interval and returns its shortest, mean and longest wait.
func (q *waits) reading() (lo, mean, hi time.Duration) {
	lo = q.min.Delay()
	n, sum, m := q.n.Swap(0), q.sum.Swap(0), q.max.Swap(0)
	if n > 0 {
		mean = time.Duration(sum / n)
	}
	q.logMin.Add(int64(lo))
	q.logSum.Add(int64(mean))
	q.logMax.Add(m)
	q.logN.Add(1)
	return lo, mean, time.Duration(m)
}

func (q *waits) minDelay() time.Duration  { d, _, _ := q.reading(); return d }
func (q *waits) meanDelay() time.Duration { _, d, _ := q.reading(); return d }
func (q *waits) maxDelay() time.Duration  { _, _, d := q.reading(); return d }

// minMaxDelay is the shortest of the last len(recent) readings' longest
// waits: under batches served last-in first-out the longest wait of a
// reading is the batch's cycle, and the shortest of several cycles
// rises only while the cycles stay long (CoDel's minimum, over batches).
func (q *waits) minMaxDelay() time.Duration {
	_, _, d := q.reading()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.recent[q.next%uint64(len(q.recent))] = d
	q.next++
	m := d
	for _, v := range q.recent[:min(q.next, uint64(len(q.recent)))] {
		m = min(m, v)
	}
	return m
}

// log prints, each second, the readings' average min, mean and max wait and,
// for admitted requests, the p50 and p99 from stamp to handler end and of
// the handler.
func (q *waits) log(ctx context.Context) {
	every(ctx, time.Second, func() {
		n := q.logN.Swap(0)
		if n == 0 {
			return
		}
		avg := func(v int64) float64 { return float64(v) / float64(n) / 1e6 }
		fmt.Fprintf(os.Stderr, "queue: %d readings, wait min %.2f mean %.2f max %.2f ms (averages); admitted: stamp to end %s, handler %s\n",
			n, avg(q.logMin.Swap(0)), avg(q.logSum.Swap(0)), avg(q.logMax.Swap(0)), q.total.quantiles(), q.handler.quantiles())
	})
}

// every calls fn every d until ctx is done.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// hist counts durations in 0.25 ms buckets up to 100 ms.
type hist struct{ b [400]atomic.Int64 }

func (h *hist) record(d time.Duration) {
	h.b[max(min(int(d/(250*time.Microsecond)), len(h.b)-1), 0)].Add(1)
}

// quantiles returns "p50 X p99 Y ms" (their buckets' upper bounds; 100:
// at least that), or "none", since its last call, and starts over.
func (h *hist) quantiles() string {
	var c [len(h.b)]int64
	var n, acc int64
	for i := range h.b {
		c[i] = h.b[i].Swap(0)
		n += c[i]
	}
	if n == 0 {
		return "none"
	}
	p50, p99 := -1.0, -1.0
	for i, v := range c {
		acc += v
		if p50 < 0 && acc*2 >= n {
			p50 = float64(i+1) / 4
		}
		if p99 < 0 && acc*100 >= 99*n {
			p99 = float64(i+1) / 4
		}
	}
	return fmt.Sprintf("p50 %.2f p99 %.2f ms", p50, p99)
}

// burner spends CPU: SHA-256 rounds, perMS of them per millisecond. It
// counts the rounds burned and the wall time they took. With GOMAXPROCS=1
// (as the script runs it) a burn shorter than the runtime's 10 ms
// preemption — a read's 0.3 ms — is never interrupted by another
// goroutine (no call in it yields), so rounds per ms of that time is the
// speed the core gave the handlers, less whatever took the core from this
// thread meanwhile (the hypervisor, interrupts). A 20 ms login burn may be
// preempted, and with more Ps than cores burns share the core: the log
// then reads low (the reads-only runs the script compares have neither).
type burner struct {
	perMS        float64
	done, wallNS atomic.Int64
}

// newBurner calibrates a burner on the CPU the process runs on (the
// scripts pin it with taskset).
func newBurner() *burner { return &burner{perMS: cpuburn.Calibrate()} }

func (b *burner) burn(d time.Duration) {
	n := cpuburn.For(d, b.perMS)
	t0 := time.Now()
	cpuburn.Rounds(n)
	b.wallNS.Add(int64(time.Since(t0)))
	b.done.Add(int64(n))
}

// log writes the counters to w every 250 ms until ctx is done (-burn-log).
func (b *burner) log(ctx context.Context, w io.Writer) {
	every(ctx, 250*time.Millisecond, func() {
		// The time of the reading, not the tick's: on one busy P this
		// goroutine may run well after its tick.
		fmt.Fprintf(w, "%d %d %d\n", time.Now().UnixNano(), b.done.Load(), b.wallNS.Load())
	})
}

// measureStalls spins for d reading the clock and reports the gaps
// between two readings over 50 µs: time the core ran something else (the
// hypervisor, an interrupt, another thread of this process such as the
// runtime's sysmon). A request that arrives in such a gap, or whose
// answer spans one, waits for it on any server pinned to the core, so
// the share of time in gaps of 0.5 ms and more is a floor under a
// latency's tail there. The gaps under 0.5 ms include the runtime's own
// preemption of this spin (sysmon's signal every 10 ms).
func measureStalls(d time.Duration) string {
	const least = 50 * time.Microsecond
	bounds := []time.Duration{100 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond}
	var n, lost [5]int64 // per bucket: < 0.1 ms, < 0.5 ms, < 1 ms, < 2 ms, more
	var longest time.Duration
	start := time.Now()
	last := start
	for last.Sub(start) < d {
		now := time.Now()
		if g := now.Sub(last); g > least {
			b := 0
			for b < len(bounds) && g >= bounds[b] {
				b++
			}
			n[b]++
			lost[b] += int64(g)
			longest = max(longest, g)
		}
		last = now
	}
	total := float64(last.Sub(start))
	pct := func(from int) float64 {
		var s int64
		for _, l := range lost[from:] {
			s += l
		}
		return 100 * float64(s) / total
	}
	count := func(from int) (c int64) {
		for _, x := range n[from:] {
			c += x
		}
		return c
	}
	secs := total / float64(time.Second)
	return fmt.Sprintf("%.1f s: stalls ≥ 0.5 ms %.1f/s (%.2f %% of the time), ≥ 1 ms %.1f/s (%.2f %%), ≥ 2 ms %.1f/s (%.2f %%); 50 µs–0.5 ms %.0f/s (%.2f %%); longest %.2f ms",
		secs, float64(count(2))/secs, pct(2), float64(count(3))/secs, pct(3), float64(count(4))/secs, pct(4),
		float64(n[0]+n[1])/secs, 100*float64(lost[0]+lost[1])/total, float64(longest)/float64(time.Millisecond))
}
