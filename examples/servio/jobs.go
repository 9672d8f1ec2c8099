package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/httpclient"
	"github.com/servio/perfkit/resilience"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Background jobs (issue 21). Work that need not hold up a request — the
// SMS a customer gets when an order is placed and when it is ready — runs
// on River (github.com/riverqueue/river), a job queue in the service's own
// database: PostgreSQL through database/sql (riverdatabasesql) or the
// embedded SQLite file (riversqlite). Every servio process runs a River
// client on the same database, so the instances share one queue and a job
// runs on one of them at a time.
//
// Promises:
//   - A job is inserted in the transaction of the change it is about
//     (POST /orders: send_order_confirmation; PATCH to ready:
//     send_ready_notification), so it exists if and only if the change
//     commits: no outbox, no lost or phantom notification. Orders without a
//     customer_phone get no job.
//   - Exactly one text per job, over River's at-least-once execution: each
//     send carries the idempotency key "<kind>:<order id>"
//     (I-Twilio-Idempotency-Token), and the upstream delivers a key once. A
//     worker killed after the upstream accepted is rescued by River
//     (RescueStuckJobsAfter) and its retry texts nobody twice.
//   - A failed send is retried with River's backoff (attempt⁴ seconds) up to
//     JobMaxAttempts attempts, then discarded with its errors recorded on the
//     job; a 4xx other than 408/429 (our request is wrong) is discarded at once.
//     A refusal that says "not now" — breaker open, the upstream's 429 or a
//     status with Retry-After — snoozes the job (for Retry-After, or
//     jobSnooze) without using an attempt, at most maxSnoozes times.
//   - Shutdown stops fetching, lets jobs in flight finish within the
//     shutdown timeout (then cancels them; River retries them), and leaves
//     queued jobs for the next start.
//
// River's tables are created by rivermigrate at startup (after servio's
// own migrations), under a PostgreSQL advisory lock so instances starting
// together do not race.

// Job kinds, as stored in river_job.kind.
const (
	kindOrderConfirmation = "send_order_confirmation"
	kindReadyNotification = "send_ready_notification"
)

// Limits of the queue's behaviour.
const (
	// maxSnoozes is how often one job may be snoozed (breaker open, 429)
	// before a refusal counts as a failed attempt.
	maxSnoozes = 100
	// jobSnooze is the snooze after a refusal that names no delay.
	jobSnooze = 5 * time.Second
)

// smsJobArgs are the arguments of both SMS jobs: what to send, to whom,
// for which order.
type smsJobArgs struct {
	OrderID int64  `json:"order_id"`
	To      string `json:"to"`
	Body    string `json:"body"`
}

func (a smsJobArgs) sms() smsJobArgs { return a }

// orderConfirmationArgs is the send_order_confirmation job.
type orderConfirmationArgs struct{ smsJobArgs }

// Kind implements river.JobArgs.
func (orderConfirmationArgs) Kind() string { return kindOrderConfirmation }

// readyNotificationArgs is the send_ready_notification job.
type readyNotificationArgs struct{ smsJobArgs }

// Kind implements river.JobArgs.
func (readyNotificationArgs) Kind() string { return kindReadyNotification }

// smsArgs is what the SMS worker works on.
type smsArgs interface {
	river.JobArgs
	sms() smsJobArgs
}

// confirmationText and readyText are the texts of the two jobs.
func confirmationText(o store.Order) string {
	return fmt.Sprintf("Servio: order #%d confirmed, total $%d.%02d. We will text you when it is ready.", o.ID, o.TotalCents/100, o.TotalCents%100)
}

func readyText(o store.Order) string {
	return fmt.Sprintf("Servio: order #%d is ready for pickup.", o.ID)
}

// smsKey is the idempotency key of a job's text: one per kind and order.
func smsKey(kind string, orderID int64) string { return kind + ":" + strconv.FormatInt(orderID, 10) }

// jobQueue is servio's River client with the SMS workers and their
// metrics. In baseline mode it has no client and sends inline.
type jobQueue struct {
	client  *river.Client[*sql.Tx] // nil in baseline mode
	deliver func(ctx context.Context, m smsMessage) (string, error)
	db      *sql.DB
	dialect store.Dialect
	log     *slog.Logger
	snooze  time.Duration
	warnAge time.Duration
	stop    time.Duration // the shutdown timeout

	running    metric.Int64UpDownCounter
	outcomes   metric.Int64Counter
	duration   metric.Float64Histogram
	deliveries metric.Int64Counter
	// last is the newest queue stats read (by a scrape or the health
	// check): a scrape whose read fails or is slow reports it.
	last atomic.Pointer[queueStats]
}

