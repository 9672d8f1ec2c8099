package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/httpclient"
	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fastRetry is River's retry schedule shrunk for tests: 50 ms per error
// so far, not attempt⁴ seconds.
type fastRetry struct{}

func (fastRetry) NextRetry(j *rivertype.JobRow) time.Time {
	return time.Now().Add(time.Duration(len(j.Errors)+1) * 50 * time.Millisecond)
}

// jobsConfig is testConfig with workers that look for jobs every 50 ms
// and an instant simulated SMS upstream.
func jobsConfig(t *testing.T, dialect string) Config {
	cfg := testConfig(t, dialect)
	cfg.SimSMSLatency = 0
	cfg.JobPollInterval = 50 * time.Millisecond
	return cfg
}

// jobsOptions are testAppOptions with fast retries and short snoozes.
func jobsOptions() appOptions {
	o := testAppOptions
	o.jobs = jobOptions{snooze: 100 * time.Millisecond, retryPolicy: fastRetry{}}
	return o
}

// jobWait bounds waits for background work: far above the milliseconds
// it takes, so a loaded machine cannot fail them.
const jobWait = 30 * time.Second

const testPhone = "+14155550100"

// placeOrder places an order of one demo item through POST /orders.
func placeOrder(t *testing.T, a *testApp, phone string) store.Order {
	t.Helper()
	body := fmt.Sprintf(`{"restaurant_id":1,"customer_name":"Sam","customer_phone":%q,"items":[{"menu_item_id":1,"quantity":1}]}`, phone)
	var o store.Order
	a.doJSON("POST", "/orders", body, http.StatusCreated, &o)
	return o
}

// riverJobs reads River's table: every job's kind, state, attempt,
// order id, error count and snooze count.
type jobRow struct {
	kind, state      string
	attempt, orderID int64
	errors, snoozes  int
}

