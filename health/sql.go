package health

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"time"
)

// SQLPool is the database SQL checks: a *sql.DB, or a pool built on one
// (dbpool.DB). SQL reads the pool's statistics from a DBStats() sql.DBStats
// method when the pool has one, else from Stats() sql.DBStats (*sql.DB). A
// pool that steers database/sql's caps itself reports its configured
// maximum through DBStats (dbpool.DB does), where database/sql's own Stats
// would report the cap of the moment.
type SQLPool interface {
	PingContext(ctx context.Context) error
}

// SQL returns a check of db that pings it through the application's own
// pool and reports responseTime (ms) and the pool's DBStats:
// openConnections, inUseConnections, idleConnections, maxOpenConnections,
// waitCount and waitDuration (ms, total since the pool opened); a pool with
// neither DBStats nor Stats reports responseTime only. A pool whose every
// connection is busy makes the ping wait, and so time out, which is the
// truth: the service cannot reach its database. ComponentType is
// "datastore".
func SQL(db SQLPool) CheckFunc {
	return func(ctx context.Context) Result {
		if db == nil || isNilPointer(db) {
			return Result{Err: errors.New("health: nil SQL pool"), ComponentType: "datastore"}
		}
		t0 := time.Now()
		err := db.PingContext(ctx)
		lat := time.Since(t0)
		meas := []Measurement{{Name: "responseTime", Value: ms(lat), Unit: "ms"}}
		var st sql.DBStats
		switch p := db.(type) {
		case interface{ DBStats() sql.DBStats }:
			st = p.DBStats()
		case interface{ Stats() sql.DBStats }:
			st = p.Stats()
		default:
			return Result{Err: err, ComponentType: "datastore", Measurements: meas}
		}
		return Result{
			Err:           err,
			ComponentType: "datastore",
			Measurements: append(meas,
				Measurement{Name: "openConnections", Value: st.OpenConnections},
				Measurement{Name: "inUseConnections", Value: st.InUse},
				Measurement{Name: "idleConnections", Value: st.Idle},
				Measurement{Name: "maxOpenConnections", Value: st.MaxOpenConnections},
				Measurement{Name: "waitCount", Value: st.WaitCount},
				Measurement{Name: "waitDuration", Value: ms(st.WaitDuration), Unit: "ms"},
			),
		}
	}
}

// isNilPointer reports whether v is a typed nil pointer, such as a nil
// *sql.DB in the interface.
func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}
