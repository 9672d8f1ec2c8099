// Package statsdtest runs the real Etsy StatsD daemon (npm statsd 0.9.0,
// installed by scripts/test's ensure_statsd) for tests: it listens for
// StatsD lines on a free UDP port and flushes, every FlushInterval, through
// its own Graphite backend to a Graphite plaintext receiver in the test, so
// a test asserts what statsd computed (timer count, mean, upper, counters)
// from "name value timestamp" lines. Never part of perfkit's API.
package statsdtest

import (
	"bufio"
	"fmt"
	"github.com/servio/perfkit/internal/testenv"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the statsd release the tests run (scripts/test installs it).
const Version = "0.9.0"

// FlushInterval is the daemon's flush interval.
const FlushInterval = 250 * time.Millisecond

// Dir returns where statsd is installed: PERFKIT_STATSD_DIR, else
// $HOME/.cache/perfkit/statsd (an `npm install --prefix` directory).
func Dir() string {
	if d := os.Getenv("PERFKIT_STATSD_DIR"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "perfkit", "statsd")
}

// Line is one Graphite plaintext line statsd flushed.
type Line struct {
	Name  string
	Value float64
}

// Daemon is a running statsd with its Graphite receiver.
type Daemon struct {
	// Addr is statsd's UDP host:port.
	Addr string

	mu    sync.Mutex
	lines []Line
	out   testenv.SyncBuffer
}

// Start runs statsd until the test ends. It fails the test, saying how to
// install statsd, when node or statsd is missing, and when the daemon does
// not flush a probe counter within 30 s.
func Start(t testing.TB) *Daemon {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("statsdtest: node is not installed (statsd %s runs on it): %v", Version, err)
	}
	pkg := filepath.Join(Dir(), "node_modules", "statsd")
	if _, err := os.Stat(filepath.Join(pkg, "stats.js")); err != nil {
		t.Fatalf("statsdtest: statsd %s is not installed in %s (set PERFKIT_STATSD_DIR, or run scripts/test, "+
			"or: npm install --prefix %s statsd@%s): %v", Version, Dir(), Dir(), Version, err)
	}

	d := &Daemon{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("statsdtest: graphite receiver: %v", err)
	}
	var wg sync.WaitGroup
	var connMu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connMu.Lock()
			conns[c] = true
			connMu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				d.read(c)
			}()
		}
	}()

	udp, mgmt := freeUDPPort(t), freeTCPPort(t)
	cfg := fmt.Sprintf(`{
  address: "127.0.0.1", port: %d,
  mgmt_address: "127.0.0.1", mgmt_port: %d,
  flushInterval: %d,
  backends: ["./backends/graphite"],
  graphiteHost: "127.0.0.1", graphitePort: %d,
  graphite: { legacyNamespace: false },
  deleteIdleStats: true,
  percentThreshold: [90]
}`, udp, mgmt, FlushInterval.Milliseconds(), ln.Addr().(*net.TCPAddr).Port)
	cfgPath := filepath.Join(t.TempDir(), "statsd-config.js")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(pkg, "stats.js"), cfgPath)
	cmd.Dir = pkg
	cmd.Stdout, cmd.Stderr = &d.out, &d.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("statsdtest: start statsd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = ln.Close()
		connMu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		connMu.Unlock()
		wg.Wait()
	})
	d.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(udp))

	// Ready when a probe counter comes back through the Graphite backend
	// (the UDP socket is bound and a flush went through).
	probe, err := net.Dial("udp", d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	deadline := time.Now().Add(30 * time.Second)
	for d.Sum("stats.counters.statsdtest.probe.count") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("statsdtest: statsd flushed nothing within 30 s; its output:\n%s", d.out.String())
		}
		_, _ = probe.Write([]byte("statsdtest.probe:1|c"))
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

func (d *Daemon) read(c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		d.mu.Lock()
		d.lines = append(d.lines, Line{Name: f[0], Value: v})
		d.mu.Unlock()
	}
}

// Values returns every value flushed for name, in order.
func (d *Daemon) Values(name string) []float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []float64
	for _, l := range d.lines {
		if l.Name == name {
			out = append(out, l.Value)
		}
	}
	return out
}

// Sum adds up the values flushed for name (a counter's count, a timer's
// count or sum, over every flush).
func (d *Daemon) Sum(name string) float64 {
	var s float64
	for _, v := range d.Values(name) {
		s += v
	}
	return s
}

// Max returns the largest value flushed for name (a timer's upper over
// every flush), NaN if none was.
func (d *Daemon) Max(name string) float64 {
	m := math.NaN()
	for _, v := range d.Values(name) {
		if math.IsNaN(m) || v > m {
			m = v
		}
	}
	return m
}

// Min returns the smallest value flushed for name, NaN if none was.
func (d *Daemon) Min(name string) float64 {
	m := math.NaN()
	for _, v := range d.Values(name) {
		if math.IsNaN(m) || v < m {
			m = v
		}
	}
	return m
}

// Last returns the last value flushed for name (a gauge), NaN if none was.
func (d *Daemon) Last(name string) float64 {
	vs := d.Values(name)
	if len(vs) == 0 {
		return math.NaN()
	}
	return vs[len(vs)-1]
}

// Names returns the distinct names flushed so far that start with prefix,
// for failure messages.
func (d *Daemon) Names(prefix string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, l := range d.lines {
		if strings.HasPrefix(l.Name, prefix) && !seen[l.Name] {
			seen[l.Name] = true
			out = append(out, l.Name)
		}
	}
	return out
}

// Output returns what the daemon printed.
func (d *Daemon) Output() string { return d.out.String() }

// WaitFor polls cond every FlushInterval until it holds or timeout passes,
// and reports whether it held.
func (d *Daemon) WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(FlushInterval / 2)
	}
	return true
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("statsdtest: no free UDP port: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("statsdtest: no free TCP port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
