package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit"
	"github.com/servio/perfkit/ratelimit"
)

// Example_service is the example service's wiring: every route gets the
// Global tier plus its own, keyed by client IP, on Redis when REDIS_URL is
// set and in memory otherwise.
func Example_service() {
	var rdb redis.UniversalClient // nil: local limiters
	if u := os.Getenv("REDIS_URL"); u != "" {
		opt, err := perfkit.RedisOptions(u) // the decision deadline (250 ms) then cuts a hung Redis
		if err != nil {
			panic(err)
		}
		rdb = redis.NewClient(opt)
	}
	rl, err := ratelimit.New(ratelimit.Config{Redis: rdb, Instances: 3})
	if err != nil {
		panic(err)
	}
	tiers := ratelimit.Tiers()
	limit := func(t ratelimit.Tier, h http.Handler) http.Handler {
		mw, err := rl.Middleware(ratelimit.MiddlewareConfig{}, tiers.Global, t)
		if err != nil {
			panic(err)
		}
		return mw(h)
	}
	var orders, login, assistant, uploads http.Handler = http.NotFoundHandler(), http.NotFoundHandler(), http.NotFoundHandler(), http.NotFoundHandler()
	mux := http.NewServeMux()
	mux.Handle("GET /orders/{id}", limit(tiers.API, orders))
	mux.Handle("POST /auth/login", limit(tiers.Auth, login))
	mux.Handle("POST /assistant/query", limit(tiers.Heavy, assistant))
	mux.Handle("POST /uploads", limit(tiers.Uploads, uploads))
	_ = http.ListenAndServe(":8080", mux)
}

// Example limits a login route to the Auth tier (5 per 15 minutes) on top of
// Global: the sixth attempt is refused with 429.
func Example() {
	rl, _ := ratelimit.New(ratelimit.Config{})
	tiers := ratelimit.Tiers()
	mw, _ := rl.Middleware(ratelimit.MiddlewareConfig{}, tiers.Global, tiers.Auth)
	login := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))

	for i := range 6 {
		w := httptest.NewRecorder()
		login.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/auth/login", nil))
		fmt.Println(i+1, w.Code, w.Header().Get("RateLimit"))
	}
	// Output:
	// 1 200 "auth";r=4;t=180
	// 2 200 "auth";r=3;t=360
	// 3 200 "auth";r=2;t=540
	// 4 200 "auth";r=1;t=720
	// 5 200 "auth";r=0;t=900
	// 6 429 "auth";r=0;t=900
}

// ExampleWrap limits a function the way the seed's @RateLimit decorator did.
func ExampleWrap() {
	l, _ := ratelimit.NewLocal(ratelimit.LocalConfig{Tier: ratelimit.Tier{Name: "llm", Limit: ratelimit.PerMinute(2)}})
	ask := ratelimit.Wrap(l, "openai", func(ctx context.Context) (string, error) { return "answer", nil })
	for range 3 {
		v, err := ask(context.Background())
		var le *ratelimit.LimitedError
		if errors.As(err, &le) {
			fmt.Println("limited, retry after", le.RetryAfter.Round(time.Second))
			continue
		}
		fmt.Println(v)
	}
	// Output:
	// answer
	// answer
	// limited, retry after 30s
}

// ExampleLocal_AllowAt drives the clock instead of sleeping.
func ExampleLocal_AllowAt() {
	l, _ := ratelimit.NewLocal(ratelimit.LocalConfig{Tier: ratelimit.Tier{Name: "api", Limit: ratelimit.PerSecond(2)}})
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, at := range []time.Duration{0, 0, 0, 500 * time.Millisecond} {
		r, _ := l.AllowAt("client", t.Add(at), 1)
		fmt.Println(at, r.Allowed, r.Remaining, r.RetryAfter)
	}
	// Output:
	// 0s true 1 0s
	// 0s true 0 0s
	// 0s false 0 500ms
	// 500ms true 0 0s
}

// ExampleClientIPKey keys by the client behind a trusted load balancer.
func ExampleClientIPKey() {
	key, _ := ratelimit.ClientIPKey(ratelimit.IPConfig{TrustedProxies: []string{"10.0.0.0/8"}})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.7:41000"
	r.Header.Set("X-Forwarded-For", "6.6.6.6, 2001:db8:1:2::99")
	fmt.Println(key(r))
	r.RemoteAddr = "203.0.113.5:5000" // not a proxy: its header is ignored
	fmt.Println(key(r))
	// Output:
	// 2001:db8:1:2::/64
	// 203.0.113.5
}