func riverJobs(t *testing.T, db *sql.DB, d store.Dialect) []jobRow {
	t.Helper()
	// riversqlite stores args and metadata as JSONB, errors as a JSON
	// array; PostgreSQL errors as jsonb[].
	q := "SELECT kind, state, attempt, json(args), COALESCE(json_array_length(errors), 0), json(metadata) FROM river_job ORDER BY id"
	if d == store.Postgres {
		q = "SELECT kind, state, attempt, args, COALESCE(array_length(errors, 1), 0), metadata FROM river_job ORDER BY id"
	}
	rows, err := db.QueryContext(context.Background(), q)
	require.NoError(t, err)
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		var r jobRow
		var args, meta []byte
		require.NoError(t, rows.Scan(&r.kind, &r.state, &r.attempt, &args, &r.errors, &meta))
		var a smsJobArgs
		require.NoError(t, json.Unmarshal(args, &a))
		r.orderID = a.OrderID
		r.snoozes = snoozes(&rivertype.JobRow{Metadata: meta})
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// states counts jobs by state.
func states(jobs []jobRow) map[string]int {
	m := map[string]int{}
	for _, j := range jobs {
		m[j.state]++
	}
	return m
}

// TestJobEnqueuedIffOrderCommits: a job inserted in an order's
// transaction is gone when the transaction rolls back and is there exactly
// once, and texted exactly once, when it commits; the same for the ready
// notification of PATCH; an order without a phone gets no job; a malformed
// phone is a 400.
func TestJobEnqueuedIffOrderCommits(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := startAppWith(t, jobsConfig(t, dialect), jobsOptions()).admin()
			ctx := context.Background()

			boom := errors.New("later step failed")
			_, err := a.svc.CreateOrder(ctx, store.NewOrder{RestaurantID: 1, CustomerPhone: testPhone,
				Items: []store.NewOrderItem{{MenuItemID: 1, Quantity: 1}},
				InTx: func(ctx context.Context, tx *sql.Tx, o store.Order) error {
					var n int
					require.NoError(t, tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM river_job").Scan(&n))
					require.Equal(t, 1, n, "the job is inserted in the order's transaction")
					return boom
				}})
			require.ErrorIs(t, err, boom)
			assert.Empty(t, riverJobs(t, a.db, a.st.Dialect()), "the rolled-back order leaves no job")

			o := placeOrder(t, a, testPhone)
			key := smsKey(kindOrderConfirmation, o.ID)
			require.Eventually(t, func() bool { return a.simSMS.deliveries()[key] == 1 }, jobWait, 5*time.Millisecond, "confirmation texted")
			require.Eventually(t, func() bool { return states(riverJobs(t, a.db, a.st.Dialect()))["completed"] == 1 }, jobWait, 5*time.Millisecond)
			jobs := riverJobs(t, a.db, a.st.Dialect())
			require.Len(t, jobs, 1, "exactly one job for the committed order")
			assert.Equal(t, kindOrderConfirmation, jobs[0].kind)
			assert.Equal(t, o.ID, jobs[0].orderID)

			var got store.Order
			a.doJSON("GET", fmt.Sprintf("/orders/%d", o.ID), "", http.StatusOK, &got)
			assert.Equal(t, testPhone, got.CustomerPhone, "the order keeps its phone")

			// A refused status change (pending cannot become ready) rolls
			// back: no ready job.
			a.doJSON("PATCH", fmt.Sprintf("/orders/%d", o.ID), `{"status":"ready"}`, http.StatusConflict, nil)
			a.doJSON("PATCH", fmt.Sprintf("/orders/%d", o.ID), `{"status":"preparing"}`, http.StatusOK, nil)
			assert.Len(t, riverJobs(t, a.db, a.st.Dialect()), 1, "only ready notifies")
			a.doJSON("PATCH", fmt.Sprintf("/orders/%d", o.ID), `{"status":"ready"}`, http.StatusOK, nil)
			ready := smsKey(kindReadyNotification, o.ID)
			require.Eventually(t, func() bool { return a.simSMS.deliveries()[ready] == 1 }, jobWait, 5*time.Millisecond, "ready texted")

			placeOrder(t, a, "")
			assert.Len(t, riverJobs(t, a.db, a.st.Dialect()), 2, "an order without a phone gets no job")

			for _, bad := range []string{"4155550100", "+0155550100", "+1 415 555 0100", "+1234567890123456", "+"} {
				body := fmt.Sprintf(`{"restaurant_id":1,"customer_phone":%q,"items":[{"menu_item_id":1,"quantity":1}]}`, bad)
				code, b := a.do("POST", "/orders", body)
				assert.Equal(t, http.StatusBadRequest, code, "phone %q: %s", bad, b)
			}
			assert.Len(t, riverJobs(t, a.db, a.st.Dialect()), 2)
			want := map[string]int{key: 1, ready: 1}
			assert.Equal(t, want, a.simSMS.deliveries(), "each text delivered once, no other")

			code, scraped := a.do("GET", "/health/metrics", "")
			require.Equal(t, http.StatusOK, code)
			for _, series := range []string{
				`servio_jobs_outcomes_total{kind="send_order_confirmation",outcome="completed"} 1`,
				`servio_jobs_outcomes_total{kind="send_ready_notification",outcome="completed"} 1`,
				`servio_sms_deliveries_total{kind="send_order_confirmation",result="delivered"} 1`,
				`servio_jobs_duration_seconds_count{kind="send_order_confirmation"} 1`,
				`servio_jobs_running{kind="send_order_confirmation"} 0`,
				`servio_jobs_queued `,
				`servio_jobs_oldest_age_seconds `,
				`river_work_count_total{attempt="1",kind="send_order_confirmation"`,
			} {
				assert.True(t, strings.Contains(string(scraped), "\n"+series), "/health/metrics lacks %s", series)
			}
		})
	}
}

