package dbpool

import (
	"fmt"
	"strings"
)

// SQLiteDSN returns dsn (a modernc.org/sqlite file name or URI) with
// dbpool's SQLite defaults added where dsn does not set them: WAL journal,
// busy_timeout 5000 ms, foreign keys on, synchronous NORMAL, and
// _txlock=immediate.
//
// One writer: SQLite allows one writer at a time. With WAL, any number of
// connections read concurrently while one writes, so dbpool keeps a normal
// pool (reads stay concurrent) and makes writes safe instead of serialising
// everything through MaxOpen 1: a single-statement write waits for the lock
// up to busy_timeout, and _txlock=immediate makes every transaction take the
// write lock at BEGIN, so two transactions can never both read and then fail
// to upgrade to writing (the SQLITE_BUSY that busy_timeout cannot fix). The
// cost: transactions, even read-only ones, run one at a time; plain reads
// outside transactions do not.
func SQLiteDSN(dsn string) string {
	pragmas := [...]struct{ name, value string }{
		// busy_timeout first: switching a new file to WAL takes a lock that
		// connections opened at the same time must wait for.
		{"busy_timeout", "5000"}, // a writer waits up to 5 s for the lock instead of failing
		{"journal_mode", "WAL"},  // readers do not block the writer nor it them
		{"foreign_keys", "1"},
		{"synchronous", "NORMAL"}, // safe with WAL, far fewer fsyncs
	}
	lower := strings.ToLower(dsn)
	var add []string
	for _, p := range pragmas {
		if !strings.Contains(lower, p.name) {
			add = append(add, "_pragma="+p.name+"("+p.value+")")
		}
	}
	if !strings.Contains(lower, "_txlock") {
		add = append(add, "_txlock=immediate")
	}
	if len(add) == 0 {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + strings.Join(add, "&")
}

// isMemorySQLite reports whether dsn names an in-memory database, which
// lives only as long as its one connection.
func isMemorySQLite(dsn string) bool {
	return strings.Contains(dsn, ":memory:") || strings.Contains(dsn, "mode=memory")
}

// sqliteConfig applies the SQLite defaults: SQLiteDSN's pragmas and a
// statement cache of DefaultSQLiteStatementCache. An in-memory database
// gets one connection that is never closed: MaxOpen 1, MinConns 1, no idle
// timeout, no max uses (closing the connection would drop the data).
func sqliteConfig(cfg Config, dsn string) (Config, string, error) {
	if cfg.StatementCache == 0 {
		cfg.StatementCache = DefaultSQLiteStatementCache
	}
	if !isMemorySQLite(dsn) {
		return cfg, SQLiteDSN(dsn), nil
	}
	if cfg.MaxOpen > 1 {
		return cfg, dsn, fmt.Errorf("%w: an in-memory SQLite database needs MaxOpen 1, got %d", ErrInvalidConfig, cfg.MaxOpen)
	}
	cfg.MaxOpen, cfg.MinConns, cfg.IdleTimeout, cfg.MaxUses = 1, 1, -1, -1
	return cfg, SQLiteDSN(dsn), nil
}
