// Command loadgen drives a Zipf-skewed request mix against a running servio
// instance and reports latency percentiles (p50/p90/p95/p99/max), throughput,
// error rate and, read from the service's /health/metrics, cache hit rate,
// DB pool saturation and slow-query share.
//
// Open-loop mode (the default) sends at a constant arrival rate and measures
// each request from the moment it was due, so a stalled server shows up in
// the percentiles instead of slowing the generator down (no coordinated
// omission). Closed-loop mode runs a fixed number of workers back to back.
//
//	go run ./examples/servio/loadgen -url http://127.0.0.1:8080 -rate 500 -duration 30s
//
// `loadgen compare` seeds one data set, runs servio on it twice — with
// perfkit's techniques off (servio -baseline) and on — drives the same
// workload at each and prints the before/after table (and, with -html, a
// report with latency percentile charts):
//
//	go run ./examples/servio/loadgen compare -rate 300 -duration 30s -html report.html
//
// `loadgen soak` runs servio under moderate mixed load for a long time (10
// minutes by default) and fails if goroutines or heap did not settle back or
// any request failed:
//
//	go run ./examples/servio/loadgen soak -duration 10m -rate 150
//
// `loadgen overload` measures a server past its capacity: an unloaded
// step, a capacity search (or -capacity), then 1×, 2× and 4× that rate,
// reporting goodput, admitted latency, shed share by priority, time to
// shed, probe and rejection latency; `loadgen overload-table` sets several
// runs' JSON side by side (scripts/bench-overload runs it all), and
// `loadgen overload-runs` judges several runs of that script together, on
// the medians of each done-when figure:
//
//	go run ./examples/servio/loadgen overload -url http://127.0.0.1:8080 -json run.json
//	go run ./examples/servio/loadgen overload-runs bench/out/overload/runs/*
//
// Only loopback targets are accepted.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	target      string
	mode        string
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	seed        int64
	mix         mix
	restaurants int
	orders      int
	clients     int
	zipfS       float64
	jsonOut     string
	quiet       bool
	// email and password sign the generator in (POST /auth/login) before
	// the run; the staff routes carry that user's token.
	email, password string
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "compare":
			return runCompare(ctx, args[1:], stdout, stderr)
		case "soak":
			return runSoak(ctx, args[1:], stdout, stderr)
		case "overload":
			return runOverload(ctx, args[1:], stdout, stderr)
		case "overload-table":
			return runOverloadTable(args[1:], stdout)
		case "overload-runs":
			return runOverloadRuns(args[1:], stdout, stderr)
		}
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	rep, err := drive(ctx, o, stderr)
	if err != nil {
		return err
	}
	rep.print(stdout)
	if o.jsonOut != "" {
		return rep.writeJSON(o.jsonOut)
	}
	return nil
}

func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registerLoadFlags(fs, &o)
	fs.StringVar(&o.target, "url", "http://127.0.0.1:8080", "base URL of the servio instance (loopback only)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.validate()
}

// registerLoadFlags registers the workload flags shared by a plain run and
// `loadgen compare`.
func registerLoadFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.mode, "mode", "open", "open (constant arrival rate) or closed (workers back to back)")
	fs.Float64Var(&o.rate, "rate", 200, "open loop: requests per second")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before the measured run")
	fs.IntVar(&o.concurrency, "concurrency", 64, "closed loop: workers; open loop: max requests in flight")
	fs.Int64Var(&o.seed, "seed", 1, "random seed (same seed, same request sequence)")
	fs.Float64Var(&o.mix.writes, "writes", 0.05, "share of order writes (POST /orders, PATCH /orders/{id})")
	fs.Float64Var(&o.mix.logins, "logins", 0.005, "share of POST /auth/login")
	fs.Float64Var(&o.mix.assistant, "assistant", 0.001, "share of POST /assistant/query (the OpenAI preset admits 100 a minute: keep rate × share under 1.6/s)")
	fs.IntVar(&o.restaurants, "restaurants", 5, "restaurant ids 1..N to spread reads over (Zipf; compare sets it from -seed-restaurants)")
	fs.IntVar(&o.orders, "orders", 50, "order ids 1..N to spread reads over (Zipf; compare sets it from -seed-orders)")
	fs.IntVar(&o.clients, "clients", 10000, "distinct simulated clients (sent as X-Forwarded-For; the service must trust loopback as a proxy to key on them)")
	fs.Float64Var(&o.zipfS, "zipf", 1.1, "Zipf exponent s (> 1) of the key skew")
	fs.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.BoolVar(&o.quiet, "quiet", false, "no live progress line")
	fs.StringVar(&o.email, "email", "admin@servio.dev", "user to log in as for the staff routes (order reads and lists, status changes, low stock); an admin reaches every restaurant")
	fs.StringVar(&o.password, "password", "servio-demo", "that user's password")
}

func (o *options) validate() error {
	u, err := url.Parse(o.target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q: not an absolute URL", o.target)
	}
	if !isLoopback(u.Hostname()) {
		return fmt.Errorf("-url %q: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed", o.target)
	}
	switch {
	case o.mode != "open" && o.mode != "closed":
		return fmt.Errorf("-mode %q: want open or closed", o.mode)
	case o.mode == "open" && o.rate <= 0:
		return fmt.Errorf("-rate must be > 0")
	case o.duration <= 0:
		return fmt.Errorf("-duration must be > 0")
	case o.concurrency < 1:
		return fmt.Errorf("-concurrency must be ≥ 1")
	case o.restaurants < 1 || o.orders < 1 || o.clients < 1:
		return fmt.Errorf("-restaurants, -orders and -clients must be ≥ 1")
	case o.zipfS <= 1:
		return fmt.Errorf("-zipf must be > 1")
	}
	return o.mix.validate()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newHTTPClient(concurrency int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = concurrency * 2
	tr.MaxIdleConnsPerHost = concurrency * 2
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
