package dbpool_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/internal/redact/redacttest"
	"github.com/stretchr/testify/require"
)

// TestNoSecretInErrorsOrLogs pushes the leak table through dbpool's paths
// that report a DSN or SQL text: the error of OpenPostgres for a DSN that
// does not parse or does not connect, and the slow-query log line (SQL
// text and error).
func TestNoSecretInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	cases := redacttest.Cases(1)
	t.Run("open", func(t *testing.T) {
		t.Parallel()
		for _, tc := range cases {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			db, err := dbpool.OpenPostgres(ctx, tc.Input, dbpool.Config{ConnectTimeout: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			cancel()
			if db != nil {
				_ = db.Close()
			}
			require.Error(t, err, tc.Input)
			redacttest.NoLeak(t, tc, err.Error())
		}
	})
	t.Run("slow query", func(t *testing.T) {
		t.Parallel()
		log, recs := newLogger()
		db := openSQLite(t, dbpool.Config{SlowQuery: time.Nanosecond, Logger: log})
		for _, tc := range cases {
			// A statement carrying the secret in its text, then one whose
			// error quotes it.
			_, err := db.ExecContext(context.Background(), "SELECT 1 -- "+tc.Input)
			require.NoError(t, err)
			_, err = db.ExecContext(context.Background(), fmt.Sprintf("SELECT * FROM %q", tc.Input))
			require.Error(t, err)
		}
		lines := recs.find("dbpool: slow query")
		require.GreaterOrEqual(t, len(lines), len(cases), "every statement is slow at 1ns")
		text := fmt.Sprint(lines)
		for _, tc := range cases {
			redacttest.NoLeak(t, tc, text)
		}
	})
}
