package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/servio/perfkit/internal/redact"
	"github.com/servio/perfkit/metrics"
)

// Config is servio's configuration. Every field has a flag and, for the
// settings shared with other tools, the environment variable of DESIGN.md;
// a flag given on the command line wins over the environment.
type Config struct {
	Addr        string // -addr, ADDR; default ":8080"
	DatabaseURL string // -database-url, DATABASE_URL (postgres://); empty: SQLite file in DataDir
	RedisURL    string // -redis-url, REDIS_URL (redis://, rediss://, or cluster host:port,host:port); empty: L1-only cache, local limits
	RedisPrefix string // -redis-prefix, REDIS_PREFIX; default "servio:" (cache and rate-limit keys start with it)
	// RedisTimeout, when set, is the deadline of every cache and rate-limit
	// call to Redis (-redis-timeout, REDIS_TIMEOUT); default 0: the
	// packages' own (cache 100 ms, rate limits 250 ms).
	RedisTimeout  time.Duration
	OpenAIBaseURL string // -openai-base-url, OPENAI_BASE_URL; empty: in-process simulated upstream
	OpenAIAPIKey  string // OPENAI_API_KEY (env only, so it stays out of ps)
	OpenAIModel   string // -openai-model, OPENAI_MODEL; default "gpt-4o-mini"
	// AssistantTimeout bounds one assistant query, retries included
	// (-assistant-timeout, ASSISTANT_TIMEOUT); default 30 s, resilience.OpenAI's.
	AssistantTimeout time.Duration
	StatsDAddr       string // -statsd-addr, STATSD_ADDR (host:port)
	OTLPEndpoint     string // -otlp-endpoint, OTEL_EXPORTER_OTLP_ENDPOINT
	DataDir          string // -data-dir, DATA_DIR; default "./data" (SQLite file and uploads/)

	UploadMaxBytes int64 // -upload-max-bytes, UPLOAD_MAX_BYTES; default 10 MiB
	DemoData       bool  // -demo-data, DEMO_DATA; default true: load demo data into an empty database

	// Baseline switches perfkit's techniques off — no cache, an untuned
	// pool, no rate limits, a plain HTTP client with no timeout, retry or
	// breaker for the LLM — so a load test can compare before and after.
	// Metrics and health stay on to measure both. -baseline, BASELINE.
	Baseline bool

	// AdaptiveLimit sheds load past capacity by route priority with a
	// resilience.AdaptiveLimiter (503 + Retry-After); -adaptive-limit,
	// ADAPTIVE_LIMIT (true/false, on/off); default true, off with -baseline.
	AdaptiveLimit bool
	// AdaptiveMinLimit is the floor of the adaptive limit
	// (-adaptive-min-limit, ADAPTIVE_MIN_LIMIT); default 100.
	AdaptiveMinLimit int
	// AdaptiveDelayTarget is the Go run-queue delay above which the
	// adaptive limiter sheds by priority (-adaptive-delay-target,
	// ADAPTIVE_DELAY_TARGET); default 0, off (the concurrency limit alone
	// sheds). Experimental: the overload benchmark of 5 Dec 2026
	// (scripts/bench-overload, 2 ms) saw it shed low-priority requests at
	// 40 % of a core and cut goodput at 4× load. The delay now counts only
	// while the process keeps its cores ≥ 90 % busy over 100 ms
	// (resilience.AdaptiveConfig.CPUTime); in the simulation with bursty
	// arrivals that sheds nothing at 0.4× capacity but still 0.02 % at
	// 0.6× and 0.8 % at 0.8×, so it stays off by default until a run on a
	// quiet machine confirms it.
	AdaptiveDelayTarget time.Duration
	// AdaptiveQueueHeader, with AdaptiveDelayTarget, names the header in
	// which a front proxy stamps each request's arrival, such as
	// X-Request-Start (-adaptive-queue-header, ADAPTIVE_QUEUE_HEADER;
	// default empty). The delay the limiter holds under its target is
	// then the standing queue since that stamp (resilience.QueueDelay:
	// the proxy, the network, socket buffers and the run queue) instead of
	// the run-queue delay. Stamps are believed only from TrustedProxies
	// (the peer, not X-Forwarded-For), which must overwrite the header on
	// every request; it needs AdaptiveDelayTarget and TrustedProxies.
	AdaptiveQueueHeader string
	// AdaptiveMaxWait, with AdaptiveQueueHeader, refuses requests that
	// waited too long since their stamp while the limiter sheds: more
	// than AdaptiveMaxWait for low priority, twice that for normal, four
	// times for high (resilience.AdaptiveConfig.MaxWait;
	// -adaptive-max-wait, ADAPTIVE_MAX_WAIT; default 0, off).
	AdaptiveMaxWait time.Duration
	// AdaptiveNetworkFirst, when positive, fixes the adaptive limit at
	// that many requests (each priority's share of it applies: low 50 %,
	// normal 75 %, high 90 %, at least one each), queues up to eight times
	// as many more and refuses the rest at once, and passes each freed
	// slot on only after the Go runtime has polled the network
	// (resilience.AdaptiveConfig.NetworkFirst), so a request that arrives
	// while the core is busy is read, and refused or queued, before the
	// next handler starts (-adaptive-network-first,
	// ADAPTIVE_NETWORK_FIRST; default 0, off). For CPU-bound handlers on
	// SQLite on one core: 1. Every route but the probes counts, the
	// assistant's model call and the export included, so a slot held
	// waiting on I/O holds the others back.
	AdaptiveNetworkFirst int
	// BenchCPUCost, when positive, adds that much CPU work to every
	// request past admission, the probes, /health/metrics and the export aside
	// (-bench-cpu-cost, BENCH_CPU_COST; default 0, off): a benchmark-only
	// setting that brings servio's capacity on one core within what one
	// generator core can offer at 4× (its reads alone serve 11,000
	// req/s there). The work is counted in SHA-256 rounds at
	// BenchRoundsPerMS, not timed, so a slower core does the same work.
	BenchCPUCost time.Duration
	// BenchRoundsPerMS is the rate BenchCPUCost converts at
	// (-bench-rounds-per-ms, BENCH_ROUNDS_PER_MS; default 0: calibrated
	// on the core at start, as the overload benchmark's stand-in does).
	BenchRoundsPerMS float64

	RateLimit      bool     // -rate-limit, RATE_LIMIT; default true (false: no limits, e.g. for load tests)
	TrustedProxies []string // -trusted-proxies, TRUSTED_PROXIES: comma-separated CIDRs whose X-Forwarded-For is believed

	SimLLMLatency     time.Duration // -sim-llm-latency, SIM_LLM_LATENCY; default 150ms
	SimLLMFailureRate float64       // -sim-llm-failure-rate, SIM_LLM_FAILURE_RATE (0..1); default 0

	AuthSecret      string        // AUTH_SECRET; empty: random per process (tokens then hold on this instance only)
	ShutdownTimeout time.Duration // -shutdown-timeout; default 15s
	DrainDelay      time.Duration // -drain-delay, DRAIN_DELAY: how long /health/ready fails before the listener closes; default 0
	LogLevel        string        // -log-level, LOG_LEVEL: debug, info, warn, error; default info

	// issue 23: client throttling
	// ClientThrottle turns on httpclient's client-side adaptive throttling
	// (the SRE book's) on the LLM and SMS clients: once the upstream refuses
	// (429, 503, timeouts), requests past K per accepted one are rejected
	// locally — the assistant answers 503 at once, an SMS job is snoozed
	// without using an attempt; -client-throttle,
	// CLIENT_THROTTLE (on/off); default on, off with -baseline.
	ClientThrottle bool
	// ClientThrottleK is the throttle's K, requests sent per accepted one
	// (-client-throttle-k, CLIENT_THROTTLE_K); default 2, at least 1.
	ClientThrottleK float64
	// issue 20: StatsD format
	StatsDFormat metrics.StatsDFormat // -statsd-format, STATSD_FORMAT: dogstatsd (default) or statsd
	// issue 21: background jobs (River) and SMS through a Twilio-compatible API.
	TwilioBaseURL     string        // -twilio-base-url, TWILIO_BASE_URL; empty: in-process simulated upstream
	TwilioAccountSID  string        // -twilio-account-sid, TWILIO_ACCOUNT_SID; default "ACsimulated"
	TwilioAuthToken   string        // TWILIO_AUTH_TOKEN (env only, so it stays out of ps)
	TwilioFrom        string        // -twilio-from, TWILIO_FROM: the sending number (E.164); default "+15005550006"
	SimSMSLatency     time.Duration // -sim-sms-latency, SIM_SMS_LATENCY; default 100ms
	SimSMSFailureRate float64       // -sim-sms-failure-rate, SIM_SMS_FAILURE_RATE (0..1); default 0
	JobWorkers        int           // -job-workers, JOB_WORKERS: jobs worked at once per instance; default 10
	JobMaxAttempts    int           // -job-max-attempts, JOB_MAX_ATTEMPTS: attempts before a job is discarded; default 10
	JobTimeout        time.Duration // -job-timeout, JOB_TIMEOUT: bound on one attempt; default 30s
	// JobRescueAfter is how long a job may stay running before River
	// takes it for lost (its worker died) and retries it
	// (-job-rescue-after, JOB_RESCUE_AFTER); default 5m, more than JobTimeout.
	JobRescueAfter  time.Duration
	JobPollInterval time.Duration // -job-poll-interval, JOB_POLL_INTERVAL: how often idle workers look for jobs; default 1s
	JobQueueWarnAge time.Duration // -job-queue-warn-age, JOB_QUEUE_WARN_AGE: oldest-job age past which /health/detailed warns; default 1m
	// issue 22: read replicas
	// DatabaseReplicaURLs is a comma-separated list of PostgreSQL replica
	// URLs (-database-replica-urls, DATABASE_REPLICA_URLS) of the primary
	// at DatabaseURL; menu, low-stock and order-history reads go to them
	// (see replicas.go). Empty: every read on the primary.
	DatabaseReplicaURLs string
}

