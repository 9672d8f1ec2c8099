package dbpool_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// openSQLite opens a pool on a fresh SQLite file, closed when the test ends.
func openSQLite(t *testing.T, cfg dbpool.Config) *dbpool.DB {
	t.Helper()
	db, err := dbpool.Open(context.Background(), "sqlite", testenv.SQLitePath(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// openPostgres opens a pool on a fresh schema of the shared PostgreSQL.
func openPostgres(t *testing.T, cfg dbpool.Config) *dbpool.DB {
	t.Helper()
	db, err := dbpool.OpenPostgres(context.Background(), testenv.PostgresDSN(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// logs is a slog.Handler that keeps every record.
type logs struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

// find returns the records with message msg, their attributes as strings.
func (l *logs) find(msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.recs {
		if r.Message != msg {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

func newLogger() (*slog.Logger, *logs) {
	l := &logs{}
	return slog.New(l), l
}

// newMeter returns a MeterProvider and a function collecting its metrics by name.
func newMeter(t *testing.T) (*sdkmetric.MeterProvider, func() map[string]metricdata.Aggregation) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, func() map[string]metricdata.Aggregation {
		var rm metricdata.ResourceMetrics
		require.NoError(t, r.Collect(context.Background(), &rm))
		out := map[string]metricdata.Aggregation{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				out[m.Name] = m.Data
			}
		}
		return out
	}
}