// jobOptions are test knobs of the queue.
type jobOptions struct {
	// snooze replaces jobSnooze (tests shorten it).
	snooze time.Duration
	// smsPolicy, when set, adjusts the resilience.Twilio pipeline.
	smsPolicy func(*resilience.PipelineConfig)
	// retryPolicy, when set, replaces River's backoff (tests wait
	// milliseconds, not attempt⁴ seconds).
	retryPolicy river.ClientRetryPolicy
}

// setupSMS builds the SMS path — resilience.Twilio's pipeline (timeout,
// breaker, bulkhead, rate limit; River owns the retries) over httpclient's
// pooled, instrumented client with its own retry and breaker off — and
// starts the simulated upstream when TWILIO_BASE_URL is not set.
func (a *App) setupSMS(mp metric.MeterProvider, adjust func(*resilience.PipelineConfig)) (func(context.Context, smsMessage) (string, error), error) {
	copts := httpclient.Twilio()
	copts.DisableRetry, copts.DisableBreaker = true, true
	// The client throttle (CLIENT_THROTTLE) guards Twilio like the LLM: a
	// send it refuses locally snoozes the job (refusedNow), no attempt used.
	copts.DisableThrottle = !a.cfg.ClientThrottle
	copts.Throttle.K = a.cfg.ClientThrottleK
	copts.MeterProvider, copts.Logger = mp, a.log
	client, err := httpclient.New(copts)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() error { client.CloseIdleConnections(); return nil })
	c := &smsClient{http: client, baseURL: a.cfg.TwilioBaseURL, sid: a.cfg.TwilioAccountSID, token: a.cfg.TwilioAuthToken, from: a.cfg.TwilioFrom}
	defer func() { a.smsURL = c.baseURL }()
	if c.baseURL == "" {
		if a.simSMS, err = startSimSMS(a.cfg.SimSMSLatency, a.cfg.SimSMSFailureRate, a.log); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, a.simSMS.Close)
		c.baseURL = a.simSMS.BaseURL()
		a.log.Warn("SIMULATED SMS upstream in use (set TWILIO_BASE_URL for a real one)",
			"url", redactURL(c.baseURL), "latency", a.cfg.SimSMSLatency.String(), "failure_rate", a.cfg.SimSMSFailureRate)
	}
	if a.cfg.Baseline {
		// The "before": a default client straight to the upstream, inline.
		c.http = &http.Client{Timeout: copts.Timeout}
		return c.send, nil
	}
	policy := resilience.Twilio()
	policy.Name, policy.MeterProvider, policy.Logger = "twilio", mp, a.log
	policy.Retry = nil // River retries the job, with its backoff
	if adjust != nil {
		adjust(&policy)
	}
	if a.smsPipe, err = resilience.NewPipeline(policy); err != nil {
		return nil, err
	}
	return resilience.Wrap1(a.smsPipe, c.send), nil
}

// setupJobs builds the SMS path and, unless in baseline mode, migrates
// River's tables and starts its client; it wraps the service's order
// writes so they insert their jobs in their transactions (baseline: send
// inline after the commit).
func (a *App) setupJobs(ctx context.Context, mp metric.MeterProvider, opts jobOptions) error {
	deliver, err := a.setupSMS(mp, opts.smsPolicy)
	if err != nil {
		return err
	}
	q := &jobQueue{deliver: deliver, db: a.db, dialect: a.st.Dialect(), log: a.log,
		snooze: opts.snooze, warnAge: a.cfg.JobQueueWarnAge, stop: a.cfg.ShutdownTimeout}
	if q.snooze <= 0 {
		q.snooze = jobSnooze
	}
	if err := q.instruments(mp); err != nil {
		return err
	}
	a.jobs = q
	a.wrapOrderWrites()
	if a.cfg.Baseline {
		return nil
	}
	var driver riverdriver.Driver[*sql.Tx]
	if q.dialect == store.Postgres {
		driver = riverdatabasesql.New(a.db)
	} else {
		driver = riversqlite.New(a.db)
	}
	if err := migrateRiver(ctx, a.db, driver, q.dialect, a.log); err != nil {
		return err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &smsWorker[orderConfirmationArgs]{q: q})
	river.AddWorker(workers, &smsWorker[readyNotificationArgs]{q: q})
	q.client, err = river.NewClient(driver, &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: a.cfg.JobWorkers}},
		Workers:              workers,
		Logger:               a.log,
		MaxAttempts:          a.cfg.JobMaxAttempts,
		JobTimeout:           a.cfg.JobTimeout,
		RescueStuckJobsAfter: a.cfg.JobRescueAfter,
		FetchPollInterval:    a.cfg.JobPollInterval,
		FetchCooldown:        min(a.cfg.JobPollInterval, river.FetchCooldownDefault),
		RetryPolicy:          opts.retryPolicy,
		Middleware:           []rivertype.Middleware{otelriver.NewMiddleware(&otelriver.MiddlewareConfig{MeterProvider: mp})},
	})
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	// The client outlives ctx (startup's): it stops in Close.
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	a.closers = append(a.closers, q.Close)
	a.log.Info("background jobs running", "engine", "river", "database", q.dialect.String(), "workers", a.cfg.JobWorkers,
		"max_attempts", a.cfg.JobMaxAttempts, "rescue_after", a.cfg.JobRescueAfter.String())
	return nil
}