// TestJobsExactlyOnceThroughFaults: the upstream fails (503) and trips the
// breaker, later answers 429 and 503 with Retry-After; every confirmation
// is delivered exactly once after recovery, none is discarded (breaker-open
// refusals and Retry-After answers snooze without using attempts), and the
// retry after a Retry-After waits at least that long.
func TestJobsExactlyOnceThroughFaults(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			cfg := jobsConfig(t, dialect)
			cfg.JobMaxAttempts = 5 // more than the 4 failures, so only a wrong snooze could discard a job
			const failures = 4     // the sends that fail without a Retry-After: the only ones that use an attempt
			opts := jobsOptions()
			opts.jobs.smsPolicy = func(p *resilience.PipelineConfig) {
				// Open for 1 s: the failed jobs' retries (50–200 ms later)
				// meet it open however slow the machine.
				p.Breaker = &resilience.BreakerConfig{ConsecutiveFailures: 2, OpenTimeout: time.Second, HalfOpenProbes: 1}
			}
			a := startAppWith(t, cfg, opts).admin()
			const n = 10
			want := map[string]int{}
			phase := func(faults func()) (snoozed int) {
				faults()
				for range n {
					o := placeOrder(t, a, testPhone)
					want[smsKey(kindOrderConfirmation, o.ID)] = 1
				}
				require.Eventually(t, func() bool { return states(riverJobs(t, a.db, a.st.Dialect()))["completed"] == len(want) }, jobWait, 10*time.Millisecond,
					"all confirmations completed; jobs %+v", riverJobs(t, a.db, a.st.Dialect()))
				// One job may take all 4 failures (the breaker's half-open
				// probe can be the same job each time) and succeed on its
				// 5th attempt; a snooze that used an attempt would push the
				// attempts past the failures.
				used := 0
				for _, j := range riverJobs(t, a.db, a.st.Dialect()) {
					snoozed += j.snoozes
					used += int(j.attempt) - 1
					assert.LessOrEqual(t, j.attempt, int64(cfg.JobMaxAttempts), "job of order %d used %d attempts", j.orderID, j.attempt)
				}
				assert.LessOrEqual(t, used, failures, "attempts beyond the first only for the failed sends; snoozes use none")
				return snoozed
			}

			// The first 4 sends fail: 2 in a row open the breaker.
			opened := phase(func() { a.simSMS.failNext(4, http.StatusServiceUnavailable, 0) })
			assert.Positive(t, opened, "breaker-open refusals snooze the jobs")
			phaseB := time.Now()
			all := phase(func() {
				a.simSMS.failNext(2, http.StatusTooManyRequests, time.Second)
				a.simSMS.failNext(1, http.StatusServiceUnavailable, time.Second)
			})
			assert.Equal(t, want, a.simSMS.deliveries(), "every confirmation delivered exactly once")

			last := map[string]simSMSRequest{}
			limited := 0
			for _, r := range a.simSMS.history() {
				if p, ok := last[r.key]; ok && p.status != http.StatusCreated && p.at.After(phaseB) {
					limited++
					assert.GreaterOrEqual(t, r.at.Sub(p.at), time.Second, "the retry after a %d with Retry-After waits it (1 s)", p.status)
				}
				last[r.key] = r
			}
			assert.Equal(t, 3, limited, "the 429s and the 503 with Retry-After were retried")
			t.Logf("%d orders, %d upstream requests (4× 503, then 2× 429 and 1× 503 with Retry-After), %d snoozes (%d while the breaker was open), 0 discarded, each key delivered once",
				2*n, a.simSMS.calls.Load(), all, opened)
		})
	}
}

