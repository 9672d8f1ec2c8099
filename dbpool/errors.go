package dbpool

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors, matched with errors.Is. dbpool's errors are prefixed
// "dbpool:" and wrap the driver's error where there is one, so a query
// timeout on PostgreSQL is both ErrQueryTimeout and the server's
// *pgconn.PgError (SQLSTATE 57014); ErrAcquireTimeout is also a
// context.DeadlineExceeded.
var (
	// ErrInvalidConfig reports an invalid Config.
	ErrInvalidConfig = errors.New("dbpool: invalid config")
	// ErrConnectTimeout: opening a connection took longer than ConnectTimeout.
	ErrConnectTimeout = errors.New("dbpool: connect timeout")
	// ErrAcquireTimeout: no connection became free within AcquireTimeout.
	ErrAcquireTimeout = errors.New("dbpool: acquire timeout")
	// ErrQueryTimeout: a statement ran past the default QueryTimeout.
	ErrQueryTimeout = errors.New("dbpool: query timeout")
)

// queryTimeoutError is a statement error caused by the default QueryTimeout.
type queryTimeoutError struct {
	d   time.Duration
	err error
}

func (e *queryTimeoutError) Error() string {
	return "dbpool: query timeout (" + e.d.String() + "): " + e.err.Error()
}
func (e *queryTimeoutError) Unwrap() error        { return e.err }
func (e *queryTimeoutError) Is(target error) bool { return target == ErrQueryTimeout }

// acquireTimeoutError is the context error of a caller that waited
// AcquireTimeout for a connection; it is also a context.DeadlineExceeded.
type acquireTimeoutError struct{ d time.Duration }

func (e *acquireTimeoutError) Error() string {
	return "dbpool: acquire timeout: no free connection within " + e.d.String()
}
func (e *acquireTimeoutError) Is(target error) bool {
	return target == ErrAcquireTimeout || target == context.DeadlineExceeded
}
