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
	"strings"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
)

// App is the assembled service: configuration, database, cache, LLM client
// and the HTTP handler. Close releases everything it started.
type App struct {
	cfg    Config
	log    *slog.Logger
	db     *sql.DB
	st     *store.Store
	svc    *service
	cache  responseCache
	llm    *llmClient
	sim    *simLLM // nil when OPENAI_BASE_URL is set
	tokens *tokenSigner
	// dummyHash is checked when a login names no user (see login).
	dummyHash string

	svcAsk        func(ctx context.Context, normalized string) ([]byte, error)
	isUnavailable func(error) bool
	limit         limitFunc
	metricsH      http.Handler

	handler http.Handler
	closers []func() error
}

// appOptions are the seams tests and wiring replace.
type appOptions struct {
	openDB openDBFunc
	// passwordIterations is the PBKDF2 cost of new password hashes;
	// 0 means pbkdf2Iterations. Tests lower it to stay fast under -race.
	passwordIterations int
}

// newApp opens the database, applies migrations, loads the demo data into
// an empty database and assembles the handler. On error everything already
// started is closed.
func newApp(ctx context.Context, cfg Config, log *slog.Logger, opts appOptions) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, cache: noCache{}, limit: noLimit, isUnavailable: func(error) bool { return false }}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	if opts.openDB == nil {
		opts.openDB = openDBStd
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "uploads"), 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	driver, dsn, dialect, err := store.Target(cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if a.db, err = opts.openDB(ctx, driver, dsn); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.db.Close)
	a.st = store.New(a.db, dialect)
	if err := a.st.Migrate(ctx, log); err != nil {
		return nil, err
	}
	iter := cmp.Or(opts.passwordIterations, pbkdf2Iterations)
	hash := func(p string) (string, error) { return hashPassword(p, iter) }
	if a.dummyHash, err = hash("not a password"); err != nil {
		return nil, err
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

	a.tokens = &tokenSigner{key: []byte(cfg.AuthSecret), ttl: 12 * time.Hour, now: time.Now}
	if cfg.AuthSecret == "" {
		a.tokens.key = make([]byte, 32)
		_, _ = rand.Read(a.tokens.key)
		log.Warn("AUTH_SECRET not set: tokens are signed with a random per-process key and hold on this instance only")
	}

	a.llm = &llmClient{http: &http.Client{Timeout: 30 * time.Second}, baseURL: cfg.OpenAIBaseURL, apiKey: cfg.OpenAIAPIKey, model: cfg.OpenAIModel}
	if cfg.OpenAIBaseURL == "" {
		if a.sim, err = startSimLLM(cfg.SimLLMLatency, cfg.SimLLMFailureRate, log); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, a.sim.Close)
		a.llm.baseURL = a.sim.BaseURL()
		log.Warn("SIMULATED LLM upstream in use (set OPENAI_BASE_URL for a real one)",
			"url", a.llm.baseURL, "latency", cfg.SimLLMLatency.String(), "failure_rate", cfg.SimLLMFailureRate)
	}

	a.svc = newService(a.st, a.cache, nil, log)
	a.svcAsk = a.ask
	a.handler = a.routes()
	log.Info("servio ready", "database", dialect.String(), "cache", "none", "llm_simulated", a.sim != nil)
	return a, nil
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

// routes registers every route of DESIGN.md under its rate-limit tier.
func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	handle := func(tier, method, path string, h http.HandlerFunc) {
		mux.Handle(method+" "+path, a.limit(tier, h))
		allowed[path] = append(allowed[path], method)
	}
	handle(tierAPI, "GET", "/restaurants/{id}/menu", a.getMenu)
	handle(tierAPI, "POST", "/restaurants/{id}/menu", a.addMenuItem)
	handle(tierAPI, "PATCH", "/menu-items/{id}", a.patchMenuItem)
	handle(tierAPI, "GET", "/orders/{id}", a.getOrder)
	handle(tierAPI, "PATCH", "/orders/{id}", a.patchOrder)
	handle(tierAPI, "GET", "/restaurants/{id}/orders", a.listOrders)
	handle(tierAPI, "POST", "/orders", a.createOrder)
	handle(tierAPI, "GET", "/restaurants/{id}/inventory/low-stock", a.lowStock)
	handle(tierAuth, "POST", "/auth/login", a.login)
	handle(tierHeavy, "POST", "/assistant/query", a.assistantQuery)
	handle(tierUploads, "POST", "/uploads", a.upload)
	// A method-less pattern per path answers other methods with a JSON 405
	// (the mux's own 405 is plain text).
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+allow)
		})
	}

	health := http.NewServeMux()
	a.healthRoutes(health)
	mux.Handle("/health", health)
	mux.Handle("/health/", health)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	})
	// Health endpoints stay outside the global limit so probes never get 429.
	limited := a.limit(tierGlobal, mux)
	root := http.NewServeMux()
	root.Handle("/health", mux)
	root.Handle("/health/", mux)
	root.Handle("/", limited)
	return recoverer(a.log, root)
}
