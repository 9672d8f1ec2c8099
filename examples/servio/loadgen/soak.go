package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"text/tabwriter"
	"time"
)

// runSoak starts servio (perfkit on), drives mixed load for a long time at
// a moderate rate, then checks that the process settled back: goroutines
// and heap after the load stop must be close to what they were after the
// warm-up. It fails (non-zero exit) on a leak or on any 5xx.
//
//	go run ./examples/servio/loadgen soak -duration 10m -rate 150
func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("loadgen soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registerLoadFlags(fs, &o)
	var c compareOptions
	c.registerServioFlags(fs)
	settle := fs.Duration("settle", 10*time.Second, "idle time after the load before the final reading")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !isFlagSet(fs, "duration") {
		o.duration = 10 * time.Minute
	}
	if !isFlagSet(fs, "rate") {
		o.rate = 150
	}
	if !isFlagSet(fs, "warmup") {
		o.warmup = 30 * time.Second
	}
	o.target = "http://127.0.0.1"
	if err := o.validate(); err != nil {
		return err
	}
	ctx, stop := signalContext(ctx)
	defer stop()

	o.restaurants, o.orders = c.restaurants, c.orders
	c.load = o
	cleanup, err := c.prepare(ctx, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	proc, base, err := c.start(ctx, false, stderr)
	if err != nil {
		return err
	}
	defer proc.stop()

	o.target = base
	warm := o
	warm.duration, warm.warmup, warm.quiet = o.warmup, 0, true
	fmt.Fprintf(stderr, "warming up for %v …\n", o.warmup)
	if _, err := drive(ctx, warm, io.Discard); err != nil {
		return err
	}
	start, err := readRuntime(ctx, base)
	if err != nil {
		return err
	}
	o.warmup = 0
	fmt.Fprintf(stderr, "soaking for %v at %.0f req/s …\n", o.duration, o.rate)
	rep, err := drive(ctx, o, stderr)
	if err != nil {
		return err
	}
	time.Sleep(*settle)
	end, err := readRuntime(ctx, base)
	if err != nil {
		return err
	}
	rep.print(stdout)
	verdict := judgeSoak(start, end, rep)
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "after warm-up\tafter soak\t\t")
	fmt.Fprintf(tw, "goroutines\t%.0f\t%.0f\t\n", start.goroutines, end.goroutines)
	fmt.Fprintf(tw, "Go memory in use\t%.1f MiB\t%.1f MiB\t\n", start.heap/(1<<20), end.heap/(1<<20))
	fmt.Fprintf(tw, "resident\t%.1f MiB\t%.1f MiB\t\n", start.rss/(1<<20), end.rss/(1<<20))
	tw.Flush()
	if verdict != nil {
		return verdict
	}
	fmt.Fprintln(stdout, "soak: no leak, no error")
	return nil
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// runtimeReading is what the service's Prometheus output says of its process.
type runtimeReading struct {
	goroutines, heap, rss float64
}

func readRuntime(ctx context.Context, base string) (runtimeReading, error) {
	f, err := scrape(ctx, newHTTPClient(1), base)
	if err != nil {
		return runtimeReading{}, err
	}
	var r runtimeReading
	var ok bool
	if r.goroutines, ok = f.sum("go_goroutines", nil); !ok {
		return r, fmt.Errorf("service exposes no go_goroutines")
	}
	// Go memory in use from OpenTelemetry's runtime metrics (stacks and
	// the rest, released memory excluded); the client library's Go
	// collector's heap-in-use for a service that still serves it.
	if r.heap, ok = f.sum("go_memory_used_bytes", nil); !ok {
		r.heap, _ = f.sum("go_memstats_heap_inuse_bytes", nil)
	}
	// Resident memory from the OpenTelemetry process metrics; the client
	// library's process collector's for a service that still serves it.
	if r.rss, ok = f.sum("process_memory_usage_bytes", nil); !ok {
		r.rss, _ = f.sum("process_resident_memory_bytes", nil)
	}
	return r, nil
}

// judgeSoak fails a soak whose goroutines grew by more than 10 or whose heap
// grew by more than half plus 16 MiB (room for caches that filled), or that
// saw errors.
func judgeSoak(start, end runtimeReading, rep *report) error {
	switch {
	case rep.ErrorRate > 0:
		return fmt.Errorf("soak: %.3f%% of requests failed", 100*rep.ErrorRate)
	case end.goroutines > start.goroutines+10:
		return fmt.Errorf("soak: goroutines grew from %.0f to %.0f: a leak", start.goroutines, end.goroutines)
	case end.heap > 1.5*start.heap+16<<20:
		return fmt.Errorf("soak: Go memory in use grew from %.1f to %.1f MiB", start.heap/(1<<20), end.heap/(1<<20))
	}
	return nil
}

// servioProc is a servio process started by compare or soak.
type servioProc struct {
	cmd    *exec.Cmd
	exited chan error
}

func (p *servioProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
