package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/servio/perfkit/internal/netem"
)

// compareOptions configure `loadgen compare`: seed one data set, run servio
// on it twice — with perfkit's techniques off (-baseline) and on — drive the
// same workload at each and print the before/after table.
type compareOptions struct {
	load        options
	servio      string // servio binary; empty: built from ./examples/servio
	dataDir     string
	restaurants int
	items       int
	orders      int
	html        string
	dbLatency   time.Duration
	dbEnv       string // DATABASE_URL for the servio processes (through the latency proxy)
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c compareOptions
	fs := flag.NewFlagSet("loadgen compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.registerServioFlags(fs)
	fs.StringVar(&c.html, "html", "", "also write an HTML report with latency percentile charts to this file")
	fs.DurationVar(&c.dbLatency, "db-latency", 0, "with DATABASE_URL: add this much latency each way between servio and PostgreSQL (a database in another zone), through a loopback proxy")
	registerLoadFlags(fs, &c.load)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.load.target = "http://127.0.0.1" // replaced by each run's address
	c.load.restaurants, c.load.orders = c.restaurants, c.orders
	if err := c.load.validate(); err != nil {
		return err
	}
	ctx, stop := signalContext(ctx)
	defer stop()

	cleanup, err := c.prepare(ctx, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	if c.dbLatency > 0 {
		stopProxy, err := c.proxyDatabase()
		if err != nil {
			return err
		}
		defer stopProxy()
		fmt.Fprintf(stderr, "PostgreSQL reached through a proxy adding %v each way\n", c.dbLatency)
	}

	var reps [2]*report
	for i, mode := range []string{"before", "after"} {
		fmt.Fprintf(stderr, "\n== %s: servio %s\n", mode, map[string]string{"before": "with perfkit off (-baseline)", "after": "with perfkit on"}[mode])
		rep, err := c.runOne(ctx, mode == "before", stderr)
		if err != nil {
			return fmt.Errorf("%s run: %w", mode, err)
		}
		rep.print(stderr)
		reps[i] = rep
	}
	fmt.Fprintln(stdout)
	printComparison(stdout, reps[0], reps[1])
	if c.html != "" {
		if err := writeHTML(c.html, reps[0], reps[1], &c.load, c.stores()); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "HTML report:", c.html)
	}
	return nil
}

// stores describes the database and Redis the runs used, for the report.
func (c *compareOptions) stores() string {
	db := "SQLite (embedded)"
	if os.Getenv("DATABASE_URL") != "" {
		db = "PostgreSQL"
		if c.dbLatency > 0 {
			db += fmt.Sprintf(" through a proxy adding %v each way", c.dbLatency)
		}
	}
	redis := "no Redis (L1 cache only, local rate limits)"
	if os.Getenv("REDIS_URL") != "" {
		redis = "Redis for the L2 cache and rate limits"
	}
	return "database: " + db + "; " + redis
}

// registerServioFlags registers the flags that say which servio to run and
// on what data, shared by compare and soak.
func (c *compareOptions) registerServioFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.servio, "servio", "", "servio binary (default: go build ./examples/servio)")
	fs.StringVar(&c.dataDir, "data-dir", "", "data directory for the SQLite file (default: a temporary one); DATABASE_URL / REDIS_URL in the environment are passed on")
	fs.IntVar(&c.restaurants, "seed-restaurants", 50, "restaurants to seed")
	fs.IntVar(&c.items, "seed-items", 40, "menu items per restaurant to seed")
	fs.IntVar(&c.orders, "seed-orders", 20000, "orders to seed")
}

// prepare makes the data directory and builds servio where they were not
// given, and seeds the data set; cleanup removes what it made.
func (c *compareOptions) prepare(ctx context.Context, stderr io.Writer) (cleanup func(), err error) {
	cleanup = func() {}
	if c.dataDir == "" {
		d, err := os.MkdirTemp("", "servio-load-")
		if err != nil {
			return cleanup, err
		}
		cleanup = func() { _ = os.RemoveAll(d) }
		c.dataDir = d
	}
	if c.servio == "" {
		bin := filepath.Join(c.dataDir, "servio-bin")
		fmt.Fprintln(stderr, "building ./examples/servio …")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./examples/servio").CombinedOutput(); err != nil {
			cleanup()
			return func() {}, fmt.Errorf("go build ./examples/servio (run from the repository root): %v\n%s", err, out)
		}
		c.servio = bin
	}
	if err := c.seed(ctx, stderr); err != nil {
		cleanup()
		return func() {}, err
	}
	return cleanup, nil
}

// seed fills the database with servio's seed subcommand (idempotent).
func (c *compareOptions) seed(ctx context.Context, stderr io.Writer) error {
	fmt.Fprintf(stderr, "seeding %d restaurants × %d items, %d orders …\n", c.restaurants, c.items, c.orders)
	seed := exec.CommandContext(ctx, c.servio, "seed", "-data-dir", c.dataDir,
		"-restaurants", strconv.Itoa(c.restaurants), "-items", strconv.Itoa(c.items), "-orders", strconv.Itoa(c.orders))
	seed.Stdout, seed.Stderr = stderr, stderr
	if err := seed.Run(); err != nil {
		return fmt.Errorf("servio seed: %w", err)
	}
	return nil
}

