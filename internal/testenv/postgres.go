package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// DefaultDatabaseURL is used when DATABASE_URL is not set.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DatabaseURL returns DATABASE_URL or DefaultDatabaseURL.
func DatabaseURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultDatabaseURL
}

// PostgresDSN creates a fresh schema for this test in the shared PostgreSQL
// at DatabaseURL and returns a DSN whose connections use it as search_path.
// The schema is dropped with everything in it when the test ends. The test
// fails at once with a clear message when PostgreSQL does not answer.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := DatabaseURL()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("testenv: DATABASE_URL %q: %v", redactDSN(base), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		_ = admin.Close()
		t.Fatalf("testenv: PostgreSQL not reachable at %s: %v (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, or set DATABASE_URL; ./scripts/test starts it)", redactDSN(base), err)
	}
	schema := "t_" + randHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		_ = admin.Close()
		t.Fatalf("testenv: creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testenv: dropping schema %s: %v", schema, err)
		}
		_ = admin.Close()
	})
	dsn, err := withSearchPath(base, schema)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dsn
}

// Postgres returns a *sql.DB (pgx stdlib driver) of the shared PostgreSQL
// whose connections live in a fresh schema of their own (see PostgresDSN).
// The pool is closed and the schema dropped when the test ends.
func Postgres(t testing.TB) *sql.DB {
	t.Helper()
	dsn := PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() }) // runs before the schema drop
	return db
}

// withSearchPath adds search_path=schema to a URL or key=value DSN; pgx sends
// unknown DSN settings to the server as run-time parameters.
func withSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("DATABASE_URL: %w", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dsn + " search_path=" + schema, nil
}

// redactDSN hides a password in a URL DSN, for messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}