const defaultUploadMax = 10 << 20

// parseConfig reads flags from args over defaults taken from getenv.
// extra, when set, registers more flags (the seed subcommand's).
func parseConfig(name string, args []string, getenv func(string) string, out io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var errs []error
	envInt := func(k string, def int64) int64 {
		return envValue(getenv, &errs, k, def, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) })
	}
	envDur := func(k string, def time.Duration) time.Duration {
		return envValue(getenv, &errs, k, def, time.ParseDuration)
	}
	envFloat := func(k string, def float64) float64 {
		return envValue(getenv, &errs, k, def, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	}
	envBool := func(k string, def bool) bool {
		return envValue(getenv, &errs, k, def, strconv.ParseBool)
	}
	fs.StringVar(&c.Addr, "addr", env("ADDR", ":8080"), "listen address (env ADDR)")
	fs.StringVar(&c.DatabaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL URL; empty: SQLite in -data-dir (env DATABASE_URL)")
	fs.StringVar(&c.RedisURL, "redis-url", getenv("REDIS_URL"), "Redis URL or comma-separated cluster nodes; empty: in-process only (env REDIS_URL)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", env("REDIS_PREFIX", "servio:"), "prefix of every Redis key (env REDIS_PREFIX)")
	fs.BoolVar(&c.Baseline, "baseline", envBool("BASELINE", false), "switch perfkit's techniques off, for before/after load tests (env BASELINE)")
	fs.BoolVar(&c.AdaptiveLimit, "adaptive-limit", envValue(getenv, &errs, "ADAPTIVE_LIMIT", true, parseOnOff),
		"shed load past capacity by route priority, 503 + Retry-After (env ADAPTIVE_LIMIT: on/off)")
	fs.IntVar(&c.AdaptiveMinLimit, "adaptive-min-limit", int(envInt("ADAPTIVE_MIN_LIMIT", 100)),
		"floor of the adaptive concurrency limit: requests in flight it always admits (env ADAPTIVE_MIN_LIMIT)")
	fs.DurationVar(&c.AdaptiveDelayTarget, "adaptive-delay-target", envDur("ADAPTIVE_DELAY_TARGET", 0),
		"Go run-queue delay (or, with -adaptive-queue-header, the queue since a proxy's stamp) above which requests are shed by priority, e.g. 2ms; 0: off, the default (experimental; env ADAPTIVE_DELAY_TARGET)")
	fs.StringVar(&c.AdaptiveQueueHeader, "adaptive-queue-header", getenv("ADAPTIVE_QUEUE_HEADER"),
		"with -adaptive-delay-target and -trusted-proxies: the header in which a front proxy stamps each request's arrival (X-Request-Start: t=<seconds.ms>, t=<µs>, or ms); the delay is then the queue since that stamp, believed only from the trusted proxies (env ADAPTIVE_QUEUE_HEADER)")
	fs.DurationVar(&c.AdaptiveMaxWait, "adaptive-max-wait", envDur("ADAPTIVE_MAX_WAIT", 0),
		"with -adaptive-queue-header: while shedding, refuse a request that waited longer than this since its stamp (low priority; normal 2×, high 4×), e.g. 2ms; 0: off, the default (env ADAPTIVE_MAX_WAIT)")
	fs.IntVar(&c.AdaptiveNetworkFirst, "adaptive-network-first", int(envInt("ADAPTIVE_NETWORK_FIRST", 0)),
		"fix the adaptive limit at this many requests (priority shares apply: normal 75 %, at least 1), queue 8× as many, refuse the rest at once, and pass a freed slot on only after the runtime polled the network (CPU-bound handlers on SQLite, one core: 1); 0: off, the default (env ADAPTIVE_NETWORK_FIRST)")
	fs.DurationVar(&c.BenchCPUCost, "bench-cpu-cost", envDur("BENCH_CPU_COST", 0),
		"benchmarks only: add this much CPU work (SHA-256 rounds) to every admitted request but the probes, /health/metrics and the export, e.g. 0.3ms; 0: off, the default (env BENCH_CPU_COST)")
	fs.Float64Var(&c.BenchRoundsPerMS, "bench-rounds-per-ms", envFloat("BENCH_ROUNDS_PER_MS", 0),
		"with -bench-cpu-cost: SHA-256 rounds per ms of cost; 0: calibrate at start, the default (env BENCH_ROUNDS_PER_MS)")
	fs.BoolVar(&c.RateLimit, "rate-limit", envBool("RATE_LIMIT", true), "enforce the rate-limit tiers (env RATE_LIMIT)")
	proxies := fs.String("trusted-proxies", getenv("TRUSTED_PROXIES"), "comma-separated proxy CIDRs whose X-Forwarded-For is believed (env TRUSTED_PROXIES)")
	fs.StringVar(&c.OpenAIBaseURL, "openai-base-url", getenv("OPENAI_BASE_URL"), "OpenAI-compatible API base URL; empty: simulated upstream (env OPENAI_BASE_URL)")
	fs.StringVar(&c.OpenAIModel, "openai-model", env("OPENAI_MODEL", "gpt-4o-mini"), "chat model (env OPENAI_MODEL)")
	fs.DurationVar(&c.AssistantTimeout, "assistant-timeout", envDur("ASSISTANT_TIMEOUT", 30*time.Second), "bound on one assistant query, retries included (env ASSISTANT_TIMEOUT)")
	fs.StringVar(&c.StatsDAddr, "statsd-addr", getenv("STATSD_ADDR"), "StatsD/DogStatsD host:port (env STATSD_ADDR)")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "OTLP endpoint (env OTEL_EXPORTER_OTLP_ENDPOINT)")
	fs.StringVar(&c.DataDir, "data-dir", env("DATA_DIR", "./data"), "directory for the SQLite file and uploads (env DATA_DIR)")
	fs.Int64Var(&c.UploadMaxBytes, "upload-max-bytes", envInt("UPLOAD_MAX_BYTES", defaultUploadMax), "largest accepted upload (env UPLOAD_MAX_BYTES)")
	fs.BoolVar(&c.DemoData, "demo-data", envBool("DEMO_DATA", true), "load demo data into an empty database (env DEMO_DATA)")
	fs.DurationVar(&c.SimLLMLatency, "sim-llm-latency", envDur("SIM_LLM_LATENCY", 150*time.Millisecond), "simulated LLM latency (env SIM_LLM_LATENCY)")
	fs.Float64Var(&c.SimLLMFailureRate, "sim-llm-failure-rate", envFloat("SIM_LLM_FAILURE_RATE", 0), "simulated LLM failure rate 0..1 (env SIM_LLM_FAILURE_RATE)")
	fs.DurationVar(&c.RedisTimeout, "redis-timeout", envDur("REDIS_TIMEOUT", 0), "deadline of each cache and rate-limit call to Redis; 0: cache 100ms, rate limits 250ms (env REDIS_TIMEOUT)")
	fs.DurationVar(&c.DrainDelay, "drain-delay", envDur("DRAIN_DELAY", 0), "how long /health/ready reports draining before shutdown (env DRAIN_DELAY)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests get on shutdown")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	// issue 23: client throttling
	fs.BoolVar(&c.ClientThrottle, "client-throttle", envValue(getenv, &errs, "CLIENT_THROTTLE", true, parseOnOff),
		"throttle LLM and SMS requests locally once the upstream keeps refusing them (env CLIENT_THROTTLE: on/off)")
	fs.Float64Var(&c.ClientThrottleK, "client-throttle-k", envFloat("CLIENT_THROTTLE_K", 2),
		"requests the client throttle sends per one the upstream accepts, at least 1 (env CLIENT_THROTTLE_K)")

	// issue 20: StatsD format
	c.StatsDFormat = envValue(getenv, &errs, "STATSD_FORMAT", metrics.DogStatsD, metrics.ParseStatsDFormat)
	fs.Func("statsd-format", "StatsD dialect of -statsd-addr: dogstatsd (tags, |h histograms) or statsd (Etsy: timers, attributes in the name) (env STATSD_FORMAT; default dogstatsd)",
		func(s string) (err error) {
			c.StatsDFormat, err = metrics.ParseStatsDFormat(s)
			return err
		})
	// issue 21: background jobs
	fs.StringVar(&c.TwilioBaseURL, "twilio-base-url", getenv("TWILIO_BASE_URL"), "Twilio-compatible API base URL; empty: simulated SMS upstream (env TWILIO_BASE_URL)")
	fs.StringVar(&c.TwilioAccountSID, "twilio-account-sid", env("TWILIO_ACCOUNT_SID", "ACsimulated"), "Twilio account SID (env TWILIO_ACCOUNT_SID)")
	fs.StringVar(&c.TwilioFrom, "twilio-from", env("TWILIO_FROM", "+15005550006"), "sending phone number, E.164 (env TWILIO_FROM)")
	fs.DurationVar(&c.SimSMSLatency, "sim-sms-latency", envDur("SIM_SMS_LATENCY", 100*time.Millisecond), "simulated SMS upstream latency (env SIM_SMS_LATENCY)")
	fs.Float64Var(&c.SimSMSFailureRate, "sim-sms-failure-rate", envFloat("SIM_SMS_FAILURE_RATE", 0), "simulated SMS failure rate 0..1 (env SIM_SMS_FAILURE_RATE)")
	fs.IntVar(&c.JobWorkers, "job-workers", int(envInt("JOB_WORKERS", 10)), "background jobs worked at once per instance (env JOB_WORKERS)")
	fs.IntVar(&c.JobMaxAttempts, "job-max-attempts", int(envInt("JOB_MAX_ATTEMPTS", 10)), "attempts before a failing job is discarded (env JOB_MAX_ATTEMPTS)")
	fs.DurationVar(&c.JobTimeout, "job-timeout", envDur("JOB_TIMEOUT", 30*time.Second), "bound on one job attempt (env JOB_TIMEOUT)")
	fs.DurationVar(&c.JobRescueAfter, "job-rescue-after", envDur("JOB_RESCUE_AFTER", 5*time.Minute), "how long a job may run before it is taken for lost and retried; more than -job-timeout (env JOB_RESCUE_AFTER)")
	fs.DurationVar(&c.JobPollInterval, "job-poll-interval", envDur("JOB_POLL_INTERVAL", time.Second), "how often idle workers look for new jobs (env JOB_POLL_INTERVAL)")
	fs.DurationVar(&c.JobQueueWarnAge, "job-queue-warn-age", envDur("JOB_QUEUE_WARN_AGE", time.Minute), "oldest-job age past which /health/detailed warns (env JOB_QUEUE_WARN_AGE)")
	c.TwilioAuthToken = getenv("TWILIO_AUTH_TOKEN")
	// issue 22: read replicas
	fs.StringVar(&c.DatabaseReplicaURLs, "database-replica-urls", getenv("DATABASE_REPLICA_URLS"),
		"comma-separated PostgreSQL replica URLs for menu, low-stock and order-history reads (env DATABASE_REPLICA_URLS)")
	fs.Lookup("database-replica-urls").DefValue = redactURLList(c.DatabaseReplicaURLs)
	c.OpenAIAPIKey = getenv("OPENAI_API_KEY")
	c.AuthSecret = getenv("AUTH_SECRET")
	// -h prints each flag's default, which came from the environment:
	// show the URLs redacted.
	for _, name := range []string{"database-url", "redis-url", "openai-base-url", "otlp-endpoint", "twilio-base-url"} {
		if f := fs.Lookup(name); f != nil {
			f.DefValue = redact.URL(f.DefValue)
		}
	}
	if extra != nil {
		extra(fs)
	}
	if len(errs) > 0 {
		return c, errs[0]
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, p := range strings.Split(*proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.TrustedProxies = append(c.TrustedProxies, p)
		}
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.validate()
}

// parseOnOff is strconv.ParseBool that also takes "on" and "off".
func parseOnOff(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return strconv.ParseBool(s)
}

// envValue parses the environment variable k with parse, or returns def
// when it is unset; a value that does not parse is added to errs.
func envValue[T any](getenv func(string) string, errs *[]error, k string, def T, parse func(string) (T, error)) T {
	v := getenv(k)
	if v == "" {
		return def
	}
	x, err := parse(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", k, err))
	}
	return x
}

func (c Config) validate() error {
	switch {
	case c.AdaptiveMinLimit <= 0:
		return fmt.Errorf("adaptive min limit must be positive, got %d", c.AdaptiveMinLimit)
	case c.AdaptiveDelayTarget < 0:
		return fmt.Errorf("adaptive delay target must not be negative, got %v", c.AdaptiveDelayTarget)
	case c.AdaptiveQueueHeader != "" && !httpguts.ValidHeaderFieldName(c.AdaptiveQueueHeader):
		return fmt.Errorf("adaptive queue header %q is not a header name", c.AdaptiveQueueHeader)
	case c.AdaptiveQueueHeader != "" && c.AdaptiveDelayTarget == 0:
		return errors.New("adaptive queue header needs an adaptive delay target (-adaptive-delay-target, e.g. 1ms): the queue since the stamp is the delay held under it")
	case c.AdaptiveQueueHeader != "" && len(c.TrustedProxies) == 0:
		return errors.New("adaptive queue header needs -trusted-proxies: only stamps from the proxies that set them are believed")
	case c.AdaptiveMaxWait < 0:
		return fmt.Errorf("adaptive max wait must not be negative, got %v", c.AdaptiveMaxWait)
	case c.AdaptiveMaxWait > 0 && c.AdaptiveQueueHeader == "":
		return errors.New("adaptive max wait needs -adaptive-queue-header: the wait is counted from the proxy's stamp")
	case c.AdaptiveNetworkFirst < 0:
		return fmt.Errorf("adaptive network first must not be negative, got %d", c.AdaptiveNetworkFirst)
	case c.BenchCPUCost < 0:
		return fmt.Errorf("bench CPU cost must not be negative, got %v", c.BenchCPUCost)
	case !(c.BenchRoundsPerMS >= 0) || c.BenchRoundsPerMS > 1e7:
		return fmt.Errorf("bench rounds per ms must be 0 (calibrate) or a rate above 0 up to 1e7, got %v", c.BenchRoundsPerMS)
	case c.BenchRoundsPerMS > 0 && c.BenchCPUCost == 0:
		return errors.New("bench rounds per ms needs -bench-cpu-cost: it is the rate the cost converts at")
	case c.UploadMaxBytes <= 0:
		return fmt.Errorf("upload max bytes must be positive, got %d", c.UploadMaxBytes)
	case c.SimLLMFailureRate < 0 || c.SimLLMFailureRate > 1:
		return fmt.Errorf("SIM_LLM_FAILURE_RATE must be within 0..1, got %v", c.SimLLMFailureRate)
	case c.SimLLMLatency < 0:
		return fmt.Errorf("SIM_LLM_LATENCY must not be negative")
	case c.AssistantTimeout <= 0:
		return fmt.Errorf("ASSISTANT_TIMEOUT must be positive")
	case c.DataDir == "":
		return fmt.Errorf("data dir must not be empty")
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("shutdown timeout must be positive")
	case c.RedisTimeout < 0:
		return fmt.Errorf("REDIS_TIMEOUT must not be negative")
	case c.DrainDelay < 0:
		return fmt.Errorf("DRAIN_DELAY must not be negative")
	case !(c.ClientThrottleK >= 1):
		return fmt.Errorf("CLIENT_THROTTLE_K must be at least 1, got %v", c.ClientThrottleK)
	}
	if err := c.validateJobs(); err != nil {
		return err
	}
	for _, u := range []struct{ name, raw string }{{"OPENAI_BASE_URL", c.OpenAIBaseURL}, {"OTEL_EXPORTER_OTLP_ENDPOINT", c.OTLPEndpoint}, {"TWILIO_BASE_URL", c.TwilioBaseURL}} {
		if u.raw == "" {
			continue
		}
		if _, err := redact.ParseURL(u.raw); err != nil {
			return fmt.Errorf("%s: %w", u.name, err) // err names the URL redacted
		}
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// validateJobs checks the issue 21 settings (background jobs, SMS).
func (c Config) validateJobs() error {
	switch {
	case c.SimSMSFailureRate < 0 || c.SimSMSFailureRate > 1:
		return fmt.Errorf("SIM_SMS_FAILURE_RATE must be within 0..1, got %v", c.SimSMSFailureRate)
	case c.SimSMSLatency < 0:
		return fmt.Errorf("SIM_SMS_LATENCY must not be negative")
	case c.JobWorkers <= 0:
		return fmt.Errorf("JOB_WORKERS must be positive, got %d", c.JobWorkers)
	case c.JobMaxAttempts <= 0:
		return fmt.Errorf("JOB_MAX_ATTEMPTS must be positive, got %d", c.JobMaxAttempts)
	case c.JobTimeout <= 0:
		return fmt.Errorf("JOB_TIMEOUT must be positive")
	case c.JobRescueAfter <= c.JobTimeout:
		return fmt.Errorf("JOB_RESCUE_AFTER (%s) must be more than JOB_TIMEOUT (%s), or running jobs would be rescued", c.JobRescueAfter, c.JobTimeout)
	case c.JobPollInterval <= 0:
		return fmt.Errorf("JOB_POLL_INTERVAL must be positive")
	case c.JobQueueWarnAge <= 0:
		return fmt.Errorf("JOB_QUEUE_WARN_AGE must be positive")
	case c.TwilioFrom != "" && !validPhone(c.TwilioFrom):
		return fmt.Errorf("TWILIO_FROM %q is not an E.164 number", c.TwilioFrom)
	case c.TwilioBaseURL != "" && (c.TwilioAccountSID == "" || c.TwilioAuthToken == ""):
		return fmt.Errorf("TWILIO_BASE_URL needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
	}
	return nil
}
