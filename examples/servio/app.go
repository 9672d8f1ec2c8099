package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/health"
	"github.com/servio/perfkit/httpclient"
	"github.com/servio/perfkit/internal/redact"
	"github.com/servio/perfkit/metrics"
	"github.com/servio/perfkit/metrics/otlp"
	"github.com/servio/perfkit/ratelimit"
	"github.com/servio/perfkit/resilience"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// App is the assembled service: configuration, database pool, cache, rate
// limits, LLM client, health checker, metrics and the HTTP handler. Close
// releases everything it started.
type App struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Provider
	redis   redis.UniversalClient // nil without REDIS_URL
	pool    *dbpool.DB
	db      *sql.DB // pool.DB(), for what needs a plain *sql.DB (migrations)
	st      *store.Store
	cache   *cache.Cache
	svc     *service
	limits  *ratelimit.Group
	health  *health.Checker
	llm     *llmClient
	llmPipe *resilience.Pipeline
	sim     *simLLM // nil when OPENAI_BASE_URL is set
	// issue 21: background jobs and the SMS upstream.
	jobs    *jobQueue
	smsPipe *resilience.Pipeline // nil in baseline mode
	simSMS  *simSMS              // nil when TWILIO_BASE_URL is set
	smsURL  string               // the SMS upstream's base URL
	tokens  *tokenSigner
	// benchCostPaid counts the requests that paid -bench-cpu-cost.
	benchCostPaid atomic.Int64
	// dummyHash is checked when a login names no user (see login).
	dummyHash string
	// hashGate bounds concurrent password checks (nil in baseline mode).
	hashGate *resilience.Bulkhead
	// overload sheds requests past capacity by priority (nil when
	// -adaptive-limit is off or in baseline mode).
	overload *resilience.AdaptiveLimiter
	queue    *resilience.QueueDelay // the wait since -adaptive-queue-header's stamp; nil without
	// export serves GET /restaurants/{id}/orders/export (export.go).
	export *exporter

	ask func(ctx context.Context, q question) ([]byte, error)

	handler http.Handler
	closers []func() error

	// replicas routes reads to DATABASE_REPLICA_URLS (nil without them);
	// see replicas.go.
	replicas *dbpool.Cluster
}

// appOptions are knobs for tests and for the binary.
type appOptions struct {
	// setGlobal installs the metrics provider as OTel's global one (the
	// binary does; tests, which run several Apps, do not).
	setGlobal bool
	// passwordIterations is the PBKDF2 cost of new password hashes;
	// 0 means pbkdf2Iterations. Tests lower it to stay fast under -race.
	passwordIterations int
	// llmPolicy, when set, adjusts the resilience.OpenAI policy (tests
	// shorten its backoff).
	llmPolicy func(*resilience.PipelineConfig)
	// redisTimeout, when set, replaces the cache's and the rate limiter's
	// per-call Redis deadlines (100 ms, 50 ms). Tests on a loaded machine
	// raise it so a slow scheduler is not taken for a Redis outage.
	redisTimeout time.Duration
	// overloadDelay, when set, replaces resilience.SchedulerDelay as the
	// adaptive limiter's delay signal (tests drive it).
	overloadDelay func() time.Duration
	// healthInterval is how often the health checks run in the background;
	// 0 means healthInterval (10 s), negative runs them on request (tests
	// that assert a check's result right after breaking its dependency).
	healthInterval time.Duration
	// jobs are the background jobs' test knobs.
	jobs jobOptions
}

