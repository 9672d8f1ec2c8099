package main

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// servioProcess is a servio binary running as a child process.
type servioProcess struct {
	cmd  *exec.Cmd
	done chan error
	logs *listenWatcher
	URL  string
}

// startServioProcess runs bin with env (over cleanEnv, ADDR=127.0.0.1:0)
// in its own temp dir and waits for it to listen. Cleanup kills it.
func startServioProcess(t *testing.T, bin string, env ...string) *servioProcess {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(append(cleanEnv(), "ADDR=127.0.0.1:0", "LOG_LEVEL=info"), env...)
	p := &servioProcess{cmd: cmd, done: make(chan error, 1), logs: &listenWatcher{addr: make(chan string, 1)}}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	require.NoError(t, cmd.Start())
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		if t.Failed() {
			t.Logf("servio %d output:\n%s", cmd.Process.Pid, p.logs.String())
		}
	})
	select {
	case addr := <-p.logs.addr:
		p.URL = "http://" + addr
	case err := <-p.done:
		p.done <- err
		t.Fatalf("servio exited before listening: %v\n%s", err, p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("servio did not log its listening address within 60s")
	}
	return p
}

// kill sends SIGKILL: no shutdown, no job marked done or given back.
func (p *servioProcess) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Kill())
	err := <-p.done
	p.done <- err
}

// TestJobsKill9: two servio processes share a PostgreSQL queue and an SMS
// upstream living in the test process, which accepts a text on arrival
// and answers 1 s later. One process is killed with SIGKILL while its
// workers are mid-send: River's rescuer (JOB_RESCUE_AFTER) hands the
// jobs it held to the survivor, which retries them, and every customer
// gets exactly one text per idempotency key — the killed sends that the
// upstream had accepted included.
func TestJobsKill9(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "servio")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	sim, err := startSimSMS(time.Second, 0, discardLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	dsn := testenv.PostgresDSN(t)
	env := []string{"DATABASE_URL=" + dsn, "RATE_LIMIT=false", "ADAPTIVE_LIMIT=off", "AUTH_SECRET=test-secret",
		"TWILIO_BASE_URL=" + sim.BaseURL(), "TWILIO_ACCOUNT_SID=ACtest", "TWILIO_AUTH_TOKEN=token",
		"JOB_POLL_INTERVAL=50ms", "JOB_TIMEOUT=3s", "JOB_RESCUE_AFTER=4s"}
	a := startServioProcess(t, bin, env...)
	b := startServioProcess(t, bin, env...)

	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec("UPDATE inventory_items SET current_quantity = 1000000")
	require.NoError(t, err)
	const n = 200
	for i := range n {
		inst := []*servioProcess{a, b}[i%2]
		body := fmt.Sprintf(`{"restaurant_id":1,"customer_phone":%q,"items":[{"menu_item_id":1,"quantity":1}]}`, testPhone)
		resp, err := http.Post(inst.URL+"/orders", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", b)
	}
	require.Eventually(t, func() bool { return len(sim.deliveries()) >= n/4 }, jobWait, time.Millisecond, "sending under way")
	a.kill(t)
	killedAt := time.Now()
	accepted := len(sim.deliveries())

	completed := func() (c int) {
		require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM river_job WHERE state = 'completed'").Scan(&c))
		return c
	}
	// The survivor leads River's maintenance once the dead leader's lease
	// lapses (up to ~15 s), then its rescuer takes the killed jobs.
	require.Eventually(t, func() bool { return completed() == n }, 2*time.Minute, 50*time.Millisecond,
		"the survivor completes every confirmation job, the killed instance's included")
	var rescued int
	require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM river_job WHERE attempt > 1").Scan(&rescued))
	assert.Positive(t, rescued, "jobs held by the killed instance ran again")
	require.Len(t, sim.deliveries(), n, "every confirmation texted")
	for key, c := range sim.deliveries() {
		assert.Equal(t, 1, c, "key %s delivered %d times", key, c)
	}
	retriedAccepted := 0
	seen := map[string]int{}
	for _, r := range sim.history() {
		if seen[r.key]++; seen[r.key] == 2 && r.at.After(killedAt) {
			retriedAccepted++ // sent again after the kill: a rescued job whose first send was accepted
		}
	}
	assert.Positive(t, retriedAccepted, "some killed sends had been accepted and were retried without a second text")
	t.Logf("killed after %d of %d texts; %d jobs rescued and run again, %d of them after the upstream had accepted their text; each key delivered once; all done %s after the kill",
		accepted, n, rescued, retriedAccepted, time.Since(killedAt).Round(100*time.Millisecond))
}
