package dbpool

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"
)

// connector wraps the driver's connector: it bounds Connect by
// ConnectTimeout and wraps every connection for observation. Every
// connection is dialled here, when database/sql asks for one, so
// database/sql's count of open connections (bounded by MaxOpen) counts
// every connection the pool has: nothing is dialled beside it.
type connector struct {
	inner driver.Connector
	p     *pool
}

var (
	_ driver.Connector = (*connector)(nil)
	_ io.Closer        = (*connector)(nil)
)

// Connect dials a connection. One dialled for a caller (not for the
// maintainer) is held by that caller from now on: database/sql hands a new
// connection over without ResetSession, so this is where its acquisition,
// and its leak check, start.
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	maint := c.p.isMaint(ctx)
	if maint {
		c.p.maintDialed.Store(true)
	}
	ctx = c.p.acquired(ctx) // a dial is not a wait for a free connection
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	if !maint {
		cn.markAcquired(false)
	}
	return cn, nil
}

// dial opens one wrapped connection within ConnectTimeout.
func (c *connector) dial(ctx context.Context) (*conn, error) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, c.p.cfg.ConnectTimeout)
	ci, err := c.inner.Connect(cctx)
	cancel()
	d := time.Since(start)
	if err != nil {
		// The driver may hit a socket deadline set from cctx a moment before
		// cctx itself reports it.
		if ctx.Err() == nil && (cctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || d >= c.p.cfg.ConnectTimeout) {
			c.p.connectTimeouts.Add(1)
			c.p.in.timeouts.Add(context.Background(), 1, c.p.in.add...)
			return nil, fmt.Errorf("%w (%v): %w", ErrConnectTimeout, c.p.cfg.ConnectTimeout, err)
		}
		return nil, fmt.Errorf("dbpool: connect: %w", err)
	}
	c.p.connects.Add(1)
	c.p.in.createTime.Record(context.Background(), d.Seconds(), c.p.in.rec...)
	return c.p.newConn(ci), nil
}

// Driver returns the underlying driver.
func (c *connector) Driver() driver.Driver { return c.inner.Driver() }

// Close closes the inner connector if it is an io.Closer. database/sql
// calls it from DB.Close.
func (c *connector) Close() error {
	if cl, ok := c.inner.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// dsnConnector adapts a driver without driver.DriverContext.
type dsnConnector struct {
	dsn string
	drv driver.Driver
}

func (d dsnConnector) Connect(context.Context) (driver.Conn, error) { return d.drv.Open(d.dsn) }
func (d dsnConnector) Driver() driver.Driver                        { return d.drv }
