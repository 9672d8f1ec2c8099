package main

import (
	"context"
	"fmt"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/health"
	"github.com/servio/perfkit/resilience"
	"go.opentelemetry.io/otel/metric"
)

// Job metrics, beside otelriver's river.* ones (work count and duration by
// kind and status, insert counts):
//
//	servio.jobs.queued        gauge     {job}  jobs waiting or running (all instances; read from the database)
//	servio.jobs.oldest_age    gauge     s      age of the oldest of them
//	servio.jobs.running       updown    {job}  jobs this instance is working, by kind
//	servio.jobs.outcomes      counter   {job}  worked jobs by kind and outcome: completed, retried, snoozed, discarded
//	servio.jobs.duration      histogram s      time to send a job's text, by kind
//	servio.sms.deliveries     counter   {message} sends by kind and result (delivered, failed): the delivery success ratio
func (q *jobQueue) instruments(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/servio/perfkit/examples/servio")
	var err error
	if q.running, err = m.Int64UpDownCounter("servio.jobs.running", metric.WithUnit("{job}"),
		metric.WithDescription("Jobs this instance is working, by kind")); err != nil {
		return err
	}
	if q.outcomes, err = m.Int64Counter("servio.jobs.outcomes", metric.WithUnit("{job}"),
		metric.WithDescription("Worked jobs by kind and outcome (completed, retried, snoozed, discarded)")); err != nil {
		return err
	}
	if q.duration, err = m.Float64Histogram("servio.jobs.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to send a job's text, by kind")); err != nil {
		return err
	}
	if q.deliveries, err = m.Int64Counter("servio.sms.deliveries", metric.WithUnit("{message}"),
		metric.WithDescription("SMS sends by kind and result (delivered, failed)")); err != nil {
		return err
	}
	queued, err := m.Int64ObservableGauge("servio.jobs.queued", metric.WithUnit("{job}"),
		metric.WithDescription("Jobs waiting or running, all instances"))
	if err != nil {
		return err
	}
	oldest, err := m.Float64ObservableGauge("servio.jobs.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest job waiting or running"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if q.client == nil {
			return nil
		}
		// A scrape must not wait on a slow or saturated database (Prometheus
		// would mark the whole target down): the read gets a short bound,
		// and past it the newest stats read so far are reported.
		ctx, cancel := context.WithTimeout(ctx, scrapeStatsTimeout)
		defer cancel()
		st, err := q.stats(ctx)
		if err != nil {
			last := q.last.Load()
			if last == nil {
				return nil // never read yet: no value rather than a failed scrape
			}
			st = *last
		}
		o.ObserveInt64(queued, st.depth)
		o.ObserveFloat64(oldest, st.oldest.Seconds())
		return nil
	}, queued, oldest)
	return err
}

// scrapeStatsTimeout bounds the queue-stats read of one metrics scrape.
const scrapeStatsTimeout = 100 * time.Millisecond

// queueStats is the queue's depth and the age of its oldest job.
type queueStats struct {
	depth  int64
	oldest time.Duration
}

// stats reads the queue's depth (jobs available, scheduled, retryable or
// running) and its oldest job's age from River's table.
func (q *jobQueue) stats(ctx context.Context) (queueStats, error) {
	const where = " FROM river_job WHERE state IN ('available', 'scheduled', 'retryable', 'running')"
	query := "SELECT COUNT(*), COALESCE(EXTRACT(EPOCH FROM now() - MIN(created_at)), 0)::float8" + where
	if q.dialect == store.SQLite {
		query = "SELECT COUNT(*), COALESCE((julianday('now') - julianday(MIN(created_at))) * 86400.0, 0)" + where
	}
	var st queueStats
	var secs float64
	if err := q.db.QueryRowContext(ctx, query).Scan(&st.depth, &secs); err != nil {
		return st, fmt.Errorf("jobs: queue stats: %w", err)
	}
	st.oldest = time.Duration(max(secs, 0) * float64(time.Second))
	q.last.Store(&st)
	return st, nil
}

// healthCheck reports the queue's depth and oldest job age; it warns when
// the oldest job is older than the warn age (texts are late) or the
// queue cannot be read.
func (q *jobQueue) healthCheck(ctx context.Context) health.Result {
	if q.client == nil {
		return health.Result{ComponentType: "component", Output: "baseline mode: texts are sent inline, no queue"}
	}
	st, err := q.stats(ctx)
	if err != nil {
		return health.Result{ComponentType: "component", Status: health.StatusWarn, Output: err.Error()}
	}
	r := health.Result{ComponentType: "component",
		Output: fmt.Sprintf("%d jobs queued, oldest %s (warn past %s)", st.depth, st.oldest.Round(time.Millisecond), q.warnAge),
		Measurements: []health.Measurement{
			{Name: "depth", Value: st.depth, Unit: "jobs"},
			{Name: "oldestAge", Value: st.oldest.Seconds(), Unit: "s"},
		}}
	if st.oldest > q.warnAge {
		r.Status = health.StatusWarn
	}
	return r
}

// smsComponentID names the SMS upstream in /health/detailed, clearly
// labelled when it is the simulation (a pass then says nothing about Twilio).
func (a *App) smsComponentID() string {
	if a.simSMS != nil {
		return "SIMULATED in-process SMS upstream " + redactURL(a.smsURL)
	}
	return redactURL(a.smsURL)
}

// smsCheck reports the SMS upstream through its circuit breaker, saying
// plainly when it is the in-process simulation. It sends no request: a
// probe would cost a text.
func (a *App) smsCheck(context.Context) health.Result {
	kind := "Twilio-compatible upstream"
	if a.simSMS != nil {
		kind = "SIMULATED SMS upstream (in-process)"
	}
	at := kind + " at " + redactURL(a.smsURL)
	if a.smsPipe == nil || a.smsPipe.Breaker() == nil { // baseline mode
		return health.Result{ComponentType: "component", Output: at + "; no circuit breaker"}
	}
	state := a.smsPipe.Breaker().State()
	r := health.Result{ComponentType: "component", Output: fmt.Sprintf("%s; circuit %s", at, state)}
	if state != resilience.StateClosed {
		r.Status = health.StatusWarn
	}
	return r
}