// TestJobsDiscardSlowAndBaseline: a send failing on every attempt is
// discarded after JobMaxAttempts with each attempt's error recorded; a 400
// (our request is wrong) is discarded at once; a send slower than the job
// timeout, accepted by the upstream, is retried and texts once; baseline
// mode texts inline, before the response, with no queue.
func TestJobsDiscardSlowAndBaseline(t *testing.T) {
	t.Parallel()
	cfg := jobsConfig(t, "sqlite")
	cfg.JobMaxAttempts = 2
	cfg.JobTimeout = 300 * time.Millisecond
	a := startAppWith(t, cfg, jobsOptions()).admin()

	a.simSMS.failNext(2, http.StatusInternalServerError, 0)
	o := placeOrder(t, a, testPhone)
	require.Eventually(t, func() bool { return states(riverJobs(t, a.db, a.st.Dialect()))["discarded"] == 1 }, jobWait, 10*time.Millisecond)
	j := riverJobs(t, a.db, a.st.Dialect())[0]
	assert.Equal(t, o.ID, j.orderID)
	assert.Equal(t, int64(2), j.attempt, "discarded after JobMaxAttempts")
	assert.Equal(t, 2, j.errors, "each attempt's error is recorded")

	a.simSMS.failNext(1, http.StatusBadRequest, 0)
	placeOrder(t, a, testPhone)
	require.Eventually(t, func() bool { return states(riverJobs(t, a.db, a.st.Dialect()))["cancelled"] == 1 }, jobWait, 10*time.Millisecond)
	j = riverJobs(t, a.db, a.st.Dialect())[1]
	assert.Equal(t, int64(1), j.attempt, "a 400 is not retried")
	assert.Equal(t, 1, j.errors, "its reason is recorded")

	a.simSMS.setLatency(time.Second) // accepted at once, answered after the job timeout
	calls := a.simSMS.calls.Load()
	o = placeOrder(t, a, testPhone)
	require.Eventually(t, func() bool { return a.simSMS.calls.Load() > calls }, jobWait, 5*time.Millisecond)
	a.simSMS.setLatency(0)
	require.Eventually(t, func() bool { return states(riverJobs(t, a.db, a.st.Dialect()))["completed"] == 1 }, jobWait, 10*time.Millisecond)
	j = riverJobs(t, a.db, a.st.Dialect())[2]
	assert.Equal(t, int64(2), j.attempt, "the timed-out attempt was retried")
	assert.Equal(t, 1, a.simSMS.deliveries()[smsKey(kindOrderConfirmation, o.ID)], "and texted once")

	bcfg := jobsConfig(t, "sqlite")
	bcfg.Baseline = true
	b := startAppWith(t, bcfg, jobsOptions())
	o = placeOrder(t, b, testPhone)
	assert.Equal(t, 1, b.simSMS.deliveries()[smsKey(kindOrderConfirmation, o.ID)], "baseline texts before answering")
	var tables int
	require.NoError(t, b.db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE name = 'river_job'").Scan(&tables))
	assert.Zero(t, tables, "baseline runs no queue")
}

// TestJobsShutdownAndHealth: /health/detailed reports the queue's depth
// and warns once its oldest job is older than the warn age; Close lets the
// job in flight finish and leaves the queued ones for the next start,
// which sends them.
func TestJobsShutdownAndHealth(t *testing.T) {
	t.Parallel()
	cfg := jobsConfig(t, "sqlite")
	cfg.JobWorkers = 1
	// Long enough that the first send is still in flight when Close
	// comes, however slow the health request before it.
	cfg.SimSMSLatency = 4 * time.Second
	cfg.JobQueueWarnAge = 200 * time.Millisecond
	app, err := newApp(context.Background(), cfg, discardLogger(), jobsOptions())
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = app.Close()
		}
	})
	ta := &testApp{App: app, t: t}
	srvURL := serveForTest(t, app)
	ta.URL = srvURL
	for range 3 {
		placeOrder(t, ta, testPhone)
	}
	require.Eventually(t, func() bool { return app.simSMS.calls.Load() == 1 }, jobWait, 5*time.Millisecond, "first send in flight")
	time.Sleep(cfg.JobQueueWarnAge) // the oldest job is now past the warn age
	code, body := ta.do("GET", "/health/detailed", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	var h struct {
		Checks map[string][]struct {
			Status        string  `json:"status"`
			ObservedValue float64 `json:"observedValue"`
		} `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(body, &h), "%s", body)
	require.NotEmpty(t, h.Checks["jobs:depth"], "%s", body)
	assert.Equal(t, 3.0, h.Checks["jobs:depth"][0].ObservedValue, "three jobs queued or running")
	assert.Equal(t, "warn", h.Checks["jobs:depth"][0].Status, "oldest job past the warn age")
	assert.GreaterOrEqual(t, h.Checks["jobs:oldestAge"][0].ObservedValue, cfg.JobQueueWarnAge.Seconds())
	var sms struct {
		Checks map[string][]struct {
			Status      string `json:"status"`
			ComponentID string `json:"componentId"`
		} `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(body, &sms))
	require.NotEmpty(t, sms.Checks["sms"], "%s", body)
	assert.Contains(t, sms.Checks["sms"][0].ComponentID, "SIMULATED", "the simulation is labelled")
	assert.Equal(t, "pass", sms.Checks["sms"][0].Status, "circuit closed")

	require.NoError(t, app.Close(), "close waits for the job in flight")
	closed = true
	assert.Len(t, app.simSMS.deliveries(), 1, "one text sent")
	_, dsn, _, err := store.Target("", cfg.DataDir)
	require.NoError(t, err)
	db, err := sql.Open("sqlite", dsn)
	require.NoError(t, err)
	defer db.Close()
	assert.Equal(t, map[string]int{"completed": 1, "available": 2}, states(riverJobs(t, db, store.SQLite)),
		"the job in flight finished; the rest wait for the next start")

	cfg.SimSMSLatency = 0
	next := startAppWith(t, cfg, jobsOptions())
	require.Eventually(t, func() bool { return states(riverJobs(t, next.db, next.st.Dialect()))["completed"] == 3 }, jobWait, 10*time.Millisecond,
		"the next start sends the rest")
}

