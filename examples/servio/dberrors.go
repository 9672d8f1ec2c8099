package main

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/servio/perfkit/dbpool"
	"modernc.org/sqlite"
)

// dbUnavailable reports whether err means the database cannot serve right
// now (down, restarting, refusing connections, pool exhausted, locked) as
// opposed to a bug: such requests get 503, not 500.
func dbUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	var se *sqlite.Error
	switch {
	case errors.Is(err, dbpool.ErrConnectTimeout), errors.Is(err, dbpool.ErrAcquireTimeout), errors.Is(err, dbpool.ErrQueryTimeout),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &op), errors.As(err, &ce):
		return true
	case errors.As(err, &pe):
		// 08: connection exception; 53: insufficient resources;
		// 57P: operator intervention (shutdown, restart).
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "53") || strings.HasPrefix(pe.Code, "57P")
	case errors.As(err, &se):
		code := se.Code() & 0xff
		return code == 5 || code == 6 // SQLITE_BUSY, SQLITE_LOCKED
	}
	// pgx reports a connection lost mid-query as "conn closed" or
	// "unexpected EOF" without a typed error in some paths.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "failed to connect") || strings.Contains(msg, "unexpected EOF")
}
