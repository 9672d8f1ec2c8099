package testenv

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// SQLitePath returns the path of a new SQLite database file under
// t.TempDir(); the file does not exist yet.
func SQLitePath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "test.db")
}

// SQLite opens a fresh SQLite file database (modernc.org/sqlite, no cgo)
// under t.TempDir(), closed when the test ends.
func SQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", SQLitePath(t)+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatalf("testenv: opening SQLite: %v", err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("testenv: SQLite: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
