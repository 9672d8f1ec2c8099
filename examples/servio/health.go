package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/servio/perfkit/health"
	"github.com/servio/perfkit/metrics"
	"github.com/servio/perfkit/resilience"
)

// healthInterval is how often servio's checks run in the background. Run
// there rather than on request, perfkit.health.check.status exists from the
// first scrape, before anyone calls /health/detailed. The database check,
// which /health/ready follows, runs every second (one ping), so readiness
// is never more than about a second behind, as with on-request checks
// (cached 1 s).
const (
	healthInterval   = 10 * time.Second
	dbHealthInterval = time.Second
)

// setupHealth registers servio's checks: the database (critical), Redis
// when configured and the LLM upstream (both non-critical: the service
// degrades without them), and process memory. Each runs every interval in
// the background, the database at least every dbHealthInterval (on
// request when interval is 0).
func (a *App) setupHealth(mp *metrics.Provider, interval time.Duration) error {
	llmID := redactURL(a.llm.baseURL)
	if a.sim != nil {
		// Clearly labelled: a pass here says nothing about a real LLM.
		llmID = "SIMULATED in-process upstream " + llmID
	}
	checks := []health.Check{
		{Name: "database", Run: health.SQL(a.pool), Critical: true},
		{Name: "llm", Run: a.llmCheck, ComponentType: "component", ComponentID: llmID},
		{Name: "memory", Run: health.Memory(health.MemoryLimits{})},
	}
	if a.redis != nil {
		checks = append(checks, health.Check{Name: "redis", Run: health.Redis(a.redis)})
	}
	if a.jobs != nil {
		checks = append(checks, health.Check{Name: "jobs", Run: a.jobs.healthCheck},
			health.Check{Name: "sms", Run: a.smsCheck, ComponentType: "component", ComponentID: a.smsComponentID()})
	}
	if a.replicas != nil { // issue 22: read replicas
		checks = append(checks, health.Check{Name: "database-replicas", Run: a.replicaCheck})
	}
	for i := range checks {
		checks[i].Interval = max(interval, 0)
		if checks[i].Critical && interval > 0 {
			checks[i].Interval = min(interval, dbHealthInterval)
		}
	}
	c, err := health.New(health.Config{Checks: checks, ServiceID: "servio",
		Description: "perfkit example restaurant service", MeterProvider: mp, Logger: a.log})
	if err != nil {
		return err
	}
	a.health = c
	a.closers = append(a.closers, func() error { c.Close(); return nil })
	return nil
}

// llmCheck reports the assistant's upstream through its circuit breaker,
// saying plainly when the upstream is the in-process simulation. It sends
// no request: probing a paid API from health checks costs money.
func (a *App) llmCheck(context.Context) health.Result {
	kind := "OpenAI-compatible upstream"
	if a.sim != nil {
		kind = "SIMULATED LLM upstream (in-process)"
	}
	at := kind + " at " + redactURL(a.llm.baseURL)
	cb := a.llmPipe.Breaker()
	if cb == nil { // baseline mode: no breaker
		return health.Result{ComponentType: "component", Output: at + "; no circuit breaker"}
	}
	state := cb.State()
	r := health.Result{ComponentType: "component", Output: fmt.Sprintf("%s; circuit %s", at, state)}
	if state != resilience.StateClosed {
		r.Status = health.StatusWarn
	}
	return r
}

// mountHealth serves /health, /health/detailed, /health/live,
// /health/ready and /health/metrics (Prometheus). Details are shown to
// callers on loopback or private networks only.
func (a *App) mountHealth(mux *http.ServeMux) {
	a.health.Mount(mux, health.HandlerConfig{Authorizer: health.PrivateNetwork, Metrics: a.metrics.Handler()})
}

// drain makes /health/ready fail so load balancers stop sending traffic
// before the server shuts down.
func (a *App) drain(wait time.Duration) {
	a.health.SetDraining(true)
	if wait > 0 {
		time.Sleep(wait)
	}
}
