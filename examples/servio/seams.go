package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"time"
)

// The seams below are where perfkit's packages plug into servio. Each has a
// plain standard-library default so the service runs on its own.

// openDBFunc opens the SQL pool (perfkit/dbpool when wired).
type openDBFunc func(ctx context.Context, driver, dsn string) (*sql.DB, error)

// openDBStd opens a database/sql pool with the seed's limits: 20 open, 5
// idle, idle connections closed after 30 s, a 2 s ping to fail fast.
func openDBStd(ctx context.Context, driver, dsn string) (*sql.DB, error) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(5)
	db.SetConnMaxIdleTime(30 * time.Second)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("database unreachable: %w", err)
	}
	return db, nil
}

// responseCache caches encoded JSON responses by key (perfkit/cache when
// wired: read-through with singleflight, L1 + Redis L2, cross-instance
// invalidation). Implementations are safe for concurrent use.
type responseCache interface {
	GetOrLoad(ctx context.Context, key string, ttl time.Duration, load func(context.Context) ([]byte, error)) ([]byte, error)
	Delete(ctx context.Context, keys ...string) error
	Close() error
}

// noCache calls the loader every time.
type noCache struct{}

func (noCache) GetOrLoad(ctx context.Context, _ string, _ time.Duration, load func(context.Context) ([]byte, error)) ([]byte, error) {
	return load(ctx)
}
func (noCache) Delete(context.Context, ...string) error { return nil }
func (noCache) Close() error                            { return nil }

// limitFunc wraps a handler in the rate limit of a tier (perfkit/ratelimit
// when wired).
type limitFunc func(tier string, h http.Handler) http.Handler

func noLimit(_ string, h http.Handler) http.Handler { return h }

// Rate-limit tiers of DESIGN.md.
const (
	tierGlobal  = "global"
	tierAPI     = "api"
	tierAuth    = "auth"
	tierHeavy   = "heavy"
	tierUploads = "uploads"
)