// proxyDatabase points the servio processes at DATABASE_URL through a
// latency proxy on loopback.
func (c *compareOptions) proxyDatabase() (stop func(), err error) {
	u, err := url.Parse(os.Getenv("DATABASE_URL"))
	if err != nil || u.Host == "" || !strings.HasPrefix(u.Scheme, "postgres") {
		return nil, fmt.Errorf("-db-latency needs DATABASE_URL=postgres://host:port/…")
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	p, err := netem.Listen(host, c.dbLatency)
	if err != nil {
		return nil, err
	}
	u.Host = p.Addr()
	c.dbEnv = u.String()
	return func() { _ = p.Close() }, nil
}

func (c *compareOptions) runOne(ctx context.Context, baseline bool, stderr io.Writer) (*report, error) {
	proc, base, err := c.start(ctx, baseline, stderr)
	if err != nil {
		return nil, err
	}
	defer proc.stop()
	o := c.load
	o.target = base
	return drive(ctx, o, stderr)
}

// start runs servio on a free loopback port over c.dataDir, trusting
// loopback as a proxy so the generator's simulated clients are keyed apart,
// and waits until it is ready.
func (c *compareOptions) start(ctx context.Context, baseline bool, stderr io.Writer) (*servioProc, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	// Rate limits off in both runs: the staff routes (order reads and
	// lists, low stock, status changes) go out under the one signed-in
	// user, whose API tier admits 60 a minute — the tuned run would answer
	// them 429 where the baseline (no limits) serves them. The limiter's
	// own cost is measured by ratelimit's benchmarks.
	args := []string{"-addr", addr, "-data-dir", c.dataDir, "-demo-data=false", "-rate-limit=false", "-log-level", "warn"}
	if baseline {
		args = append(args, "-baseline")
	}
	cmd := exec.Command(c.servio, args...)
	cmd.Env = append(os.Environ(), "TRUSTED_PROXIES=127.0.0.1/32,::1/128")
	if c.dbEnv != "" {
		cmd.Env = append(cmd.Env, "DATABASE_URL="+c.dbEnv)
	}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &servioProc{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	base := "http://" + addr
	if err := waitHealthy(ctx, base, p.exited); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, base, nil
}

func waitHealthy(ctx context.Context, base string, exited chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err // for stop, which waits on it too
			return fmt.Errorf("servio exited before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("servio not ready within 60s")
}

type row struct {
	name          string
	before, after float64
	unit          string
	lowerIsBetter bool
}

func comparisonRows(b, a *report) []row {
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return []row{
		{"avg response time", msf(b.Latency.Mean), msf(a.Latency.Mean), "ms", true},
		{"p50", msf(b.Latency.P50), msf(a.Latency.P50), "ms", true},
		{"p95", msf(b.Latency.P95), msf(a.Latency.P95), "ms", true},
		{"p99", msf(b.Latency.P99), msf(a.Latency.P99), "ms", true},
		{"max", msf(b.Latency.Max), msf(a.Latency.Max), "ms", true},
		{"throughput", b.Throughput, a.Throughput, "req/s", false},
		{"error rate", 100 * b.ErrorRate, 100 * a.ErrorRate, "%", true},
		{"cache hit rate", 100 * b.CacheHitRate, 100 * a.CacheHitRate, "%", false},
		{"DB pool saturation (time-weighted)", 100 * b.PoolSat.Mean, 100 * a.PoolSat.Mean, "%", true},
		{"DB pool saturation (peak sample)", 100 * b.PoolSat.Max, 100 * a.PoolSat.Max, "%", true},
		{"slow queries (>1s)", 100 * b.SlowShare, 100 * a.SlowShare, "%", true},
	}
}

func printComparison(w io.Writer, b, a *report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tbefore\tafter\tchange\t")
	for _, r := range comparisonRows(b, a) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r.name, fmtVal(r.before, r.unit), fmtVal(r.after, r.unit), ratio(r))
	}
	tw.Flush()
}

func fmtVal(v float64, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch unit {
	case "ms":
		return fmt.Sprintf("%.2f ms", v)
	case "%":
		return fmt.Sprintf("%.1f%%", v)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

// ratio says how many times after differs from before, and which way;
// "∞" when a lower-is-better figure fell to 0.
func ratio(r row) string {
	b, a := r.before, r.after
	if math.IsNaN(a) || math.IsNaN(b) || a == b {
		return "—"
	}
	if a == 0 {
		if r.lowerIsBetter {
			return "∞"
		}
		return "to 0"
	}
	if b == 0 {
		return "from 0"
	}
	// Say which way the figure moved: a latency that rose reads "higher".
	if a < b {
		return fmt.Sprintf("%.1f× lower", b/a)
	}
	return fmt.Sprintf("%.1f× higher", a/b)
}