// TestJobsAcrossInstances: two instances on one PostgreSQL schema share the
// queue and one SMS upstream: 1,000 orders placed on both get 1,000
// confirmations, each delivered once and each job run once, and both
// instances work jobs.
func TestJobsAcrossInstances(t *testing.T) {
	t.Parallel()
	sim, err := startSimSMS(0, 0, discardLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	cfg := jobsConfig(t, "postgres")
	cfg.TwilioBaseURL, cfg.TwilioAccountSID, cfg.TwilioAuthToken = sim.BaseURL(), "ACtest", "token"
	cfg.RateLimit = false
	a := startAppWith(t, cfg, jobsOptions()).admin()
	cfg.DataDir = t.TempDir()
	b := startAppWith(t, cfg, jobsOptions()).admin()
	_, err = a.db.Exec("UPDATE inventory_items SET current_quantity = 1000000")
	require.NoError(t, err)

	const n, clients = 1000, 8
	ids := make(chan int64, n)
	errs := make(chan error, clients)
	for c := range clients {
		inst := []*testApp{a, b}[c%2]
		go func() {
			for range n / clients {
				body := fmt.Sprintf(`{"restaurant_id":1,"customer_phone":%q,"items":[{"menu_item_id":1,"quantity":1}]}`, testPhone)
				resp, err := http.Post(inst.URL+"/orders", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				var o store.Order
				err = json.NewDecoder(resp.Body).Decode(&o)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("POST /orders: %d %v", resp.StatusCode, err)
					return
				}
				ids <- o.ID
			}
			errs <- nil
		}()
	}
	for range clients {
		require.NoError(t, <-errs)
	}
	close(ids)
	want := map[string]int{}
	for id := range ids {
		want[smsKey(kindOrderConfirmation, id)] = 1
	}
	require.Len(t, want, n)
	require.Eventually(t, func() bool { return len(sim.deliveries()) == n }, 2*time.Minute, 50*time.Millisecond, "all confirmations sent")
	assert.Equal(t, want, sim.deliveries(), "each confirmation delivered exactly once")
	var sends, completed, reruns int
	require.NoError(t, a.db.QueryRow("SELECT COUNT(*), COUNT(*) FILTER (WHERE state = 'completed'), COUNT(*) FILTER (WHERE attempt > 1) FROM river_job").
		Scan(&sends, &completed, &reruns))
	assert.Equal(t, n, sends)
	assert.Zero(t, reruns, "no job ran twice")
	var workers int
	require.NoError(t, a.db.QueryRow("SELECT COUNT(DISTINCT attempted_by[1]) FROM river_job").Scan(&workers))
	assert.Equal(t, 2, workers, "both instances worked jobs")
	require.Eventually(t, func() bool {
		require.NoError(t, a.db.QueryRow("SELECT COUNT(*) FILTER (WHERE state = 'completed') FROM river_job").Scan(&completed))
		return completed == n
	}, jobWait, 20*time.Millisecond)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serveForTest serves app's handler until the test ends and returns its URL.
func serveForTest(t *testing.T, app *App) string {
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestJobsConfigRefused: settings that would break the queue's promises
// are refused at startup with the variable named.
func TestJobsConfigRefused(t *testing.T) {
	t.Parallel()
	for env, want := range map[string]string{
		"SIM_SMS_FAILURE_RATE=1.5":               "SIM_SMS_FAILURE_RATE",
		"JOB_WORKERS=0":                          "JOB_WORKERS",
		"JOB_MAX_ATTEMPTS=0":                     "JOB_MAX_ATTEMPTS",
		"JOB_RESCUE_AFTER=10s":                   "JOB_RESCUE_AFTER", // not more than JOB_TIMEOUT (30s): running jobs would be rescued
		"JOB_POLL_INTERVAL=0s":                   "JOB_POLL_INTERVAL",
		"TWILIO_FROM=5550006":                    "TWILIO_FROM",
		"TWILIO_BASE_URL=https://api.twilio.com": "TWILIO_AUTH_TOKEN",
		"JOB_QUEUE_WARN_AGE=-1s":                 "JOB_QUEUE_WARN_AGE",
	} {
		k, v, _ := strings.Cut(env, "=")
		_, err := parseConfig("servio", nil, func(name string) string {
			if name == k {
				return v
			}
			return ""
		}, io.Discard, nil)
		if assert.Error(t, err, env) {
			assert.Contains(t, err.Error(), want, env)
		}
	}
	_, err := parseConfig("servio", nil, func(string) string { return "" }, io.Discard, nil)
	assert.NoError(t, err, "the defaults are valid")
}

// TestJobsShutdownTimeout: a job still running when the shutdown timeout
// ends is cancelled, not waited for, and put back to be retried; the next
// start completes it.
func TestJobsShutdownTimeout(t *testing.T) {
	t.Parallel()
	cfg := jobsConfig(t, "sqlite")
	cfg.SimSMSLatency = time.Minute
	cfg.ShutdownTimeout = 300 * time.Millisecond
	app, err := newApp(context.Background(), cfg, discardLogger(), jobsOptions())
	require.NoError(t, err)
	ta := &testApp{App: app, t: t, URL: serveForTest(t, app)}
	placeOrder(t, ta, testPhone)
	require.Eventually(t, func() bool { return app.simSMS.calls.Load() == 1 }, jobWait, 5*time.Millisecond, "send in flight")
	start := time.Now()
	require.NoError(t, app.Close())
	assert.Less(t, time.Since(start), 20*time.Second, "Close waits the shutdown timeout, not the minute-long send")

	_, dsn, _, err := store.Target("", cfg.DataDir)
	require.NoError(t, err)
	db, err := sql.Open("sqlite", dsn)
	require.NoError(t, err)
	defer db.Close()
	jobs := riverJobs(t, db, store.SQLite)
	require.Len(t, jobs, 1)
	assert.Contains(t, []string{"available", "retryable"}, jobs[0].state, "the cancelled job is put back, not left running")

	cfg.SimSMSLatency = 0
	next := startAppWith(t, cfg, jobsOptions())
	require.Eventually(t, func() bool { return states(riverJobs(t, next.db, store.SQLite))["completed"] == 1 }, jobWait, 10*time.Millisecond,
		"the next start completes it")
}

// A send our own side refused without trying — the breaker, the bulkhead,
// the rate limit or the client throttle — snoozes the job and uses no
// attempt; an upstream failure is retried, on its last attempt discarded.
func TestJobRefusalsSnooze(t *testing.T) {
	q := &jobQueue{snooze: 5 * time.Second}
	row := &rivertype.JobRow{Attempt: 3, MaxAttempts: 3, Metadata: []byte(`{}`)}
	for _, err := range []error{
		fmt.Errorf("sms: %w", resilience.ErrOpen),
		fmt.Errorf("sms: %w", resilience.ErrBulkheadFull),
		fmt.Errorf("sms: %w", resilience.ErrRateLimited),
		fmt.Errorf("sms: %w", &httpclient.ThrottleError{Host: "api.twilio.com"}),
	} {
		outcome, jobErr := q.next(row, err)
		assert.Equal(t, "snoozed", outcome, "%v", err)
		assert.Error(t, jobErr)
	}
	outcome, _ := q.next(row, errors.New("connection reset"))
	assert.Equal(t, "discarded", outcome, "a real failure on the last attempt")
	row.Attempt = 1
	outcome, _ = q.next(row, errors.New("connection reset"))
	assert.Equal(t, "retried", outcome)
}

// The simulated SMS upstream remembers a bounded number of idempotency
// keys: past the bound the oldest is forgotten (and would be delivered
// again), so a long-running demo does not grow without end.
func TestSimSMSKeysBounded(t *testing.T) {
	s, err := startSimSMS(0, 0, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer s.Close()
	s.maxKeys = 2
	send := func(key string) {
		form := strings.NewReader("To=%2B14155550100&From=%2B15005550006&Body=hi")
		req, err := http.NewRequest(http.MethodPost, s.BaseURL()+"/2010-04-01/Accounts/ACsim/Messages.json", form)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("I-Twilio-Idempotency-Token", key)
		req.SetBasicAuth("ACsim", "token")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode)
	}
	for _, k := range []string{"a", "b", "a", "c"} {
		send(k)
	}
	assert.Equal(t, map[string]int{"b": 1, "c": 1}, s.deliveries(), "a (the oldest) forgotten once c came")
	send("a")
	assert.Equal(t, map[string]int{"c": 1, "a": 1}, s.deliveries())
}
