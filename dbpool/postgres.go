package dbpool

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/servio/perfkit/internal/redact"
)

// OpenPostgres opens a pool on PostgreSQL through pgx's database/sql driver.
// A query whose context ends (the default QueryTimeout included) is
// cancelled server-side with a cancel request and the connection is kept;
// pgx's default would close the connection instead. Only if the server
// does not answer the cancel within ConnectTimeout is the connection closed.
// dsn is a pgx connection string (postgres://... URL or key=value).
func OpenPostgres(ctx context.Context, dsn string, cfg Config) (*DB, error) {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, redact.Error(err)) // pgx's own redaction is best effort
	}
	grace := cfg.ConnectTimeout
	if grace <= 0 {
		grace = DefaultConnectTimeout
	}
	pc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: grace}
	}
	if cfg.Name == "" {
		cfg.Name = "postgresql"
	}
	return OpenConnector(ctx, stdlib.GetConnector(*pc), cfg)
}
