package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a private redis-server process on a loopback port, for tests
// that kill, pause or restart Redis. It is stopped when the test ends.
// Its methods are safe for concurrent use.
type RedisServer struct {
	t    testing.TB
	Port int    // the TCP port it listens on; kept across Restart
	Addr string // "127.0.0.1:<Port>"
	dir  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartRedis launches redis-server on a free loopback port with persistence
// off and the extra args given (e.g. "--maxmemory", "1mb"), waits until it
// answers PING and registers its shutdown with t.Cleanup. It fails the test
// when redis-server is not installed.
func StartRedis(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	s := &RedisServer{t: t, dir: t.TempDir(), args: args}
	cluster := slices.Contains(args, "--cluster-enabled")
	// A free port can be taken by another test's process before
	// redis-server binds it (and a cluster node also binds port+10000,
	// which FreePort does not check): a start that failed on a taken port
	// tries another one.
	var err error
	for range 5 {
		s.Port = FreePort(t)
		if cluster && !portFree(s.Port+10000) {
			err = fmt.Errorf("cluster bus port %d of port %d is taken", s.Port+10000, s.Port)
			continue
		}
		s.Addr = loopback(s.Port)
		if err = s.start(); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

// portFree reports whether a loopback TCP port can be bound now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", loopback(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func redisBinary(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in PATH (install Redis 7: apt-get install redis-server): %w", name, err)
	}
	return p, nil
}

func (s *RedisServer) start() error {
	bin, err := redisBinary("redis-server")
	if err != nil {
		return err
	}
	args := append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port),
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--protected-mode", "no",
	}, s.args...)
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	// stop ends a start that failed; out is read only after it (Wait
	// ends the copying into out).
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	if err := waitTCP(s.Addr, 5*time.Second); err != nil {
		stop()
		if strings.Contains(out.String(), "Address already in use") {
			err = fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return fmt.Errorf("redis-server on %s did not start: %w\n%s", s.Addr, err, out.String())
	}
	// Whatever answered may be another test's process that took the port
	// first (this redis-server then exits with "Address already in use"):
	// only this process's own process_id counts as started.
	if pid, err := redisPID(s.Addr); err != nil || pid != cmd.Process.Pid {
		stop()
		if err == nil {
			err = fmt.Errorf("process %d answers there, not redis-server %d", pid, cmd.Process.Pid)
		}
		return fmt.Errorf("redis-server on %s: %w: %v\n%s", s.Addr, errPortTaken, err, out.String())
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return nil
}

// errPortTaken: the redis-server just started could not have its port
// (another process bound it first, and may answer there).
var errPortTaken = errors.New("port taken by another process")

// redisPID returns the process_id that the Redis server on addr reports.
func redisPID(addr string) (int, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no process_id in INFO server of %s", addr)
}

// Client returns a new client of this server, closed when the test ends.
func (s *RedisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// URL returns the redis:// URL of this server.
func (s *RedisServer) URL() string { return "redis://" + s.Addr + "/0" }

// Kill stops the server at once with SIGKILL and waits for it to exit.
// Killing a stopped server does nothing.
func (s *RedisServer) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused process must die too
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts a killed server again on the same port, with an empty
// data set.
func (s *RedisServer) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: restart: %v", err)
	}
}

// Pause freezes the server with SIGSTOP: connections stay open but nothing
// answers, as with a hung or overloaded server. Resume undoes it.
func (s *RedisServer) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server run again.
func (s *RedisServer) Resume() { s.signal(syscall.SIGCONT) }

func (s *RedisServer) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Cluster is a private 3-master Redis Cluster on loopback ports.
type Cluster struct {
	// Addrs are the masters' "127.0.0.1:port" addresses.
	Addrs   []string
	Servers []*RedisServer
	t       testing.TB
}

// RedisCluster launches three redis-server processes in cluster mode,
// joins them with `redis-cli --cluster create` (no replicas), waits until the
// cluster reports ok and tears it all down when the test ends.
func RedisCluster(t testing.TB) *Cluster {
	t.Helper()
	cli, err := redisBinary("redis-cli")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	rc := &Cluster{t: t}
	for range 3 {
		dir := t.TempDir()
		s := StartRedis(t, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
		rc.Servers = append(rc.Servers, s)
		rc.Addrs = append(rc.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, rc.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs})
	defer c.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.ClusterInfo(ctx).Result()
		okAll := err == nil && bytes.Contains([]byte(info), []byte("cluster_state:ok"))
		if okAll {
			// every master must also serve its slots before tests start
			err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
				return n.Ping(ctx).Err()
			})
			okAll = err == nil && c.Set(ctx, "testenv:probe", "1", 0).Err() == nil &&
				c.Del(ctx, "testenv:probe").Err() == nil
		}
		cancel()
		if okAll {
			return rc
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: Redis Cluster on %v not ready: %v %q", rc.Addrs, err, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Client returns a new cluster client of the cluster, closed when the test ends.
func (rc *Cluster) Client() *redis.ClusterClient {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs})
	rc.t.Cleanup(func() { _ = c.Close() })
	return c
}

// PartialOutageClient sets cluster-require-full-coverage to no on every
// master (the live masters keep serving their slots while one is dead) and
// returns a cluster client for fault tests: context deadlines honoured,
// 200 ms dials and one redirect, so a dead master fails fast. The client
// is closed when the test ends.
func (rc *Cluster) PartialOutageClient() *redis.ClusterClient {
	rc.t.Helper()
	ctx := context.Background()
	for _, s := range rc.Servers {
		if err := s.Client().ConfigSet(ctx, "cluster-require-full-coverage", "no").Err(); err != nil {
			rc.t.Fatalf("testenv: CONFIG SET cluster-require-full-coverage on %s: %v", s.Addr, err)
		}
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs, ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond, MaxRedirects: 1})
	rc.t.Cleanup(func() { _ = c.Close() })
	return c
}
