package store

import (
	"context"
	"log/slog"
	"testing"

	"github.com/servio/perfkit/dbpool"
)

// benchStore is an SQLite store on a dbpool pool with servio's settings,
// seeded like scripts/bench-overload's servio (40 dishes and 400 orders per
// restaurant), with fewer restaurants.
func benchStore(b *testing.B) (*Store, int64) {
	b.Helper()
	ctx := context.Background()
	_, dsn, _, err := Target("", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	db, err := dbpool.Open(ctx, "sqlite", dsn, dbpool.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	s := New(db, SQLite)
	if err := s.Migrate(ctx, db.DB(), slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	if err := s.Seed(ctx, SeedOptions{Restaurants: 3, Items: 40, Orders: 1200}); err != nil {
		b.Fatal(err)
	}
	var rid int64
	if err := db.QueryRowContext(ctx, "SELECT MIN(id) FROM restaurants").Scan(&rid); err != nil {
		b.Fatal(err)
	}
	return s, rid
}

// BenchmarkOrdersPage is one uncached page of 20 orders with their items
// (GET /restaurants/{id}/orders?limit=20) on the embedded SQLite.
func BenchmarkOrdersPage(b *testing.B) {
	s, rid := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := s.Orders(ctx, OrdersQuery{RestaurantID: rid, Limit: 20})
		if err != nil || len(p.Orders) != 20 {
			b.Fatal(err, len(p.Orders))
		}
	}
}

// BenchmarkLowStock is one uncached low-stock read on the embedded SQLite.
func BenchmarkLowStock(b *testing.B) {
	s, rid := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.LowStock(ctx, rid); err != nil {
			b.Fatal(err)
		}
	}
}
