package health

import (
	"context"
	"database/sql"
	"testing"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// steeredPool stands for a pool that steers database/sql's caps itself
// (dbpool.DB): database/sql's Stats would report the cap of the moment,
// DBStats the pool's real maximum.
type steeredPool struct{ *sql.DB }

func (p steeredPool) DBStats() sql.DBStats {
	s := p.DB.Stats()
	s.MaxOpenConnections = 20
	return s
}

// pingOnly has no statistics at all.
type pingOnly struct{}

func (pingOnly) PingContext(context.Context) error { return nil }

func measurement(t *testing.T, r Result, name string) any {
	t.Helper()
	for _, m := range r.Measurements {
		if m.Name == name {
			return m.Value
		}
	}
	return nil
}

func TestSQLReportsPoolMaximum(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	db.SetMaxOpenConns(5) // the growth cap of the moment

	r := SQL(steeredPool{db})(context.Background())
	require.NoError(t, r.Err)
	assert.Equal(t, 20, measurement(t, r, "maxOpenConnections"), "the pool's maximum, not database/sql's cap")

	r = SQL(db)(context.Background())
	assert.Equal(t, 5, measurement(t, r, "maxOpenConnections"), "a plain *sql.DB reports its own")

	r = SQL(pingOnly{})(context.Background())
	require.NoError(t, r.Err)
	assert.Len(t, r.Measurements, 1, "responseTime only")
	assert.Error(t, SQL(nil)(context.Background()).Err)
}
