// Package health runs named health checks and serves them as Kubernetes-style
// probes:
//
//	hc, err := health.New(health.Config{ServiceID: "servio", Checks: []health.Check{
//		{Name: "db", Critical: true, Run: health.SQL(db)}, // *dbpool.DB or *sql.DB
//		{Name: "redis", Critical: true, Run: health.Redis(rdb)},
//		{Name: "llm", Interval: 15 * time.Second, Run: health.HTTP(client, llmURL, http.StatusOK)},
//	}})
//	if err != nil {
//		return err
//	}
//	defer hc.Close()
//	hc.Mount(mux, health.HandlerConfig{Authorizer: health.PrivateNetwork})
//	// GET /health, /health/ready, /health/live, /health/detailed
//
// Responses are in the application/health+json format of
// draft-inadarei-api-health-check.
//
// A [Checker] holds checks. Each check is critical or not (a failing
// non-critical check turns the service's status to warn, not fail), has its
// own timeout, optional background refresh, failure and success thresholds
// against flapping, and panic recovery. Checks run concurrently; their results
// are cached and every run is shared by all callers waiting for it, so a
// storm of probes reaches each dependency at most once per cache interval.
//
// [Checker.Mount] serves, under a prefix such as /health:
//
//	/health           cached aggregate status (cheap)
//	/health/detailed  every check with its measurements
//	/health/live      liveness: never touches a dependency
//	/health/ready     readiness: 503 until startup checks passed once,
//	                  while a critical check fails and once draining began
//	/health/metrics   any http.Handler, normally a Prometheus handler
//
// HTTP status is 200 for pass and warn and 503 for fail. ?verbose adds the
// checks to /health and /health/ready, ?exclude=name (repeatable or comma
// separated) leaves checks out. Details (checks, outputs, versions) and
// the query options go only to callers an [HandlerConfig.Authorizer] accepts;
// others get the status over every check, their query string ignored.
//
// No secret leaves the process: check outputs, measurement strings,
// component ids, the status-change and panic log lines and the results of
// [Checker.Check] and [Checker.Ready] pass through perfkit's one redaction
// rule set ([Redact]), so URL credentials, secret parameters and headers
// never reach a response, a log line or a caller.
//
// Built-in checks reuse the application's own pools: [SQL], [Redis],
// [Memory], [CPU], [HTTP] and the adapter [Func].
//
// Metrics (instrument scope github.com/servio/perfkit/health, attributes
// health.check.name, health.check.critical and health.status):
// perfkit.health.check.status, a state set in unit {state} (1 for the
// status a check is in, 0 for the other two; Prometheus:
// perfkit_health_check_status), and the histogram
// perfkit.health.check.duration in seconds. Checks with an Interval report
// their status from their first background run, before any request.
package health
