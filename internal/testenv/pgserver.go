package testenv

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PostgresServer is a private PostgreSQL server (initdb + postgres) on a free
// loopback port, for tests that stop, restart or pause the database. It is
// stopped when the test ends. Its methods are safe for concurrent use.
type PostgresServer struct {
	t    testing.TB
	Port int
	bin  string
	data string
	cred *syscall.Credential

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartPostgres initialises a new cluster in a temporary directory and starts
// it (trust auth, user postgres, database postgres, fsync off). Run as root,
// the server runs as the "postgres" system user, as PostgreSQL requires.
// It fails the test when the PostgreSQL server binaries are not installed.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	dir, err := os.MkdirTemp("", "perfkit-pg-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &PostgresServer{t: t, bin: bin, data: filepath.Join(dir, "data"), Port: FreePort(t)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("testenv: running as root needs a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	initdb := s.command("initdb", "-D", s.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}
	// A free port can be taken by another test's process before postgres
	// binds it (a private Redis Cluster node binds its port+10000 too, which
	// FreePort cannot foresee): a start that failed on a taken port tries
	// another one.
	for range 5 {
		if err = s.start(); err == nil || !strings.Contains(err.Error(), "Address already in use") {
			break
		}
		s.Port = FreePort(t)
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found (install postgresql)")
}

func (s *PostgresServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = filepath.Dir(s.data)
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

func (s *PostgresServer) start() error {
	cmd := s.command("postgres", "-D", s.data, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	if err := waitPostgres(s.DSN(), 20*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("postgres on port %d did not start: %v\n%s", s.Port, err, out.String())
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return nil
}

// waitPostgres waits until the server accepts a session: it listens a
// moment before it stops answering "the database system is starting up".
func waitPostgres(dsn string, d time.Duration) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DSN returns the URL of the server's postgres database.
func (s *PostgresServer) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
}

// Stop shuts the server down fast (SIGINT: open sessions are cut) and waits
// for it to exit. Stopping a stopped server does nothing.
func (s *PostgresServer) Stop() { s.stop(syscall.SIGINT) }

// StopImmediate shuts the server down as pg_ctl stop -m immediate does
// (SIGQUIT: no checkpoint, sessions cut mid-statement, crash recovery on
// the next start) and waits for it to exit.
func (s *PostgresServer) StopImmediate() { s.stop(syscall.SIGQUIT) }

func (s *PostgresServer) stop(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Restart stops the server if it runs and starts it again on the same port
// with the same data.
func (s *PostgresServer) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: restart: %v", err)
	}
}

// Start starts a stopped server again on the same port with the same data.
func (s *PostgresServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: start: %v", err)
	}
}
