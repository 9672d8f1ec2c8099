package dbpool_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/servio/perfkit/dbpool"
)

// Open an SQLite file with Servio's defaults (or "pgx" with a postgres://
// URL for PostgreSQL); db works wherever a *sql.DB does.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "dbpool")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	db, err := dbpool.Open(ctx, "sqlite", filepath.Join(dir, "app.db"), dbpool.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	if _, err := db.ExecContext(ctx, "CREATE TABLE menu (id INTEGER PRIMARY KEY, name TEXT)"); err != nil {
		log.Fatal(err)
	}
	s := db.Stats()
	fmt.Printf("max %d, warm %d, saturated %v\n", s.MaxOpenConnections, s.OpenConnections, s.Saturated)
	// Output: max 20, warm 5, saturated false
}

// CountQueries proves a handler runs a fixed number of queries: here an
// orders page loads its orders and all their items in 2 queries, not 1+N.
func ExampleCountQueries() {
	dir, _ := os.MkdirTemp("", "dbpool")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := dbpool.Open(ctx, "sqlite", filepath.Join(dir, "app.db"), dbpool.Config{MinConns: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE orders (id INTEGER PRIMARY KEY)",
		"CREATE TABLE items (order_id INTEGER, name TEXT)",
		"INSERT INTO orders VALUES (1), (2), (3)",
		"INSERT INTO items VALUES (1, 'soup'), (2, 'tea'), (3, 'pie')",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			log.Fatal(err)
		}
	}

	cctx, n := dbpool.CountQueries(ctx)
	ordersPage := func(ctx context.Context) int {
		rows, _ := db.QueryContext(ctx, "SELECT id FROM orders ORDER BY id LIMIT 20")
		var ids []any
		for rows.Next() {
			var id int
			_ = rows.Scan(&id)
			ids = append(ids, id)
		}
		_ = rows.Close()
		// one query for the items of every order on the page
		var items int
		_ = db.QueryRowContext(ctx, "SELECT count(*) FROM items WHERE order_id IN (?, ?, ?)", ids...).Scan(&items)
		return items
	}
	items := ordersPage(cctx)
	fmt.Printf("%d items in %d queries\n", items, n.Load())
	// Output: 3 items in 2 queries
}

// Stats and Check feed a load report and a health check; Check has the
// shape func(context.Context) error, so the health package needs no import
// of dbpool.
func ExampleDB_Check() {
	dir, _ := os.MkdirTemp("", "dbpool")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := dbpool.Open(ctx, "sqlite", filepath.Join(dir, "app.db"), dbpool.Config{MinConns: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	var check func(context.Context) error = db.Check
	fmt.Println("healthy:", check(ctx) == nil)
	latency, stats, err := db.HealthCheck(ctx)
	fmt.Println(latency > 0, stats.OpenConnections, stats.Saturation, err)
	// Output:
	// healthy: true
	// true 2 0 <nil>
}

// The example service's choice: PostgreSQL when DATABASE_URL is set, else an
// SQLite file. Timed-out PostgreSQL queries are cancelled server-side.
func ExampleOpenPostgres() {
	dir, _ := os.MkdirTemp("", "dbpool")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	var (
		db  *dbpool.DB
		err error
	)
	if url := os.Getenv("DATABASE_URL"); url != "" {
		db, err = dbpool.OpenPostgres(ctx, url, dbpool.Config{})
	} else {
		db, err = dbpool.Open(ctx, "sqlite", filepath.Join(dir, "servio.db"), dbpool.Config{})
	}
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	fmt.Println(db.Stats().Saturation) // the load report's pool saturation
	// Output: 0
}

// A Cluster sends Read's reads to replicas and Write's writes to the
// primary; without replicas (here SQLite) the same code runs on the one
// pool. With PostgreSQL, open the replica pools with OpenPostgres and pass
// them to NewCluster.
func ExampleCluster() {
	dir, _ := os.MkdirTemp("", "dbpool")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	primary, err := dbpool.Open(ctx, "sqlite", filepath.Join(dir, "app.db"), dbpool.Config{MinConns: 1})
	if err != nil {
		log.Fatal(err)
	}
	c, err := dbpool.NewCluster(ctx, primary, nil, dbpool.ClusterConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // closes the pools too

	// The user's session: their reads see their writes at once.
	ctx = dbpool.WithSession(ctx, "user-42")
	err = c.Write(ctx, func(db *dbpool.DB) error {
		_, err := db.ExecContext(ctx, "CREATE TABLE menu (name TEXT); INSERT INTO menu VALUES ('soup')")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	var name string
	err = c.Read(ctx, func(db *dbpool.DB) error {
		return db.QueryRowContext(ctx, "SELECT name FROM menu").Scan(&name)
	})
	fmt.Println(name, err)
	// Output: soup <nil>
}
