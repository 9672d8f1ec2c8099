package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/examples/servio/internal/store"
)

// runSeed implements `servio seed`: it migrates the configured database and
// tops it up to the requested size, printing a progress line.
func runSeed(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var opts store.SeedOptions
	cfg, err := parseConfig("servio seed", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&opts.Restaurants, "restaurants", 200, "seeded restaurants wanted")
		fs.IntVar(&opts.Items, "items", 100, "menu items per seeded restaurant")
		fs.IntVar(&opts.Orders, "orders", 100_000, "orders wanted across the seeded restaurants")
	})
	if err != nil {
		return err
	}
	if opts.Restaurants < 1 || opts.Items < 1 || opts.Orders < 0 {
		return fmt.Errorf("seed: -restaurants and -items must be at least 1, -orders at least 0")
	}
	log := newLogger(stderr, cfg.LogLevel)
	driver, dsn, dialect, err := store.Target(cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return err
	}
	db, err := dbpool.Open(ctx, driver, dsn, dbpool.Config{Name: "servio-seed", Logger: log, QueryTimeout: -1})
	if err != nil {
		return err
	}
	defer db.Close()
	st := store.New(db, dialect)
	if err := st.Migrate(ctx, db.DB(), log); err != nil {
		return err
	}
	// The demo data first (a no-op on a database that has any), so the
	// README's curl tour and demo logins work on a seeded database too.
	if _, err := st.LoadDemo(ctx, func(p string) (string, error) { return hashPassword(p, pbkdf2Iterations) }); err != nil {
		return err
	}
	start := time.Now()
	opts.Progress = func(done, total int) {
		fmt.Fprintf(stderr, "\rseeding orders %s %d/%d (%.0f%%)", bar(done, total, 30), done, total, 100*float64(done)/float64(total))
	}
	err = st.Seed(ctx, opts)
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "seeded %d restaurants × %d menu items, %d orders on %s in %s\n",
		opts.Restaurants, opts.Items, opts.Orders, dialect, time.Since(start).Round(time.Millisecond))
	return nil
}

func bar(done, total, width int) string {
	n := width * done / max(total, 1)
	b := make([]byte, width)
	for i := range b {
		b[i] = '.'
		if i < n {
			b[i] = '#'
		}
	}
	return "[" + string(b) + "]"
}