// newApp opens everything and assembles the handler; on error, whatever
// was already started is closed.
func newApp(ctx context.Context, cfg Config, log *slog.Logger, opts appOptions) (_ *App, err error) {
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			_ = a.Close()
			err = redact.Error(err) // it may quote a configured URL
		}
	}()
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "uploads"), 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := a.setupMetrics(ctx, opts.setGlobal); err != nil {
		return nil, err
	}
	mp := a.metrics

	if a.redis, err = newRedis(cfg.RedisURL); err != nil {
		return nil, err
	}
	if a.redis != nil {
		a.closers = append(a.closers, a.redis.Close)
		// go-redis's own OpenTelemetry instrumentation: pool usage, waits,
		// timeouts, hits and misses, and connection create/use times
		// (db.client.connections.*, pool.name = the server's address).
		if err := redisotel.InstrumentMetrics(a.redis, redisotel.WithMeterProvider(mp),
			redisotel.WithSemConvCompliantMetrics(true)); err != nil {
			return nil, fmt.Errorf("redis metrics: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := a.redis.Ping(pctx).Err(); err != nil {
			// Cache and limits degrade to local behind their breakers.
			log.Warn("Redis not reachable at startup; running degraded until it answers", "err", redact.String(err.Error()))
		}
		cancel()
	}

	driver, dsn, dialect, err := store.Target(cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	poolCfg := dbpool.Config{Name: "servio", MeterProvider: mp, Logger: log}
	if cfg.Baseline {
		// Observed (metrics, slow-query log) but untuned: database/sql's
		// defaults — callers dial on demand, 2 connections kept idle, the
		// rest closed on return — with no warm connections, no recycling,
		// no query, idle or acquire timeouts. MaxOpen stays 20 (database/sql
		// has no bound) so pool saturation compares between the two modes.
		poolCfg.MinConns, poolCfg.MaxUses, poolCfg.QueryTimeout, poolCfg.IdleTimeout, poolCfg.AcquireTimeout = -1, -1, -1, -1, -1
		poolCfg.EagerDial, poolCfg.MaxIdle = true, 2
	}
	if a.pool, err = dbpool.Open(ctx, driver, dsn, poolCfg); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	a.closers = append(a.closers, a.pool.Close)
	a.db = a.pool.DB()
	a.st = store.New(a.pool, dialect)
	if a.replicas, err = openReplicas(ctx, cfg, dialect, a.pool, poolCfg); err != nil {
		return nil, err
	}
	if a.replicas != nil {
		a.closers = append(a.closers, a.replicas.Close)
		a.st = store.NewReplicated(a.replicas, dialect)
	}
	// Before anything else uses the store: it may yield to the limiter.
	if err := a.setupOverload(opts.overloadDelay); err != nil {
		return nil, err
	}
	if err := a.st.Migrate(ctx, a.db, log); err != nil {
		return nil, err
	}
	iter := cmp.Or(opts.passwordIterations, pbkdf2Iterations)
	hash := func(p string) (string, error) { return hashPassword(p, iter) }
	if a.dummyHash, err = hash("not a password"); err != nil {
		return nil, err
	}
	if !cfg.Baseline {
		if a.hashGate, err = newHashGate(mp); err != nil {
			return nil, err
		}
	}
	if cfg.DemoData {
		loaded, err := a.st.LoadDemo(ctx, hash)
		if err != nil {
			return nil, fmt.Errorf("demo data: %w", err)
		}
		if loaded {
			log.Info("demo data loaded into the empty database", "users", len(store.DemoUsers))
		}
	}

	if a.cache, err = cache.New(cache.Config{Redis: a.redis, KeyPrefix: cfg.RedisPrefix + "cache:", Codec: rawJSON{},
		RedisTimeout: cmp.Or(opts.redisTimeout, cfg.RedisTimeout), Name: "servio", MeterProvider: mp, Logger: log}); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.cache.Close)
	tracker, err := metrics.NewTracker(metrics.TrackerConfig{MeterProvider: mp})
	if err != nil {
		return nil, err
	}
	a.svc = newService(a.st, a.cache, tracker, log, cfg.Baseline)

	a.tokens = &tokenSigner{key: []byte(cfg.AuthSecret), ttl: 12 * time.Hour, now: time.Now}
	if cfg.AuthSecret == "" {
		a.tokens.key = make([]byte, 32)
		_, _ = rand.Read(a.tokens.key)
		log.Warn("AUTH_SECRET not set: tokens are signed with a random per-process key and hold on this instance only")
	}

	if err := a.setupLLM(mp, tracker, opts.llmPolicy); err != nil {
		return nil, err
	}
	if a.limits, err = ratelimit.NewGroup(ratelimit.Config{Redis: a.redis, KeyPrefix: cfg.RedisPrefix + "ratelimit:",
		RedisTimeout: cmp.Or(opts.redisTimeout, cfg.RedisTimeout), MeterProvider: mp, Logger: log}); err != nil {
		return nil, err
	}
	if err := a.setupJobs(ctx, mp, opts.jobs); err != nil {
		return nil, err
	}
	if err := a.setupHealth(mp, cmp.Or(opts.healthInterval, healthInterval)); err != nil {
		return nil, err
	}
	if a.handler, err = a.routes(); err != nil {
		return nil, err
	}
	if a.replicas != nil {
		a.handler = a.dbSession(a.handler)
	}
	if a.queue != nil {
		proxies, err := ratelimit.NewClientIP(ratelimit.IPConfig{TrustedProxies: cfg.TrustedProxies})
		if err != nil {
			return nil, err
		}
		a.handler = observeQueue(a.queue, cfg.AdaptiveQueueHeader, proxies, cfg.AdaptiveMaxWait > 0, a.handler)
	}
	if cfg.Baseline {
		log.Warn("BASELINE mode: perfkit's cache, pool tuning, rate limits and LLM resilience are off")
	}
	log.Info("servio ready", "database", dialect.String(), "redis", a.redis != nil,
		"cache", map[bool]string{true: "L1+Redis L2", false: "L1 only"}[a.redis != nil],
		"rate_limits", cfg.RateLimit && !cfg.Baseline, "adaptive_limit", a.overload != nil, "client_throttle", cfg.ClientThrottle && !cfg.Baseline, "baseline", cfg.Baseline, "llm_simulated", a.sim != nil, "sms_simulated", a.simSMS != nil)
	return a, nil
}

