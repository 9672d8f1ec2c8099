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
	g, err := ratelimit.NewGroup(ratelimit.Config{Redis: rdb, Instances: 3})
	if err != nil {
		panic(err)
	}
	tiers := ratelimit.Tiers()
	limit := func(t ratelimit.Tier, h http.Handler) http.Handler {
		l, err := g.Limiter(tiers.Global, t)
		if err != nil {
			panic(err)
		}
		mw, err := ratelimit.Middleware(l, ratelimit.MiddlewareConfig{})
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
	g, _ := ratelimit.NewGroup(ratelimit.Config{}) // no Redis: in memory
	tiers := ratelimit.Tiers()
	l, _ := g.Limiter(tiers.Global, tiers.Auth)
	mw, _ := ratelimit.Middleware(l, ratelimit.MiddlewareConfig{})
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

// ExampleGroup_Limiter checks two tiers on each decision: the result is the
// binding tier's, and a denied event counts in neither.
func ExampleGroup_Limiter() {
	g, _ := ratelimit.NewGroup(ratelimit.Config{})
	burst := ratelimit.Tier{Name: "burst", Limit: ratelimit.PerSecond(2)}
	hourly := ratelimit.Tier{Name: "hourly", Limit: ratelimit.PerHour(100)}
	l, _ := g.Limiter(burst, hourly)
	for range 3 {
		r, _ := l.Allow(context.Background(), "user:42")
		fmt.Println(r.Allowed, r.Tier, r.Remaining)
	}
	// Output:
	// true burst 1
	// true burst 0
	// false burst 0
}

// ExampleWrap limits a function under one key; a denied call returns a
// *LimitedError without running the function.
func ExampleWrap() {
	g, _ := ratelimit.NewGroup(ratelimit.Config{})
	l, _ := g.Limiter(ratelimit.Tier{Name: "llm", Limit: ratelimit.PerMinute(2)})
	ask := ratelimit.Wrap(l, "openai", func(ctx context.Context) (string, error) { return "answer", nil })
	for range 3 {
		v, err := ask(context.Background())
		var le *ratelimit.LimitedError
		if errors.As(err, &le) {
			fmt.Println("limited by", le.Tier+", retry after", le.RetryAfter().Round(time.Second))
			continue
		}
		fmt.Println(v)
	}
	// Output:
	// answer
	// answer
	// limited by llm, retry after 30s
}

// ExampleWrap1 limits a function of one argument under a key taken from the
// argument: each restaurant has its own quota.
func ExampleWrap1() {
	g, _ := ratelimit.NewGroup(ratelimit.Config{})
	l, _ := g.Limiter(ratelimit.Tier{Name: "menu", Limit: ratelimit.PerMinute(1)})
	getMenu := ratelimit.Wrap1(l, func(id int) string { return fmt.Sprint("restaurant:", id) },
		func(_ context.Context, id int) (string, error) { return fmt.Sprint("menu ", id), nil })
	for _, id := range []int{1, 2, 1} {
		v, err := getMenu(context.Background(), id)
		fmt.Printf("%q limited=%v\n", v, errors.Is(err, ratelimit.ErrLimited))
	}
	// Output:
	// "menu 1" limited=false
	// "menu 2" limited=false
	// "" limited=true
}

// ExampleWait blocks until the limiter allows the call instead of failing.
func ExampleWait() {
	g, _ := ratelimit.NewGroup(ratelimit.Config{})
	l, _ := g.Limiter(ratelimit.Tier{Name: "poll", Limit: ratelimit.Per(1, 20*time.Millisecond)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	for range 3 {
		if err := ratelimit.Wait(ctx, l, "feed"); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(time.Since(start) >= 40*time.Millisecond) // the 2nd and 3rd waited 20 ms each
	// Output:
	// true
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
