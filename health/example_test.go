package health_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servio/perfkit"
	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/health"
)

// A service with a database and Redis (critical), an LLM upstream
// (non-critical) and memory, mounted under /health with the application's
// Prometheus handler. Runs against the Redis at 127.0.0.1:6379.
func Example_service() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "health")
	defer os.RemoveAll(dir)
	db, err := dbpool.Open(ctx, "sqlite", filepath.Join(dir, "app.db"), dbpool.Config{MaxOpen: 8, MinConns: 1})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	opt, err := perfkit.RedisOptions("redis://127.0.0.1:6379/0")
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer llm.Close()

	hc, err := health.New(health.Config{ServiceID: "servio", Version: "1", Checks: []health.Check{
		{Name: "db", Critical: true, Run: health.SQL(db)},
		{Name: "redis", Critical: true, Run: health.Redis(rdb)},
		{Name: "llm", Interval: 15 * time.Second, Run: health.HTTP(llm.Client(), llm.URL, http.StatusOK)},
		{Name: "memory", Run: health.Memory(health.MemoryLimits{WarnRSS: 4 << 30})},
	}})
	if err != nil {
		panic(err)
	}
	defer hc.Close()
	promHTTP := http.NotFoundHandler() // e.g. metrics.Setup's handler
	mux := http.NewServeMux()
	hc.Mount(mux, health.HandlerConfig{Authorizer: health.BearerToken("from-a-secret-store"), Metrics: promHTTP})

	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/health/ready", nil))
	fmt.Print(w.Code, " ", w.Body.String())
	rep := hc.Check(ctx)
	for _, c := range rep.Checks {
		if c.Name == "db" {
			for _, m := range c.Measurements {
				if m.Name == "maxOpenConnections" {
					fmt.Println("db maxOpenConnections:", m.Value) // dbpool's MaxOpen
				}
			}
		}
	}
	// Output:
	// 200 {"status":"pass"}
	// db maxOpenConnections: 8
}

func ExampleChecker_Mount() {
	hc, err := health.New(health.Config{Checks: []health.Check{
		{Name: "db", Critical: true, Run: health.Func(func(context.Context) error { return nil })},
		{Name: "llm", Run: health.Func(func(context.Context) error { return errors.New("upstream 502") })},
	}})
	if err != nil {
		panic(err)
	}
	defer hc.Close()
	mux := http.NewServeMux()
	// No Authorizer: callers see the status alone, and ?exclude and
	// ?verbose are ignored for them.
	hc.Mount(mux, health.HandlerConfig{})

	for _, path := range []string{"/health", "/health/ready", "/health/ready?exclude=llm", "/health/live"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		body, _ := io.ReadAll(w.Body)
		fmt.Printf("%s %d %s", path, w.Code, body)
	}
	// Output:
	// /health 200 {"status":"warn"}
	// /health/ready 200 {"status":"warn"}
	// /health/ready?exclude=llm 200 {"status":"warn"}
	// /health/live 200 {"status":"pass"}
}

// Draining: on SIGTERM, flip readiness first, give load balancers a probe
// period to notice, then shut the server down.
func ExampleChecker_SetDraining() {
	hc, err := health.New(health.Config{})
	if err != nil {
		panic(err)
	}
	defer hc.Close()
	fmt.Println(hc.Ready(context.Background()).Status)
	hc.SetDraining(true) // then: time.Sleep(probe period); srv.Shutdown(ctx)
	r := hc.Ready(context.Background())
	fmt.Println(r.Status, r.Output, r.Status.HTTPStatus())
	// Output:
	// pass
	// fail draining 503
}

func ExampleChecker_Check() {
	hc, err := health.New(health.Config{Checks: []health.Check{
		{Name: "cache", Run: health.Func(func(context.Context) error {
			return health.Warn(errors.New("hit rate 12%"))
		})},
		{Name: "db", Critical: true, Run: func(context.Context) health.Result {
			return health.Result{Err: errors.New("dial postgres://app:hunter2@db:5432/servio: connection refused")}
		}},
	}})
	if err != nil {
		panic(err)
	}
	defer hc.Close()
	r := hc.Check(context.Background())
	fmt.Println(r.Status)
	for _, c := range r.Checks {
		fmt.Printf("%s critical=%v %s: %s\n", c.Name, c.Critical, c.Status, c.Output)
	}
	// Output:
	// fail
	// cache critical=false warn: hit rate 12%
	// db critical=true fail: dial postgres://app:xxxxx@db:5432/servio: connection refused
}

func ExampleRedact() {
	fmt.Println(health.Redact("connect redis://:s3cret@cache:6379/0 password=s3cret failed"))
	// Output:
	// connect redis://:xxxxx@cache:6379/0 password=xxxxx failed
}

// Thresholds against flapping: a dependency must fail three probes in a row
// before the check reports fail (until then it warns), and pass twice to
// recover.
func ExampleCheck_thresholds() {
	fails := []bool{true, true, true, false, false}
	i := 0
	hc, err := health.New(health.Config{
		CacheTTL: time.Nanosecond, // run on every call, for the example
		Checks: []health.Check{{
			Name: "upstream", Critical: true, FailureThreshold: 3, SuccessThreshold: 2,
			Run: health.Func(func(context.Context) error {
				defer func() { i++ }()
				if fails[i] {
					return errors.New("503")
				}
				return nil
			}),
		}},
		OnStatusChange: func(check string, from, to health.Status) {
			fmt.Printf("  %s: %s → %s\n", check, from, to)
		},
	})
	if err != nil {
		panic(err)
	}
	defer hc.Close()
	for range fails {
		r := hc.Check(context.Background())
		fmt.Println(r.Status, r.Checks[0].Output)
	}
	// Output:
	//   upstream: pass → warn
	// warn failing 1/3: 503
	// warn failing 2/3: 503
	//   upstream: warn → fail
	// fail 503
	// fail recovering 1/2
	//   upstream: fail → pass
	// pass
}
