package testenv

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartPostgresReplica makes a streaming replica of primary (a server from
// StartPostgres) with pg_basebackup -R and starts it (hot standby, fsync
// off) on a free loopback port; it is stopped when the test ends. The
// returned server is read-only; Stop and StopImmediate kill it, Start
// brings it back, PauseReplay and ResumeReplay hold and release the
// replay of the primary's WAL. It fails the test when the base backup or
// the start fails.
func StartPostgresReplica(t testing.TB, primary *PostgresServer) *PostgresServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "perfkit-pgreplica-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &PostgresServer{t: t, bin: primary.bin, data: filepath.Join(dir, "data"), Port: FreePort(t), cred: primary.cred}
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	bb := s.command("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres",
		"-D", s.data, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
	if out, err := bb.CombinedOutput(); err != nil {
		t.Fatalf("testenv: pg_basebackup: %v\n%s", err, out)
	}
	for range 5 {
		if err = s.start(); err == nil || !strings.Contains(err.Error(), "Address already in use") {
			break
		}
		s.Port = FreePort(t)
	}
	if err != nil {
		t.Fatalf("testenv: replica: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// PauseReplay pauses the replay of WAL on a replica (pg_wal_replay_pause):
// it keeps answering reads, from data that falls behind the primary's.
func (s *PostgresServer) PauseReplay() { s.exec("SELECT pg_wal_replay_pause()") }

// ResumeReplay resumes a paused replay (pg_wal_replay_resume).
func (s *PostgresServer) ResumeReplay() { s.exec("SELECT pg_wal_replay_resume()") }

func (s *PostgresServer) exec(q string) {
	s.t.Helper()
	db, err := sql.Open("pgx", s.DSN())
	if err != nil {
		s.t.Fatalf("testenv: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, q); err != nil {
		s.t.Fatalf("testenv: %s: %v", q, err)
	}
}

// WaitReplayed waits until the replica has replayed everything the
// primary has flushed when it is called, or fails the test after d.
func (s *PostgresServer) WaitReplayed(primary *PostgresServer, d time.Duration) {
	s.t.Helper()
	p, err := sql.Open("pgx", primary.DSN())
	if err != nil {
		s.t.Fatalf("testenv: %v", err)
	}
	defer p.Close()
	r, err := sql.Open("pgx", s.DSN())
	if err != nil {
		s.t.Fatalf("testenv: %v", err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var target string
	if err := p.QueryRowContext(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&target); err != nil {
		s.t.Fatalf("testenv: primary position: %v", err)
	}
	for {
		var done bool
		err := r.QueryRowContext(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", target).Scan(&done)
		if err == nil && done {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("testenv: replica did not replay %s within %v (last error: %v)", target, d, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