// migrateRiver applies River's own migrations (rivermigrate, up). On
// PostgreSQL a session advisory lock per database and schema serializes
// instances starting together; SQLite is one process's file.
func migrateRiver(ctx context.Context, db *sql.DB, driver riverdriver.Driver[*sql.Tx], d store.Dialect, log *slog.Logger) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: log})
	if err != nil {
		return fmt.Errorf("jobs: migrations: %w", err)
	}
	if d == store.Postgres {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("jobs: migration lock: %w", err)
		}
		defer conn.Close()
		const key = "hashtext('servio:river-migrate:' || current_database() || '.' || current_schema())::bigint"
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+key+")"); err != nil {
			return fmt.Errorf("jobs: migration lock: %w", err)
		}
		defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+key+")") }()
	}
	// rivermigrate logs each version it applies.
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	return nil
}

// Close stops fetching jobs and waits for those in flight up to the
// shutdown timeout, then cancels the rest (River puts them back to be
// retried). Jobs still queued stay for the next start.
func (q *jobQueue) Close() error {
	if q.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.stop)
	defer cancel()
	err := q.client.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		q.log.Warn("jobs: shutdown timeout reached; cancelling the jobs still running (they will be retried)")
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		err = q.client.StopAndCancel(cctx)
	}
	if err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// wrapOrderWrites makes the service's order writes enqueue their SMS jobs
// in their transactions; in baseline mode they send inline after the
// commit instead, in the request.
func (a *App) wrapOrderWrites() {
	q := a.jobs
	create, patch := a.svc.CreateOrder, a.svc.PatchOrder
	a.svc.CreateOrder = func(ctx context.Context, in store.NewOrder) (store.Order, error) {
		if in.CustomerPhone != "" && q.client != nil {
			in.InTx = chainHooks(q.enqueue(kindOrderConfirmation), in.InTx)
		}
		o, err := create(ctx, in)
		if err == nil && in.CustomerPhone != "" && q.client == nil {
			q.sendInline(ctx, kindOrderConfirmation, o)
		}
		return o, err
	}
	a.svc.PatchOrder = func(ctx context.Context, in orderPatch) (store.Order, error) {
		if in.Status == store.StatusReady && q.client != nil {
			in.Hooks = append([]store.TxHook{q.enqueue(kindReadyNotification)}, in.Hooks...)
		}
		o, err := patch(ctx, in)
		if err == nil && in.Status == store.StatusReady && o.CustomerPhone != "" && q.client == nil {
			q.sendInline(ctx, kindReadyNotification, o)
		}
		return o, err
	}
}

// chainHooks runs a, then b (when set).
func chainHooks(a, b store.TxHook) store.TxHook {
	if b == nil {
		return a
	}
	return func(ctx context.Context, tx *sql.Tx, o store.Order) error {
		if err := a(ctx, tx, o); err != nil {
			return err
		}
		return b(ctx, tx, o)
	}
}

// enqueue is the TxHook that inserts kind's job for the order in the
// order's transaction (none for an order without a phone).
func (q *jobQueue) enqueue(kind string) store.TxHook {
	return func(ctx context.Context, tx *sql.Tx, o store.Order) error {
		if o.CustomerPhone == "" {
			return nil
		}
		var args river.JobArgs
		switch kind {
		case kindOrderConfirmation:
			args = orderConfirmationArgs{smsJobArgs{OrderID: o.ID, To: o.CustomerPhone, Body: confirmationText(o)}}
		default:
			args = readyNotificationArgs{smsJobArgs{OrderID: o.ID, To: o.CustomerPhone, Body: readyText(o)}}
		}
		if _, err := q.client.InsertTx(ctx, tx, args, nil); err != nil {
			return fmt.Errorf("jobs: enqueue %s for order %d: %w", kind, o.ID, err)
		}
		return nil
	}
}