func (a *App) setupMetrics(ctx context.Context, setGlobal bool) error {
	cfg := metrics.Config{ServiceName: "servio", DisableGlobal: !setGlobal, Logger: a.log, Views: riverViews()}
	var exp sdkmetric.Exporter
	var err error
	if ep := a.cfg.OTLPEndpoint; ep != "" && ep != os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") {
		// Given by flag: the collector's base URL or the full /v1/metrics
		// one; otlp.Config.EndpointURL takes either.
		exp, err = otlp.NewExporter(ctx, otlp.Config{EndpointURL: ep})
	} else {
		exp, err = otlp.FromEnv(ctx) // nil without OTEL_EXPORTER_OTLP_*ENDPOINT
	}
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	cfg.Exporters = []sdkmetric.Exporter{exp}
	if a.cfg.StatsDAddr != "" {
		cfg.StatsD = &metrics.StatsDConfig{Addr: a.cfg.StatsDAddr, Format: a.cfg.StatsDFormat, NamePrefix: "servio", Logger: a.log}
	}
	p, err := metrics.Setup(ctx, cfg)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	a.metrics = p
	a.closers = append(a.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return p.Shutdown(ctx)
	})
	return nil
}

// setupLLM builds the assistant's path: cache (answers by normalized
// question) ⊃ resilience.OpenAI pipeline (timeout, retry, breaker,
// bulkhead, rate limit) ⊃ httpclient's pooled, instrumented client with
// its client-side throttle (CLIENT_THROTTLE). The client's own retry and
// breaker layers are off so the two do not multiply.
func (a *App) setupLLM(mp *metrics.Provider, tr *metrics.Tracker, adjust func(*resilience.PipelineConfig)) error {
	copts := httpclient.OpenAI()
	copts.DisableRetry, copts.DisableBreaker = true, true
	// The client's throttle stays (unless turned off): it sits under the
	// pipeline's retry, so every attempt passes it and counts as a
	// request, and what reaches the upstream stays near K times what it
	// accepts.
	copts.DisableThrottle = !a.cfg.ClientThrottle
	copts.Throttle.K = a.cfg.ClientThrottleK
	copts.MeterProvider, copts.Logger = mp, a.log
	copts.Timeout, copts.ResponseHeaderTimeout = a.cfg.AssistantTimeout, a.cfg.AssistantTimeout
	client, err := httpclient.New(copts)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, func() error { client.CloseIdleConnections(); return nil })
	a.llm = &llmClient{http: client, baseURL: a.cfg.OpenAIBaseURL, apiKey: a.cfg.OpenAIAPIKey, model: a.cfg.OpenAIModel}
	if a.cfg.OpenAIBaseURL == "" {
		if a.sim, err = startSimLLM(a.cfg.SimLLMLatency, a.cfg.SimLLMFailureRate, a.log); err != nil {
			return err
		}
		a.closers = append(a.closers, a.sim.Close)
		a.llm.baseURL = a.sim.BaseURL()
		a.log.Warn("SIMULATED LLM upstream in use (set OPENAI_BASE_URL for a real one)",
			"url", redactURL(a.llm.baseURL), "latency", a.cfg.SimLLMLatency.String(), "failure_rate", a.cfg.SimLLMFailureRate)
	}
	if a.cfg.Baseline {
		// The original service's "before": a default client, straight to the upstream,
		// bounded only by the assistant timeout.
		a.llm.http = &http.Client{Timeout: a.cfg.AssistantTimeout}
		a.llmPipe, err = resilience.NewPipeline(resilience.PipelineConfig{Name: "openai", MeterProvider: mp, Logger: a.log})
		if err != nil {
			return err
		}
		a.ask = metrics.TrackWith1(tr, "assistant.query", func(ctx context.Context, q question) ([]byte, error) {
			ans, err := a.llm.ask(ctx, q)
			if err != nil {
				return nil, err
			}
			return marshalAnswer(q, ans, a.llm.model, a.sim != nil)
		})
		return nil
	}
	policy := resilience.OpenAI()
	policy.Name, policy.MeterProvider, policy.Logger = "openai", mp, a.log
	policy.Timeout = a.cfg.AssistantTimeout
	// A throttled attempt is not retried: the throttle already says the
	// upstream is refusing, so the caller gets a 503 at once instead of
	// backoff waits that end in another local rejection.
	policy.Retry.Retryable = func(err error) bool {
		return !errors.Is(err, httpclient.ErrThrottled) && resilience.DefaultRetryable(err)
	}
	if adjust != nil {
		adjust(&policy)
	}
	if a.llmPipe, err = resilience.NewPipeline(policy); err != nil {
		return err
	}
	call := resilience.Wrap1(a.llmPipe, a.llm.ask)
	a.ask = metrics.TrackWith1(tr, "assistant.query", cache.Cacheable(a.cache, assistantKey, assistantTTL,
		func(ctx context.Context, q question) ([]byte, error) {
			ans, err := call(ctx, q)
			if err != nil {
				return nil, err
			}
			return marshalAnswer(q, ans, a.llm.model, a.sim != nil)
		}))
	return nil
}

