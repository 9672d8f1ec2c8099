package health

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// SQL returns a check of db that pings it through the application's own
// pool and reports responseTime (ms) and the pool's DBStats:
// openConnections, inUseConnections, idleConnections, maxOpenConnections,
// waitCount and waitDuration (ms, total since the pool opened). A pool whose
// every connection is busy makes the ping wait, and so time out, which is
// the truth: the service cannot reach its database. ComponentType is
// "datastore".
func SQL(db *sql.DB) CheckFunc {
	return func(ctx context.Context) Result {
		if db == nil {
			return Result{Err: errors.New("health: nil *sql.DB"), ComponentType: "datastore"}
		}
		t0 := time.Now()
		err := db.PingContext(ctx)
		lat := time.Since(t0)
		st := db.Stats()
		return Result{
			Err:           err,
			ComponentType: "datastore",
			Measurements: []Measurement{
				{Name: "responseTime", Value: ms(lat), Unit: "ms"},
				{Name: "openConnections", Value: st.OpenConnections},
				{Name: "inUseConnections", Value: st.InUse},
				{Name: "idleConnections", Value: st.Idle},
				{Name: "maxOpenConnections", Value: st.MaxOpenConnections},
				{Name: "waitCount", Value: st.WaitCount},
				{Name: "waitDuration", Value: ms(st.WaitDuration), Unit: "ms"},
			},
		}
	}
}