// sendInline is baseline mode's send: in the request, after the commit,
// once; a failure is logged and lost (the "before" this issue fixes).
func (q *jobQueue) sendInline(ctx context.Context, kind string, o store.Order) {
	text := confirmationText(o)
	if kind == kindReadyNotification {
		text = readyText(o)
	}
	start := time.Now()
	_, err := q.deliver(ctx, smsMessage{To: o.CustomerPhone, Body: text, Key: smsKey(kind, o.ID)})
	attrs := metric.WithAttributes(attribute.String("kind", kind))
	q.duration.Record(ctx, time.Since(start).Seconds(), attrs)
	q.deliveries.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind), attribute.String("result", result(err))))
	if err != nil {
		q.log.WarnContext(ctx, "SMS not sent (baseline: inline, no retry)", "kind", kind, "order_id", o.ID, "err", err)
	}
}

func result(err error) string {
	if err != nil {
		return "failed"
	}
	return "delivered"
}

// smsWorker sends the text of an SMS job.
type smsWorker[T smsArgs] struct {
	river.WorkerDefaults[T]
	q *jobQueue
}

// Work implements river.Worker.
func (w *smsWorker[T]) Work(ctx context.Context, job *river.Job[T]) error {
	return w.q.work(ctx, job.JobRow, job.Args.sms())
}

// work sends one job's text and says what River is to do next.
func (q *jobQueue) work(ctx context.Context, row *rivertype.JobRow, a smsJobArgs) error {
	kind := attribute.String("kind", row.Kind)
	q.running.Add(ctx, 1, metric.WithAttributes(kind))
	defer q.running.Add(context.WithoutCancel(ctx), -1, metric.WithAttributes(kind))
	start := time.Now()
	sid, err := q.deliver(ctx, smsMessage{To: a.To, Body: a.Body, Key: smsKey(row.Kind, a.OrderID)})
	q.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(kind))
	outcome, err := q.next(row, err)
	q.outcomes.Add(ctx, 1, metric.WithAttributes(kind, attribute.String("outcome", outcome)))
	if outcome != "snoozed" {
		q.deliveries.Add(ctx, 1, metric.WithAttributes(kind, attribute.String("result", result(err))))
	}
	switch outcome {
	case "completed":
		q.log.DebugContext(ctx, "SMS sent", "kind", row.Kind, "order_id", a.OrderID, "job_id", row.ID, "sid", sid)
	case "discarded":
		q.log.WarnContext(ctx, "SMS job discarded: giving up", "kind", row.Kind, "order_id", a.OrderID, "job_id", row.ID,
			"attempt", row.Attempt, "max_attempts", row.MaxAttempts, "err", err)
	}
	return err
}

// next classifies a send's error into the job's outcome and the error
// River acts on: nil (completed), a snooze, a cancel (discarded at once) or
// the error (retried, or discarded on the last attempt).
func (q *jobQueue) next(row *rivertype.JobRow, err error) (string, error) {
	if err == nil {
		return "completed", nil
	}
	var se *httpclient.StatusError
	isStatus := errors.As(err, &se)
	// "Not now" rather than "failed": our pipeline refused without trying,
	// or the upstream said when to come back (429, or a 503 with Retry-After).
	notNow := refusedNow(err) || (isStatus && (se.StatusCode == http.StatusTooManyRequests || se.RetryAfter() > 0))
	if notNow && snoozes(row) < maxSnoozes {
		d := q.snooze
		var ra resilience.RetryAfterer
		if errors.As(err, &ra) && ra.RetryAfter() > 0 {
			d = ra.RetryAfter()
		}
		return "snoozed", river.JobSnooze(d)
	}
	if isStatus && se.StatusCode >= 400 && se.StatusCode < 500 && se.StatusCode != http.StatusRequestTimeout && se.StatusCode != http.StatusTooManyRequests {
		return "discarded", river.JobCancel(err)
	}
	if row.Attempt >= row.MaxAttempts {
		return "discarded", err
	}
	return "retried", err
}

// refusedNow reports whether the SMS pipeline refused the send without
// trying it: breaker open or probing, bulkhead full, local rate limit.
func refusedNow(err error) bool {
	return errors.Is(err, resilience.ErrOpen) || errors.Is(err, resilience.ErrTooManyRequests) ||
		errors.Is(err, resilience.ErrBulkheadFull) || errors.Is(err, resilience.ErrRateLimited) ||
		errors.Is(err, httpclient.ErrThrottled)
}

// snoozes is how often River has snoozed the job (its metadata's count).
func snoozes(row *rivertype.JobRow) int {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(row.Metadata, &m)
	return m.Snoozes
}