// Handler returns the service's HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Close releases what the App started, last started first. It is safe to
// call more than once.
func (a *App) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// riverViews shape otelriver's job metrics for Prometheus: its duration
// histograms are named "*_duration_histogram", which promtool rejects (a
// name must not carry its type), and each has a last-value gauge twin
// that adds nothing a histogram does not say. The gauges are dropped and
// the histograms take the plain names (river.work.duration,
// river.insert_many.duration) with the toolkit's duration buckets.
func riverViews() []sdkmetric.View {
	hist := sdkmetric.AggregationExplicitBucketHistogram{Boundaries: metrics.HTTPBuckets()}
	return []sdkmetric.View{
		sdkmetric.NewView(sdkmetric.Instrument{Name: "river.work_duration"}, sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}}),
		sdkmetric.NewView(sdkmetric.Instrument{Name: "river.insert_many_duration"}, sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}}),
		sdkmetric.NewView(sdkmetric.Instrument{Name: "river.work_duration_histogram"}, sdkmetric.Stream{Name: "river.work.duration", Aggregation: hist}),
		sdkmetric.NewView(sdkmetric.Instrument{Name: "river.insert_many_duration_histogram"}, sdkmetric.Stream{Name: "river.insert_many.duration", Aggregation: hist}),
	}
}
