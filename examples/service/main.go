// Command service (README: "Use it in your service") wires the seven perfkit
// packages into one HTTP service: GET /prices/{sku} fetches and caches
// a supplier's price for rate-limited callers; /health/* says how it is doing.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servio/perfkit"
	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/health"
	"github.com/servio/perfkit/httpclient"
	"github.com/servio/perfkit/metrics"
	"github.com/servio/perfkit/ratelimit"
	"github.com/servio/perfkit/resilience"
)

type Price struct {
	SKU   string `json:"sku"`
	Cents int    `json:"cents"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cmp.Or(os.Getenv("ADDR"), ":8090"), os.Getenv("REDIS_URL"), os.Getenv("SUPPLIER_URL"), "prices.db"); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, redisURL, supplierURL, dbFile string) error {
	prov, err := metrics.Setup(ctx, metrics.Config{ServiceName: "prices"}) // every package reports here
	if err != nil {
		return err
	}
	defer prov.Shutdown(context.Background())
	ropts, err := perfkit.RedisOptions(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	db, err := dbpool.Open(ctx, "sqlite", dbpool.SQLiteDSN(dbFile), dbpool.Config{})
	if err != nil {
		return err
	}
	defer db.Close()
	c, err := cache.New(cache.Config{Redis: rdb, KeyPrefix: "prices:"})
	if err != nil {
		return err
	}
	defer c.Close()
	limits, err := ratelimit.NewGroup(ratelimit.Config{Redis: rdb, KeyPrefix: "prices:rl:"})
	if err != nil {
		return err
	}
	perClient, err := limits.Limiter(ratelimit.Tiers().API)
	if err != nil {
		return err
	}
	limit, err := ratelimit.Middleware(perClient, ratelimit.MiddlewareConfig{})
	if err != nil {
		return err
	}
	client, err := httpclient.New(httpclient.Config{DisableRetry: true}) // the pipeline retries
	if err != nil {
		return err
	}
	checks, err := health.New(health.Config{Checks: []health.Check{
		{Name: "database", Run: health.SQL(db), Critical: true},
		{Name: "redis", Run: health.Redis(rdb)},
	}})
	if err != nil {
		return err
	}
	price := func(ctx context.Context, sku string) (p Price, err error) {
		req, err := http.NewRequestWithContext(ctx, "GET", supplierURL+"/prices/"+url.PathEscape(sku), nil)
		if err != nil {
			return p, err
		}
		resp, err := httpclient.CheckStatus(client.Do(req)) // 4xx/5xx: *httpclient.StatusError
		if err != nil {
			return p, err
		}
		defer resp.Body.Close()
		err = json.NewDecoder(resp.Body).Decode(&p)
		return p, err
	}
	price = resilience.Retry1(resilience.RetryConfig{Name: "supplier"}, price) // waits a 503's Retry-After
	price = cache.Cacheable(c, func(sku string) string { return "price:" + sku }, time.Minute, price)
	price = metrics.Track1("prices.get", price)

	mux := http.NewServeMux()
	checks.Mount(mux, health.HandlerConfig{Metrics: prov.Handler()})
	mux.Handle("GET /prices/{sku}", limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, err := price(r.Context(), r.PathValue("sku")); err != nil {
			http.Error(w, "supplier unavailable", http.StatusBadGateway)
		} else {
			json.NewEncoder(w).Encode(p)
		}
	})))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Shutdown(context.Background()) }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
