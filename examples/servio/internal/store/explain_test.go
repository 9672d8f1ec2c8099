package store

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newStore returns a migrated, empty store of the dialect.
// eachDialect runs test as parallel subtests on SQLite and PostgreSQL,
// each with a fresh, migrated store.
func eachDialect(t *testing.T, test func(t *testing.T, ctx context.Context, s *Store)) {
	t.Helper()
	for _, d := range []Dialect{SQLite, Postgres} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			test(t, context.Background(), newStore(t, d))
		})
	}
}

func newStore(t *testing.T, d Dialect) *Store {
	t.Helper()
	var db *sql.DB
	if d == Postgres {
		db = testenv.Postgres(t)
	} else {
		_, dsn, _, err := Target("", t.TempDir())
		require.NoError(t, err)
		db, err = sql.Open("sqlite", dsn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
	}
	s := New(db, d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Migrate(ctx, db, slog.New(slog.NewTextHandler(io.Discard, nil))))
	return s
}

// TestExplainUsesIndexes seeds a table big enough for the planner to care
// (ANALYZEd, no planner settings touched) and checks that the main queries
// use the indexes the migrations made for them, with no sequential scan.
func TestExplainUsesIndexes(t *testing.T) {
	t.Parallel()
	// SQLite's planner picks by index shape, not table size, and modernc's
	// SQLite is slow under -race, so it gets a smaller table.
	for _, tc := range []struct {
		d    Dialect
		seed SeedOptions
	}{
		{Postgres, SeedOptions{Restaurants: 40, Items: 100, Orders: 8000}},
		{SQLite, SeedOptions{Restaurants: 10, Items: 50, Orders: 1000}},
	} {
		d := tc.d
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := newStore(t, d)
			require.NoError(t, s.Seed(ctx, tc.seed))
			var rid int64
			require.NoError(t, s.db.QueryRowContext(ctx, "SELECT restaurant_id FROM orders GROUP BY restaurant_id ORDER BY COUNT(*) DESC LIMIT 1").Scan(&rid))
			var oid int64
			require.NoError(t, s.db.QueryRowContext(ctx, "SELECT MAX(id) FROM orders").Scan(&oid))
			cur := Cursor{CreatedAt: time.Now().Add(-30 * 24 * time.Hour), ID: oid}
			explain, seq := "EXPLAIN ", "Seq Scan"
			if d == SQLite {
				explain, seq = "EXPLAIN QUERY PLAN ", "SCAN "
			}
			tests := []struct {
				name  string
				query string
				args  []any
				index []string
			}{
				{"orders page", s.q.orderPage[0][0], []any{rid, 21}, []string{"idx_orders_restaurant_created", "idx_order_items_order"}},
				{"orders page after cursor", s.q.orderPage[0][1], []any{rid, s.timeArg(cur.CreatedAt), cur.ID, 21}, []string{"idx_orders_restaurant_created", "idx_order_items_order"}},
				{"orders page by status", s.q.orderPage[1][0], []any{rid, StatusPending, 21}, []string{"idx_orders_restaurant_status_created", "idx_order_items_order"}},
				{"order", s.q.orderGet, []any{oid}, []string{"idx_order_items_order"}},
				{"menu", s.q.menu, []any{rid}, []string{"idx_menu_items_active"}},
				{"low stock", s.q.lowStock, []any{rid}, []string{"idx_inventory_low_stock_active"}},
			}
			for _, tc := range tests {
				plan := queryPlan(t, s.db.(*sql.DB), explain+tc.query, tc.args...)
				t.Logf("%s:\n%s", tc.name, plan)
				for _, idx := range tc.index {
					assert.Contains(t, plan, idx, "%s: plan must use %s:\n%s", tc.name, idx, plan)
				}
				assert.NotContains(t, tableScans(d, plan), seq, "%s: no full scan wanted:\n%s", tc.name, plan)
				if d == SQLite && slices.Contains(tc.index, "idx_order_items_order") {
					// The items come in id order from their index, unsorted.
					assert.NotContains(t, plan, "TEMP B-TREE", "%s: no sort wanted:\n%s", tc.name, plan)
				}
			}
		})
	}
}

// tableScans returns plan without SQLite's scans of a subquery's rows
// ("SCAN oi" after "CO-ROUTINE oi"), which read no table.
func tableScans(d Dialect, plan string) string {
	if d != SQLite {
		return plan
	}
	var keep []string
	for line := range strings.Lines(plan) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "SCAN ")
		if ok && strings.Contains(plan, "CO-ROUTINE "+name+"\n") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "")
}

// queryPlan returns the plan's text, one row per line (the last column of
// each row: "QUERY PLAN" on PostgreSQL, "detail" on SQLite).
func queryPlan(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query(q, args...)
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(any)
		}
		require.NoError(t, rows.Scan(vals...))
		v := *(vals[len(vals)-1].(*any))
		switch x := v.(type) {
		case []byte:
			b.Write(x)
		case string:
			b.WriteString(x)
		}
		b.WriteByte('\n')
	}
	require.NoError(t, rows.Err())
	return b.String()
}
